package fetch

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	acct     = "111122223333"
	smARN    = "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:app-AbCdEf"
	ssmARN   = "arn:aws:ssm:us-east-1:" + acct + ":parameter"
	versID   = "9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE" // 36 chars, like a real VersionId
	refAlias = "/aws/reference/secretsmanager/"
)

// deep builds a hierarchical name with n levels.
func deep(n int) string { return strings.Repeat("/a", n) }

var validRefs = []struct {
	name  string
	in    string
	want  Ref
	query string
}{
	{"plain name", "dbname",
		Ref{Service: ParameterStore, Parameter: "dbname"}, "dbname"},
	{"name with all allowed characters", "Db.name_1-X",
		Ref{Service: ParameterStore, Parameter: "Db.name_1-X"}, "Db.name_1-X"},
	{"hierarchical name", "/prod/db/password",
		Ref{Service: ParameterStore, Parameter: "/prod/db/password"}, "/prod/db/password"},
	{"one-level hierarchical name", "/dbname",
		Ref{Service: ParameterStore, Parameter: "/dbname"}, "/dbname"},
	{"aws not first element", "/prod/aws/ssm",
		Ref{Service: ParameterStore, Parameter: "/prod/aws/ssm"}, "/prod/aws/ssm"},
	{"name starting like aws", "/awards/x",
		Ref{Service: ParameterStore, Parameter: "/awards/x"}, "/awards/x"},
	{"name 15 levels deep", deep(15),
		Ref{Service: ParameterStore, Parameter: deep(15)}, deep(15)},
	{"name 1011 bytes", strings.Repeat("n", 1011),
		Ref{Service: ParameterStore, Parameter: strings.Repeat("n", 1011)}, strings.Repeat("n", 1011)},
	{"name with version selector", "dbname:3",
		Ref{Service: ParameterStore, Parameter: "dbname", Selector: "3"}, "dbname:3"},
	{"name with label selector", "dbname:label",
		Ref{Service: ParameterStore, Parameter: "dbname", Selector: "label"}, "dbname:label"},
	{"hierarchical name with selector", "/prod/db:Prod_2.x-y",
		Ref{Service: ParameterStore, Parameter: "/prod/db", Selector: "Prod_2.x-y"}, "/prod/db:Prod_2.x-y"},
	{"10-digit version", "dbname:9999999999",
		Ref{Service: ParameterStore, Parameter: "dbname", Selector: "9999999999"}, "dbname:9999999999"},
	{"100-character label", "dbname:" + strings.Repeat("L", 100),
		Ref{Service: ParameterStore, Parameter: "dbname", Selector: strings.Repeat("L", 100)}, "dbname:" + strings.Repeat("L", 100)},
	{"secrets manager through parameter store", refAlias + "prod/db",
		Ref{Service: ParameterStore, Parameter: refAlias + "prod/db", ViaSecretsManager: true}, refAlias + "prod/db"},
	{"public parameter", "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
		Ref{Service: ParameterStore, Parameter: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"},
		"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"},
	{"ssm ARN in another region", "arn:aws:ssm:eu-west-1:" + acct + ":parameter/prod/db/password",
		Ref{Service: ParameterStore, Partition: "aws", Region: "eu-west-1", Account: acct, Parameter: "/prod/db/password", IsARN: true},
		"arn:aws:ssm:eu-west-1:" + acct + ":parameter/prod/db/password"},
	{"ssm ARN of a plain name", ssmARN + "/dbname",
		Ref{Service: ParameterStore, Partition: "aws", Region: "us-east-1", Account: acct, Parameter: "dbname", IsARN: true},
		ssmARN + "/dbname"},
	{"ssm ARN with version selector", ssmARN + "/prod/db:3",
		Ref{Service: ParameterStore, Partition: "aws", Region: "us-east-1", Account: acct, Parameter: "/prod/db", Selector: "3", IsARN: true},
		ssmARN + "/prod/db:3"},
	{"ssm ARN with label selector", ssmARN + "/dbname:prod",
		Ref{Service: ParameterStore, Partition: "aws", Region: "us-east-1", Account: acct, Parameter: "dbname", Selector: "prod", IsARN: true},
		ssmARN + "/dbname:prod"},
	{"ssm ARN of a secrets manager reference", ssmARN + refAlias + "prod/db",
		Ref{Service: ParameterStore, Partition: "aws", Region: "us-east-1", Account: acct, Parameter: refAlias + "prod/db", IsARN: true, ViaSecretsManager: true},
		ssmARN + refAlias + "prod/db"},
	{"aws-cn ssm ARN", "arn:aws-cn:ssm:cn-north-1:" + acct + ":parameter/prod/db",
		Ref{Service: ParameterStore, Partition: "aws-cn", Region: "cn-north-1", Account: acct, Parameter: "/prod/db", IsARN: true},
		"arn:aws-cn:ssm:cn-north-1:" + acct + ":parameter/prod/db"},
	{"aws-us-gov ssm ARN", "arn:aws-us-gov:ssm:us-gov-west-1:" + acct + ":parameter/prod/db",
		Ref{Service: ParameterStore, Partition: "aws-us-gov", Region: "us-gov-west-1", Account: acct, Parameter: "/prod/db", IsARN: true},
		"arn:aws-us-gov:ssm:us-gov-west-1:" + acct + ":parameter/prod/db"},
	{"secrets manager whole secret", smARN,
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN}, ""},
	{"secrets manager partial ARN", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:prod/app+x=y.z@w_1",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct,
			SecretID: "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:prod/app+x=y.z@w_1"}, ""},
	{"secrets manager all fields empty", smARN + ":::",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN}, ""},
	{"secrets manager with JSON key", smARN + ":username::",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, JSONKey: "username"}, ""},
	{"secrets manager JSON key with spaces and unicode", smARN + ":user name ключ::",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, JSONKey: "user name ключ"}, ""},
	{"secrets manager with stage", smARN + "::AWSPREVIOUS:",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, VersionStage: "AWSPREVIOUS"}, ""},
	{"secrets manager with version id", smARN + ":::" + versID,
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, VersionID: versID}, ""},
	{"secrets manager with key and stage", smARN + ":password:AWSCURRENT:",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, JSONKey: "password", VersionStage: "AWSCURRENT"}, ""},
	{"secrets manager with key and version id", smARN + ":password::" + versID,
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, JSONKey: "password", VersionID: versID}, ""},
	{"secrets manager 32-character version id", smARN + ":::" + strings.Repeat("a", 32),
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, VersionID: strings.Repeat("a", 32)}, ""},
	{"secrets manager 64-character version id", smARN + ":::" + strings.Repeat("A-", 32),
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, VersionID: strings.Repeat("A-", 32)}, ""},
	{"secrets manager 256-character stage", smARN + "::" + strings.Repeat("s", 256) + ":",
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct, SecretID: smARN, VersionStage: strings.Repeat("s", 256)}, ""},
	{"secrets manager 512-character id", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:" + strings.Repeat("i", 512),
		Ref{Service: SecretsManager, Partition: "aws", Region: "us-east-1", Account: acct,
			SecretID: "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:" + strings.Repeat("i", 512)}, ""},
	{"aws-cn secrets manager ARN", "arn:aws-cn:secretsmanager:cn-northwest-1:" + acct + ":secret:app:k::",
		Ref{Service: SecretsManager, Partition: "aws-cn", Region: "cn-northwest-1", Account: acct,
			SecretID: "arn:aws-cn:secretsmanager:cn-northwest-1:" + acct + ":secret:app", JSONKey: "k"}, ""},
	{"aws-us-gov secrets manager ARN", "arn:aws-us-gov:secretsmanager:us-gov-east-1:" + acct + ":secret:app",
		Ref{Service: SecretsManager, Partition: "aws-us-gov", Region: "us-gov-east-1", Account: acct,
			SecretID: "arn:aws-us-gov:secretsmanager:us-gov-east-1:" + acct + ":secret:app"}, ""},
}

func TestParseRefValid(t *testing.T) {
	for _, tc := range validRefs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			if err != nil {
				t.Fatalf("ParseRef(%q): %v", tc.in, err)
			}
			want := tc.want
			want.Raw = tc.in
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseRef(%q)\n got %+v\nwant %+v", tc.in, got, want)
			}
			if q := got.ParameterQuery(); q != tc.query {
				t.Errorf("ParameterQuery() = %q, want %q", q, tc.query)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		})
	}
}

var invalidRefs = []struct {
	name   string
	in     string
	reason string
}{
	// Text any form rejects.
	{"empty string", "", "must not be empty"},
	{"leading space", " dbname", "must not start with whitespace"},
	{"leading tab", "\tdbname", "must not start with whitespace"},
	{"trailing newline", "dbname\n", "must not end with whitespace"},
	{"trailing no-break space", smARN + "\u00a0", "must not end with whitespace"},
	{"NUL inside", "db\x00name", `must not contain control character '\x00' (at byte 2)`},
	{"newline inside", smARN + ":a\nb::", `must not contain control character '\n' (at byte 65)`},
	{"DEL at end", "dbname\x7f", `must not contain control character '\x7f' (at byte 6)`},
	{"invalid UTF-8", "db\xffname", "must be valid UTF-8"},

	// ARN structure.
	{"arn: alone", "arn:", `ARN must be "arn:partition:service:region:account:resource", got 2 fields`},
	{"ARN without resource", "arn:aws:ssm:us-east-1:" + acct, `ARN must be "arn:partition:service:region:account:resource", got 5 fields`},
	{"ARN with three fields", "arn:aws:ssm", `ARN must be "arn:partition:service:region:account:resource", got 3 fields`},
	{"unknown partition", "arn:azure:ssm:us-east-1:" + acct + ":parameter/x", `partition must be "aws", "aws-cn" or "aws-us-gov", got "azure"`},
	{"iso partition", "arn:aws-iso:ssm:us-iso-east-1:" + acct + ":parameter/x", `partition must be "aws", "aws-cn" or "aws-us-gov", got "aws-iso"`},
	{"empty partition", "arn::ssm:us-east-1:" + acct + ":parameter/x", `partition must be "aws", "aws-cn" or "aws-us-gov", got ""`},
	{"wrong service", "arn:aws:s3:::bucket/key", `service must be "ssm" or "secretsmanager", got "s3"`},
	{"upper-case service", "arn:aws:SSM:us-east-1:" + acct + ":parameter/x", `service must be "ssm" or "secretsmanager", got "SSM"`},
	{"kms service", "arn:aws:kms:us-east-1:" + acct + ":key/1234", `service must be "ssm" or "secretsmanager", got "kms"`},
	{"empty region", "arn:aws:ssm::" + acct + ":parameter/x", `region must look like "us-east-1", got ""`},
	{"upper-case region", "arn:aws:ssm:US-EAST-1:" + acct + ":parameter/x", `region must look like "us-east-1", got "US-EAST-1"`},
	{"region without number", "arn:aws:secretsmanager:us-east:" + acct + ":secret:app", `region must look like "us-east-1", got "us-east"`},
	{"china region in aws", "arn:aws:ssm:cn-north-1:" + acct + ":parameter/x", `region "cn-north-1" is not in partition "aws"`},
	{"govcloud region in aws", "arn:aws:secretsmanager:us-gov-west-1:" + acct + ":secret:app", `region "us-gov-west-1" is not in partition "aws"`},
	{"iso region in aws", "arn:aws:ssm:us-iso-east-1:" + acct + ":parameter/x", `region "us-iso-east-1" is not in partition "aws"`},
	{"commercial region in aws-cn", "arn:aws-cn:ssm:us-east-1:" + acct + ":parameter/x", `region "us-east-1" is not in partition "aws-cn"`},
	{"commercial region in aws-us-gov", "arn:aws-us-gov:secretsmanager:us-east-1:" + acct + ":secret:app", `region "us-east-1" is not in partition "aws-us-gov"`},
	{"short account", "arn:aws:ssm:us-east-1:1234:parameter/x", `account must be 12 digits, got "1234"`},
	{"long account", "arn:aws:ssm:us-east-1:1111222233334:parameter/x", `account must be 12 digits, got "1111222233334"`},
	{"non-digit account", "arn:aws:secretsmanager:us-east-1:11112222333a:secret:app", `account must be 12 digits, got "11112222333a"`},
	{"empty account", "arn:aws:ssm:us-east-1::parameter/x", `account must be 12 digits, got ""`},
	{"upper-case ARN is a name", "ARN:aws:ssm:us-east-1:" + acct + ":parameter/x", `parameter must be "NAME" or "NAME:SELECTOR", got 5 colons`},

	// ssm ARN resource.
	{"parameter: instead of parameter/", ssmARN + ":prod/db", `ssm ARN resource must be "parameter/NAME", got "parameter:prod/db"`},
	{"empty ssm resource", "arn:aws:ssm:us-east-1:" + acct + ":", `ssm ARN resource must be "parameter/NAME", got ""`},
	{"ssm ARN with empty name", ssmARN + "/", "parameter name is empty"},
	{"ssm ARN name ending in /", ssmARN + "/prod/db/", `parameter name must not end with "/"`},
	{"ssm ARN name with //", ssmARN + "//prod", `parameter name must not contain "//"`},
	{"ssm ARN with two selectors", ssmARN + "/prod/db:3:4", `parameter must be "NAME" or "NAME:SELECTOR", got 2 colons`},
	{"ssm ARN with empty selector", ssmARN + "/prod/db:", `selector after ":" is empty, want a version or a label`},
	{"ssm ARN of reserved name", ssmARN + "/aws/x", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},

	// Parameter names.
	{"hierarchical name without leading /", "prod/db", `parameter name with "/" must start with "/"`},
	{"slash alone", "/", `parameter name must not end with "/"`},
	{"name ending in /", "/prod/db/", `parameter name must not end with "/"`},
	{"name with //", "/prod//db", `parameter name must not contain "//"`},
	{"name 16 levels deep", deep(16), "parameter name must be at most 15 levels deep, got 16"},
	{"name 1012 bytes", strings.Repeat("n", 1012), "parameter name must be at most 1011 bytes, got 1012"},
	{"name with space", "/prod/db password", `parameter name may only contain A-Z, a-z, 0-9 and "_.-/", got ' '`},
	{"name with $", "/prod/db$", `parameter name may only contain A-Z, a-z, 0-9 and "_.-/", got '$'`},
	{"name with non-ASCII letter", "/prod/pässword", `parameter name may only contain A-Z, a-z, 0-9 and "_.-/", got 'ä'`},
	{"name beginning with aws", "awskey", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"name beginning with SSM", "SSM-key", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"path beginning with /aws", "/aws/prod/db", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"path beginning with /Ssm", "/Ssm/x", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"public namespace without name", "/aws/service", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"upper-case reference namespace", "/AWS/reference/secretsmanager/x", `parameter name must not begin with "aws" or "ssm" (except /aws/reference/secretsmanager/ and /aws/service/)`},
	{"reference without secret id", refAlias, "secret id after /aws/reference/secretsmanager/ is empty"},
	{"reference with selector", refAlias + "prod/db:3", "selector is not allowed on /aws/reference/secretsmanager/ names"},

	// Selectors.
	{"empty selector", "dbname:", `selector after ":" is empty, want a version or a label`},
	{"colon alone", ":", `selector after ":" is empty, want a version or a label`},
	{"selector without name", ":3", "parameter name is empty"},
	{"two selectors", "dbname:3:prod", `parameter must be "NAME" or "NAME:SELECTOR", got 2 colons`},
	{"version zero", "dbname:0", `version selector must be a positive number without leading zeros, got "0"`},
	{"version with leading zero", "dbname:03", `version selector must be a positive number without leading zeros, got "03"`},
	{"11-digit version", "dbname:12345678901", "version selector must be at most 10 digits, got 11"},
	{"label starting with digit", "dbname:3a", `label selector must not start with a digit, got "3a"`},
	{"label beginning with aws", "dbname:AwsLabel", `label selector must not begin with "aws" or "ssm", got "AwsLabel"`},
	{"label beginning with ssm", "dbname:ssm", `label selector must not begin with "aws" or "ssm", got "ssm"`},
	{"label with /", "dbname:prod/x", `label selector may only contain A-Z, a-z, 0-9 and "_.-", got '/'`},
	{"101-character label", "dbname:" + strings.Repeat("L", 101), "label selector must be at most 100 characters, got 101"},

	// Secrets Manager ARN resource.
	{"secret/ instead of secret:", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret/app", `secrets manager ARN resource must start with "secret:", got "secret/app"`},
	{"secrets manager ARN without secret", "arn:aws:secretsmanager:us-east-1:" + acct + ":app", `secrets manager ARN resource must start with "secret:", got "app"`},
	{"secret: alone", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:", "secret id is empty"},
	{"empty id with fields", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret::key::", "secret id is empty"},
	{"secret with key only", smARN + ":username", `secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got 2 fields after "secret:"`},
	{"secret with key and stage only", smARN + ":username:AWSCURRENT", `secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got 3 fields after "secret:"`},
	{"secret with five fields", smARN + ":username:::extra", `secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got 5 fields after "secret:"`},
	{"secret with key containing colon", smARN + ":a:b:AWSCURRENT:", `secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got 5 fields after "secret:"`},
	{"secret id with #", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:app#1", `secret id may only contain A-Z, a-z, 0-9 and "/_+=.@-", got '#'`},
	{"513-character secret id", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:" + strings.Repeat("i", 513), "secret id must be at most 512 characters, got 513"},
	{"stage and version id", smARN + ":key:AWSCURRENT:" + versID, "version-stage and version-id are both set, want at most one"},
	{"stage with space", smARN + "::AWS CURRENT:", `version-stage may only contain A-Z, a-z, 0-9 and "_.-", got ' '`},
	{"257-character stage", smARN + "::" + strings.Repeat("s", 257) + ":", "version-stage must be at most 256 characters, got 257"},
	{"short version id", smARN + ":::9d4c", "version-id must be 32 to 64 characters, got 4"},
	{"65-character version id", smARN + ":::" + strings.Repeat("v", 65), "version-id must be 32 to 64 characters, got 65"},
	{"version id with _", smARN + ":::" + strings.Repeat("v", 31) + "_", `version-id may only contain A-Z, a-z, 0-9 and "-", got '_'`},
}

func TestParseRefInvalid(t *testing.T) {
	for _, tc := range invalidRefs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			if err == nil {
				t.Fatalf("ParseRef(%q) = %+v, want error %q", tc.in, got, tc.reason)
			}
			var re *RefError
			if !errors.As(err, &re) {
				t.Fatalf("ParseRef(%q) error is %T, want *RefError", tc.in, err)
			}
			if re.Ref != tc.in || re.Reason != tc.reason {
				t.Errorf("ParseRef(%q) error\n got Ref=%q Reason=%q\nwant Ref=%q Reason=%q", tc.in, re.Ref, re.Reason, tc.in, tc.reason)
			}
			if got != (Ref{}) {
				t.Errorf("ParseRef(%q) returned %+v with the error, want zero Ref", tc.in, got)
			}
		})
	}
}

// The full message is what users read, so pin its shape once literally.
func TestRefErrorMessage(t *testing.T) {
	_, err := ParseRef(smARN + ":username")
	want := `invalid valueFrom "arn:aws:secretsmanager:us-east-1:111122223333:secret:app-AbCdEf:username": ` +
		`secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got 2 fields after "secret:"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
	_, err = ParseRef("arn:aws:ssm:us-east-1:1234:parameter/x")
	want = `invalid valueFrom "arn:aws:ssm:us-east-1:1234:parameter/x": account must be 12 digits, got "1234"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
}

func TestServiceString(t *testing.T) {
	for s, want := range map[Service]string{ParameterStore: "ssm", SecretsManager: "secretsmanager", 0: "Service(0)"} {
		if got := s.String(); got != want {
			t.Errorf("Service(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
