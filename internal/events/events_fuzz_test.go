package events

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

func FuzzParse(f *testing.F) {
	for _, tc := range validEvents {
		f.Add([]byte(bodyOf(f, tc.body)))
	}
	for _, tc := range malformedEvents {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Parse(body)
		ev2, err2 := Parse(body)
		if !reflect.DeepEqual(ev, ev2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("Parse not deterministic: %#v, %v then %#v, %v", ev, err, ev2, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || ev.Kind != KindMalformed || ev.Region != "" || ev.IDs != nil {
				t.Fatalf("Parse error %#v with %#v", err, ev)
			}
			// What reaches a log: bounded, valid, never more of the body
			// than a cut detail-type.
			if s := err.Error(); len(s) > 200 || !utf8.ValidString(s) {
				t.Fatalf("error %q: too long or not UTF-8", s)
			}
			return
		}
		switch ev.Kind {
		case KindIgnored:
			if ev.IDs != nil {
				t.Fatalf("ignored event with ids: %#v", ev)
			}
		case KindParameter, KindSecret:
			if !fetch.ValidRegion(ev.Region) || len(ev.IDs) == 0 || len(ev.IDs) > 2 {
				t.Fatalf("event %#v: bad region or ids", ev)
			}
			for _, id := range ev.IDs {
				if badID(id) != "" {
					t.Fatalf("event %#v: id %q: %s", ev, id, badID(id))
				}
			}
			if len(ev.IDs) == 2 && (ev.Kind != KindSecret || ev.IDs[0] == ev.IDs[1]) {
				t.Fatalf("event %#v: two ids", ev)
			}
			if slices.Contains(ev.IDs, "") {
				t.Fatalf("event %#v: empty id", ev)
			}
		default:
			t.Fatalf("kind %q", ev.Kind)
		}
	})
}
