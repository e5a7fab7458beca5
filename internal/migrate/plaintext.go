package migrate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// Move is one plaintext environment variable that goes to Parameter Store.
type Move struct {
	Container string
	Env       string
	Parameter string // PREFIX/ENV
	Rule      string // the lint rule that found it
	value     string
}

// envPath is a lint finding's path into an environment entry.
var envPath = regexp.MustCompile(`^containerDefinitions\[(\d+)\]\.environment\[(\d+)\]$`)

// validPrefix is a fully qualified Parameter Store path, as SSM names them.
var validPrefix = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)

// FindPlaintext lists the environment variables lint's plaintext rules
// (ESA101–103) flag, and takes them out of td.Raw into the containers'
// secrets, referencing prefix/NAME: from there Migrate moves them like any
// native secret.
func FindPlaintext(td *taskdef.TaskDef, prefix string) ([]Move, error) {
	if !validPrefix.MatchString(prefix) {
		return nil, errorf("--move-plaintext %q: want a Parameter Store path such as /myapp/prod (a leading /, no trailing /)", prefix)
	}
	low := strings.ToLower(strings.TrimPrefix(prefix, "/"))
	if strings.HasPrefix(low, "aws") || strings.HasPrefix(low, "ssm") {
		return nil, errorf("--move-plaintext %q: Parameter Store rejects names starting with aws or ssm", prefix)
	}
	defs, err := containers(td.Raw)
	if err != nil {
		return nil, err
	}
	type at struct{ c, e int }
	found := map[at]string{}
	for _, f := range lint.Check("", td) {
		switch f.RuleID {
		case "ESA101", "ESA102", "ESA103":
		default:
			continue
		}
		m := envPath.FindStringSubmatch(f.Path)
		if m == nil {
			continue
		}
		c, _ := strconv.Atoi(m[1])
		e, _ := strconv.Atoi(m[2])
		found[at{c, e}] = f.RuleID
	}
	var moves []Move
	byName := map[string]int{} // env name → index in moves
	for ci, c := range defs {
		list, _ := c["environment"].([]any)
		var keep []any
		for ei, e := range list {
			rule, ok := found[at{ci, ei}]
			if !ok {
				keep = append(keep, e)
				continue
			}
			kv := e.(map[string]any)
			envName, _ := kv["name"].(string)
			value, _ := kv["value"].(string)
			mv := Move{Container: name(c), Env: envName, Parameter: prefix + "/" + envName, Rule: rule, value: value}
			if i, dup := byName[envName]; dup {
				if moves[i].value != value {
					return nil, errorf("environment variable %s has different values in containers %q and %q: both would go to parameter %s; rename one first", envName, moves[i].Container, mv.Container, mv.Parameter)
				}
			} else {
				byName[envName] = len(moves)
				moves = append(moves, mv)
			}
			secrets, _ := c["secrets"].([]any)
			for _, s := range secrets {
				if sm, _ := s.(map[string]any); sm != nil && sm["name"] == envName {
					return nil, errorf("container %q sets %s both in environment and in secrets: drop one first", name(c), envName)
				}
			}
			c["secrets"] = append(secrets, map[string]any{"name": envName, "valueFrom": mv.Parameter})
		}
		if len(keep) != len(list) {
			if len(keep) == 0 {
				delete(c, "environment")
			} else {
				c["environment"] = keep
			}
		}
	}
	return moves, nil
}

// SSM is what moving plaintext needs of Parameter Store.
type SSM interface {
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// AWSError is a failed call: exit 1.
type AWSError struct{ Msg string }

func (e *AWSError) Error() string { return e.Msg }

// Store writes each move as a SecureString (with kmsKey, or the account's
// aws/ssm key). A parameter that already holds the same value is kept (a
// rerun after a partial failure); one with another value is never
// overwritten.
func Store(ctx context.Context, client SSM, moves []Move, kmsKey string) (created []string, err error) {
	for _, m := range moves {
		in := &ssm.PutParameterInput{
			Name:        aws.String(m.Parameter),
			Value:       aws.String(m.value),
			Type:        ssmtypes.ParameterTypeSecureString,
			Description: aws.String(fmt.Sprintf("moved from plaintext environment variable %s of container %s by agent migrate", m.Env, m.Container)),
		}
		if kmsKey != "" {
			in.KeyId = aws.String(kmsKey)
		}
		_, err := client.PutParameter(ctx, in)
		var exists *ssmtypes.ParameterAlreadyExists
		switch {
		case err == nil:
			created = append(created, m.Parameter)
			continue
		case !errors.As(err, &exists):
			return created, &AWSError{Msg: fmt.Sprintf("putting parameter %s (from %s of container %q): %s", m.Parameter, m.Env, m.Container, awsReason(err, m.value))}
		}
		out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(m.Parameter), WithDecryption: aws.Bool(true)})
		if err != nil {
			return created, &AWSError{Msg: fmt.Sprintf("parameter %s already exists and cannot be read to compare: %s", m.Parameter, awsReason(err, m.value))}
		}
		if out.Parameter == nil || aws.ToString(out.Parameter.Value) != m.value || out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
			return created, &AWSError{Msg: fmt.Sprintf("parameter %s already exists with another value or type: not overwritten; pick another --move-plaintext prefix or delete it", m.Parameter)}
		}
	}
	return created, nil
}

// awsReason is the error code and message, with the value (which a
// validation message could quote) cut out.
func awsReason(err error, value string) string {
	var ae smithy.APIError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	if value != "" {
		msg = strings.ReplaceAll(msg, value, "[value]")
	}
	return msg
}
