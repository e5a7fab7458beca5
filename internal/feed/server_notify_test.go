package feed

import "testing"

// Which tracked references a change event names.
func TestNotifyTargets(t *testing.T) {
	const acct = "111122223333"
	tests := []struct {
		name, region, id, valueFrom string
		want                        bool
	}{
		{"parameter by name", "eu-west-1", "/prod/db", "/prod/db", true},
		{"parameter by name, any selector", "eu-west-1", "/prod/db", "/prod/db:live", true},
		{"parameter by ARN", "us-east-1", "arn:aws:ssm:eu-west-1:" + acct + ":parameter/prod/db", "/prod/db", true},
		{"flat parameter by ARN", "eu-west-1", "arn:aws:ssm:eu-west-1:" + acct + ":parameter/db", "db", true},
		{"parameter written as ARN", "eu-west-1", "/prod/db", "arn:aws:ssm:eu-west-1:" + acct + ":parameter/prod/db", true},
		{"parameter in another region", "us-east-1", "/prod/db", "/prod/db", false},
		{"another parameter", "eu-west-1", "/prod/db2", "/prod/db", false},
		{"parent path", "eu-west-1", "/prod", "/prod/db", false},
		{"secret by name", "eu-west-1", "db", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf:password::", true},
		{"secret by full ARN", "us-east-1", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db", true},
		{"secret by partial ARN", "eu-west-1", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf", true},
		{"secret through Parameter Store", "eu-west-1", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:app/db-AbCdEf", "/aws/reference/secretsmanager/app/db", true},
		{"secret with a dash in its name", "eu-west-1", "my-db", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:my-db-AbCdEf", true},
		{"another secret", "eu-west-1", "db2", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf", false},
		{"secret in another region", "eu-west-1", "arn:aws:secretsmanager:us-east-1:" + acct + ":secret:db", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf", false},
		{"a parameter ARN is no secret", "eu-west-1", "arn:aws:ssm:eu-west-1:" + acct + ":parameter/db", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db-AbCdEf", false},
		{"a secret ARN is no parameter", "eu-west-1", "arn:aws:secretsmanager:eu-west-1:" + acct + ":secret:db", "db", false},
		{"malformed ARN", "eu-west-1", "arn:aws:ssm", "/prod/db", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ref, err := Key("eu-west-1", tt.valueFrom)
			if err != nil {
				t.Fatal(err)
			}
			if got := parseTarget(tt.region, tt.id).names(ref); got != tt.want {
				t.Errorf("event %s %q names %q: %v, want %v", tt.region, tt.id, tt.valueFrom, got, tt.want)
			}
		})
	}
}
