// Package events turns the EventBridge events that Parameter Store and
// Secrets Manager emit, as an SQS queue delivers them, into change
// notices for the change feed (SPEC §6 "Change feed", docs/FEED.md
// "Change events"): a change reaches the feed in seconds instead of at its
// next poll, and polling becomes the safety net.
//
// An event only says which parameter or secret to poll now; the feed still
// reads the version from AWS. A forged or lost event can therefore delay or
// hasten a poll, never change what the feed reports.
package events

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// Kinds of message, a bounded set used as a metric label.
const (
	KindParameter = "parameter" // a Parameter Store change
	KindSecret    = "secret"    // a Secrets Manager change
	KindIgnored   = "ignored"   // an event that changes nothing we track (another source or call, a failed call)
	KindMalformed = "malformed" // not an event, or one without the fields its kind needs
)

// Event is one change: a parameter (name or ARN) or a secret (name,
// partial or full ARN) in a region. IDs holds one or two spellings of the
// same thing (the secret id as the caller gave it and the full ARN from the
// response), so that the feed can match references written either way.
type Event struct {
	Kind   string
	Region string
	IDs    []string
}

// maxID bounds an id: a full Secrets Manager ARN is under 300 bytes, a
// parameter ARN under 2,100.
const maxID = 2048

// The Secrets Manager API calls that change which value a reference
// resolves to, or whether it resolves at all.
var secretCalls = map[string]bool{
	"PutSecretValue":           true,
	"UpdateSecretVersionStage": true,
	"RotateSecret":             true,
	"UpdateSecret":             true,
	"RestoreSecret":            true,
	"DeleteSecret":             true,
	"CancelRotateSecret":       true,
}

// The Parameter Store Change operations that can move a parameter's
// version or labels.
var parameterOps = map[string]bool{
	"Create":                true,
	"Update":                true,
	"Delete":                true,
	"LabelParameterVersion": true,
}

// envelope is what Parse reads of an event; everything else is ignored.
type envelope struct {
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Region     string          `json:"region"`
	Detail     json.RawMessage `json:"detail"`

	// An SNS notification wrapping the event (EventBridge → SNS → SQS).
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

type parameterDetail struct {
	Name      string `json:"name"`
	Operation string `json:"operation"`
}

type cloudTrailDetail struct {
	EventName         string `json:"eventName"`
	ErrorCode         string `json:"errorCode"`
	RequestParameters *struct {
		SecretID string `json:"secretId"`
	} `json:"requestParameters"`
	ResponseElements *struct {
		ARN string `json:"arn"`
	} `json:"responseElements"`
	// Service events (RotationSucceeded) name the secret here.
	AdditionalEventData *struct {
		SecretID string `json:"SecretId"`
	} `json:"additionalEventData"`
}

// Error is why a message is malformed. It never holds the message body,
// only the event's detail-type (which AWS sets from a fixed list, but is
// quoted and cut short all the same).
type Error struct {
	DetailType string
	Reason     string
}

func (e *Error) Error() string {
	if e.DetailType == "" {
		return "malformed event: " + e.Reason
	}
	return "malformed event " + quoteShort(e.DetailType) + ": " + e.Reason
}

// Parse reads one SQS message body. It returns the change with Kind
// KindParameter or KindSecret; an Event of KindIgnored for an event that
// changes nothing we track; or, with KindMalformed, an *Error.
func Parse(body []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{Kind: KindMalformed}, &Error{Reason: "not a JSON object"}
	}
	if env.Type == "Notification" && env.Message != "" && env.DetailType == "" {
		// One level of SNS wrapping, no more.
		body = []byte(env.Message)
		env = envelope{}
		if err := json.Unmarshal(body, &env); err != nil {
			return Event{Kind: KindMalformed}, &Error{Reason: "SNS message is not a JSON object"}
		}
	}
	malformed := func(reason string) (Event, error) {
		return Event{Kind: KindMalformed}, &Error{DetailType: env.DetailType, Reason: reason}
	}
	if env.DetailType == "" || env.Source == "" {
		return malformed("no detail-type or source")
	}
	ignored := Event{Kind: KindIgnored, Region: env.Region}
	var ev Event
	switch {
	case env.Source == "aws.ssm" && env.DetailType == "Parameter Store Change":
		var d parameterDetail
		if err := json.Unmarshal(env.Detail, &d); err != nil {
			return malformed("detail is not an object")
		}
		if d.Operation == "" {
			return malformed("no operation")
		}
		if !parameterOps[d.Operation] {
			return ignored, nil
		}
		ev = Event{Kind: KindParameter, IDs: []string{d.Name}}
	case env.Source == "aws.secretsmanager" &&
		(env.DetailType == "AWS API Call via CloudTrail" || env.DetailType == "AWS Service Event via CloudTrail"):
		var d cloudTrailDetail
		if err := json.Unmarshal(env.Detail, &d); err != nil {
			return malformed("detail is not an object")
		}
		if d.ErrorCode != "" {
			return ignored, nil // the call failed: nothing changed
		}
		var id, arn string
		switch {
		case env.DetailType == "AWS Service Event via CloudTrail" && d.EventName == "RotationSucceeded":
			if d.AdditionalEventData != nil {
				id = d.AdditionalEventData.SecretID
			}
		case env.DetailType == "AWS API Call via CloudTrail" && secretCalls[d.EventName]:
			if d.RequestParameters != nil {
				id = d.RequestParameters.SecretID
			}
			if d.ResponseElements != nil {
				arn = d.ResponseElements.ARN
			}
		default:
			return ignored, nil
		}
		ev = Event{Kind: KindSecret, IDs: []string{id}}
		if arn != "" && arn != id {
			ev.IDs = append(ev.IDs, arn)
		}
	default:
		return ignored, nil
	}
	if !fetch.ValidRegion(env.Region) {
		return malformed("no valid region")
	}
	for _, id := range ev.IDs {
		if reason := badID(id); reason != "" {
			return malformed(reason)
		}
	}
	ev.Region = env.Region
	return ev, nil
}

// badID says what is wrong with a parameter or secret id, or "".
func badID(id string) string {
	switch {
	case id == "":
		return "no parameter or secret name"
	case len(id) > maxID:
		return "name too long"
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar }) >= 0:
		return "name has a space, control or invalid character"
	}
	return ""
}

// quoteShort quotes s, cut to at most 64 bytes at a rune boundary.
func quoteShort(s string) string {
	if len(s) > 64 {
		n := 64
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
