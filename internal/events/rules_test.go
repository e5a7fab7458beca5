package events

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// matches is EventBridge's matching for the pattern features Rules use:
// arrays of literal strings, and {"exists": bool}, nested in objects.
func matches(t *testing.T, pattern map[string]any, event map[string]any) bool {
	t.Helper()
	for k, want := range pattern {
		got, present := event[k]
		switch want := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !ok || !matches(t, want, sub) {
				return false
			}
		case []any:
			ok := false
			for _, w := range want {
				switch w := w.(type) {
				case string:
					s, isString := got.(string)
					ok = ok || (isString && s == w)
				case map[string]any:
					exists, isBool := w["exists"].(bool)
					if len(w) != 1 || !isBool {
						t.Fatalf("pattern %v: only {\"exists\": bool} is known here", w)
					}
					ok = ok || present == exists
				default:
					t.Fatalf("pattern value %v of %s", w, k)
				}
			}
			if !ok {
				return false
			}
		default:
			t.Fatalf("pattern %s: %v is neither an object nor an array", k, want)
		}
	}
	return true
}

func rulePatterns(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, p := range Rules {
		var m map[string]any
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Fatalf("rule %s: %v", name, err)
		}
		out[name] = m
	}
	return out
}

// Every event Parse takes as a change is matched by a rule; the events it
// ignores as reads, failures or other services' are matched by none.
func TestRulesMatchWhatParseTakes(t *testing.T) {
	rules := rulePatterns(t)
	var bodies []string
	for _, tc := range validEvents {
		if !strings.HasPrefix(tc.name, "via SNS") { // what a rule sees is the event inside
			bodies = append(bodies, bodyOf(t, tc.body))
		}
	}
	for _, op := range []string{"Create", "Update", "Delete", "LabelParameterVersion", "Expire"} {
		bodies = append(bodies, ssmEvent("eu-west-1", `{"operation":"`+op+`","name":"/a"}`))
	}
	for name := range secretCalls {
		bodies = append(bodies, apiCall(name, `{"secretId":"a"}`, `null`),
			trailEvent("AWS API Call via CloudTrail", `{"eventSource":"secretsmanager.amazonaws.com","eventName":"`+name+`","errorCode":"AccessDenied","requestParameters":{"secretId":"a"}}`))
	}
	for _, name := range []string{"GetSecretValue", "DescribeSecret", "ListSecrets", "CreateSecret", "TagResource"} {
		bodies = append(bodies, apiCall(name, `{"secretId":"a"}`, `null`))
	}
	for _, name := range []string{"RotationSucceeded", "RotationFailed", "RotationStarted"} {
		bodies = append(bodies, trailEvent("AWS Service Event via CloudTrail",
			`{"eventSource":"secretsmanager.amazonaws.com","eventName":"`+name+`","additionalEventData":{"SecretId":"`+secretARN+`"}}`))
	}
	changes, ignored := 0, 0
	for _, body := range bodies {
		ev, err := Parse([]byte(body))
		var event map[string]any
		if json.Unmarshal([]byte(body), &event) != nil {
			t.Fatalf("not JSON: %s", body)
		}
		var matched []string
		for name, p := range rules {
			if matches(t, p, event) {
				matched = append(matched, name)
			}
		}
		change := err == nil && (ev.Kind == KindParameter || ev.Kind == KindSecret)
		desc := fmt.Sprintf("%.160s", body)
		switch {
		case change && len(matched) != 1:
			t.Errorf("a change (%s %v) matched by rules %v, want one: %s", ev.Kind, ev.IDs, matched, desc)
		case !change && len(matched) != 0:
			t.Errorf("not a change (%s) but matched by %v: %s", ev.Kind, matched, desc)
		}
		if change {
			changes++
		} else {
			ignored++
		}
	}
	// So that the loop above is not vacuous.
	if changes != 27 || ignored != 23 {
		t.Errorf("%d changes and %d ignored events checked", changes, ignored)
	}
	if got := slices.Sorted(maps.Keys(rules)); !slices.Equal(got, []string{"parameters", "secrets"}) {
		t.Errorf("rules %v", got)
	}
}
