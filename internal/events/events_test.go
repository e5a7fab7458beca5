package events

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

const (
	secretARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf"
	paramARN  = "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/password"
)

func readEvent(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ssmEvent is a Parameter Store Change with detail d.
func ssmEvent(region, d string) string {
	return `{"version":"0","id":"x","detail-type":"Parameter Store Change","source":"aws.ssm","account":"111122223333","region":"` +
		region + `","resources":[],"detail":` + d + `}`
}

// trailEvent is a Secrets Manager CloudTrail event of detail-type dt.
func trailEvent(dt, d string) string {
	return `{"version":"0","id":"x","detail-type":"` + dt + `","source":"aws.secretsmanager","account":"111122223333","region":"us-east-1","detail":` + d + `}`
}

func apiCall(name, params, response string) string {
	return trailEvent("AWS API Call via CloudTrail", `{"eventSource":"secretsmanager.amazonaws.com","eventName":"`+name+
		`","awsRegion":"us-east-1","requestParameters":`+params+`,"responseElements":`+response+`}`)
}

var validEvents = []struct {
	name string
	body string
	want Event
}{
	{"parameter update", "@parameter-update.json", Event{KindParameter, "eu-west-1", []string{"/prod/db/password"}}},
	{"parameter create", ssmEvent("eu-west-1", `{"operation":"Create","name":"plain"}`), Event{KindParameter, "eu-west-1", []string{"plain"}}},
	{"parameter delete", ssmEvent("eu-west-1", `{"operation":"Delete","name":"/a/b"}`), Event{KindParameter, "eu-west-1", []string{"/a/b"}}},
	{"parameter label", ssmEvent("ap-southeast-2", `{"operation":"LabelParameterVersion","name":"/a/b","labels":["prod"]}`), Event{KindParameter, "ap-southeast-2", []string{"/a/b"}}},
	{"parameter by ARN", ssmEvent("eu-west-1", `{"operation":"Update","name":"`+paramARN+`"}`), Event{KindParameter, "eu-west-1", []string{paramARN}}},
	{"parameter unknown operation", ssmEvent("eu-west-1", `{"operation":"Expire","name":"/a"}`), Event{KindIgnored, "eu-west-1", nil}},
	{"put secret value", "@put-secret-value.json", Event{KindSecret, "us-east-1", []string{"prod/api", secretARN}}},
	{"rotation succeeded", "@rotation-succeeded.json", Event{KindSecret, "us-east-1", []string{secretARN}}},
	{"update version stage", apiCall("UpdateSecretVersionStage", `{"secretId":"prod/api","versionStage":"AWSCURRENT"}`, `{"arn":"`+secretARN+`","name":"prod/api"}`),
		Event{KindSecret, "us-east-1", []string{"prod/api", secretARN}}},
	{"rotate by ARN", apiCall("RotateSecret", `{"secretId":"`+secretARN+`"}`, `{"arn":"`+secretARN+`","name":"prod/api","versionId":"v"}`),
		Event{KindSecret, "us-east-1", []string{secretARN}}},
	{"rotate, no response", apiCall("RotateSecret", `{"secretId":"prod/api"}`, `null`), Event{KindSecret, "us-east-1", []string{"prod/api"}}},
	{"update secret", apiCall("UpdateSecret", `{"secretId":"prod/api"}`, `{}`), Event{KindSecret, "us-east-1", []string{"prod/api"}}},
	{"restore secret", apiCall("RestoreSecret", `{"secretId":"prod/api"}`, `{"arn":"`+secretARN+`"}`), Event{KindSecret, "us-east-1", []string{"prod/api", secretARN}}},
	{"delete secret", apiCall("DeleteSecret", `{"secretId":"prod/api","recoveryWindowInDays":7}`, `{"arn":"`+secretARN+`"}`), Event{KindSecret, "us-east-1", []string{"prod/api", secretARN}}},
	{"cancel rotation", apiCall("CancelRotateSecret", `{"secretId":"prod/api"}`, `{"arn":"`+secretARN+`"}`), Event{KindSecret, "us-east-1", []string{"prod/api", secretARN}}},
	{"partial ARN", apiCall("PutSecretValue", `{"secretId":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api"}`, `null`),
		Event{KindSecret, "us-east-1", []string{"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api"}}},
	{"read-only call", apiCall("GetSecretValue", `{"secretId":"prod/api"}`, `null`), Event{KindIgnored, "us-east-1", nil}},
	{"describe", apiCall("DescribeSecret", `{"secretId":"prod/api"}`, `null`), Event{KindIgnored, "us-east-1", nil}},
	{"failed call", trailEvent("AWS API Call via CloudTrail", `{"eventName":"PutSecretValue","errorCode":"AccessDenied","requestParameters":{"secretId":"prod/api"}}`),
		Event{KindIgnored, "us-east-1", nil}},
	{"rotation failed", trailEvent("AWS Service Event via CloudTrail", `{"eventName":"RotationFailed","additionalEventData":{"SecretId":"`+secretARN+`"}}`),
		Event{KindIgnored, "us-east-1", nil}},
	{"API call name as a service event", trailEvent("AWS Service Event via CloudTrail", `{"eventName":"PutSecretValue","requestParameters":{"secretId":"x"}}`),
		Event{KindIgnored, "us-east-1", nil}},
	{"other source", `{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","region":"us-east-1","detail":{}}`, Event{KindIgnored, "us-east-1", nil}},
	{"other ssm event", `{"detail-type":"Parameter Store Policy Action","source":"aws.ssm","region":"us-east-1","detail":{"parameter-name":"/a"}}`, Event{KindIgnored, "us-east-1", nil}},
	{"via SNS", `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:eu-west-1:111122223333:t","Message":` +
		jsonString(ssmEvent("eu-west-1", `{"operation":"Update","name":"/a"}`)) + `}`, Event{KindParameter, "eu-west-1", []string{"/a"}}},
}

var malformedEvents = []struct {
	name, body, err string
}{
	{"empty", ``, "malformed event: not a JSON object"},
	{"not JSON", `hello`, "malformed event: not a JSON object"},
	{"array", `[]`, "malformed event: not a JSON object"},
	{"string", `"Parameter Store Change"`, "malformed event: not a JSON object"},
	{"no detail-type", `{"source":"aws.ssm","region":"us-east-1","detail":{}}`, "malformed event: no detail-type or source"},
	{"no source", `{"detail-type":"Parameter Store Change","region":"us-east-1","detail":{}}`, `malformed event "Parameter Store Change": no detail-type or source`},
	{"wrong type", `{"detail-type":1,"source":"aws.ssm"}`, "malformed event: not a JSON object"},
	{"no detail", `{"detail-type":"Parameter Store Change","source":"aws.ssm","region":"us-east-1"}`, `malformed event "Parameter Store Change": detail is not an object`},
	{"detail a string", ssmEvent("us-east-1", `"x"`), `malformed event "Parameter Store Change": detail is not an object`},
	{"no name", ssmEvent("us-east-1", `{"operation":"Update"}`), `malformed event "Parameter Store Change": no parameter or secret name`},
	{"null detail", ssmEvent("us-east-1", `null`), `malformed event "Parameter Store Change": no operation`},
	{"no region", ssmEvent("", `{"operation":"Update","name":"/a"}`), `malformed event "Parameter Store Change": no valid region`},
	{"bad region", ssmEvent("us east 1", `{"operation":"Update","name":"/a"}`), `malformed event "Parameter Store Change": no valid region`},
	{"name with newline", ssmEvent("us-east-1", `{"operation":"Update","name":"/a\nb"}`), `malformed event "Parameter Store Change": name has a space, control or invalid character`},
	{"name too long", ssmEvent("us-east-1", `{"operation":"Update","name":"/`+strings.Repeat("a", 2048)+`"}`), `malformed event "Parameter Store Change": name too long`},
	{"no secret id", apiCall("PutSecretValue", `{}`, `null`), `malformed event "AWS API Call via CloudTrail": no parameter or secret name`},
	{"no request parameters", apiCall("PutSecretValue", `null`, `null`), `malformed event "AWS API Call via CloudTrail": no parameter or secret name`},
	{"secret id a number", apiCall("PutSecretValue", `{"secretId":7}`, `null`), `malformed event "AWS API Call via CloudTrail": detail is not an object`},
	{"rotation without id", trailEvent("AWS Service Event via CloudTrail", `{"eventName":"RotationSucceeded"}`), `malformed event "AWS Service Event via CloudTrail": no parameter or secret name`},
	{"SNS message not JSON", `{"Type":"Notification","Message":"hello"}`, "malformed event: SNS message is not a JSON object"},
	{"SNS twice", `{"Type":"Notification","Message":` + jsonString(`{"Type":"Notification","Message":"{}"}`) + `}`, "malformed event: no detail-type or source"},
	{"long detail-type", `{"detail-type":"` + strings.Repeat("d", 100) + `"}`, `malformed event "` + strings.Repeat("d", 64) + `…": no detail-type or source`},
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func bodyOf(t testing.TB, s string) string {
	if name, ok := strings.CutPrefix(s, "@"); ok {
		return readEvent(t, name)
	}
	return s
}

func TestParse(t *testing.T) {
	for _, tc := range validEvents {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(bodyOf(t, tc.body)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, tc := range malformedEvents {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.body))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("Parse error %v, want %q", err, tc.err)
			}
			if got.Kind != KindMalformed || got.Region != "" || got.IDs != nil {
				t.Fatalf("Parse = %#v, want only Kind malformed", got)
			}
		})
	}
}

// The long detail-type is cut at a byte count; a cut inside a rune must not
// give invalid UTF-8 in a log line.
func TestParseMalformedCutsRunes(t *testing.T) {
	_, err := Parse([]byte(`{"detail-type":"a` + strings.Repeat("é", 40) + `"}`))
	want := `malformed event "a` + strings.Repeat("é", 31) + `…": no detail-type or source`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
