package fetch

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Error is one secret that could not be resolved. It names the secret, the
// reference, the AWS error code and what to do; it never holds a value.
type Error struct {
	Name   string // configured name
	Ref    Ref
	Region string
	Code   string // AWS error code, or one of ours (ParameterNotFound, KeyNotFound, NotJSONObject, RequestError, Timeout)
	Op     string // the AWS operation it came from: GetParameters, GetSecretValue or DescribeSecret
	Err    error
}

// Class says how a caller should treat an error.
type Class string

// Bounded set, usable as a metric label.
const (
	Permanent Class = "permanent" // not found, denied, invalid: retrying will not help
	Transient Class = "transient" // throttled, 5xx, network: back off and retry
)

var (
	errParameterNotFound = errors.New("parameter not found (listed in InvalidParameters)")
	errStageNotFound     = errors.New("no version of the secret has the staging label (DescribeSecret VersionIdsToStages)")
)

func newError(r Request, region, op string, err error) *Error {
	return &Error{Name: r.Name, Ref: r.Ref, Region: region, Code: ErrorCode(err), Op: op, Err: err}
}

func (e *Error) Error() string {
	return fmt.Sprintf("secret %s (valueFrom %s): %s: %s", e.Name, e.Ref.Raw, e.Code, e.Hint())
}

func (e *Error) Unwrap() error { return e.Err }

// Missing reports whether the secret, version or key does not exist, the one
// failure an optional secret may skip.
func (e *Error) Missing() bool {
	switch e.Code {
	case "ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException", "KeyNotFound":
		return true
	}
	return false
}

// Class classifies the error once, here, for every caller.
func (e *Error) Class() Class {
	switch e.Code {
	case "ThrottlingException", "TooManyUpdates", "RequestError", "InternalServerError",
		"InternalFailure", "ServiceUnavailable", "InternalServiceError", "Timeout":
		return Transient
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(e.Err, &re) && re.HTTPStatusCode() >= 500 {
		return Transient
	}
	return Permanent
}

// Hint says what to do, for the one error line a user reads.
func (e *Error) Hint() string {
	svc := "ssm:GetParameters"
	if e.Ref.Service == SecretsManager {
		svc = "secretsmanager:GetSecretValue"
	} else if e.Ref.ViaSecretsManager {
		svc = "ssm:GetParameters and secretsmanager:GetSecretValue"
	}
	if e.Op == "DescribeSecret" && e.Code == "AccessDeniedException" {
		// No value is read, so no key is involved.
		return "access denied: to watch the secret for rotation the task role needs secretsmanager:DescribeSecret on it"
	}
	switch e.Code {
	case "ParameterNotFound":
		return fmt.Sprintf("no such parameter in %s; check the name, and give the full ARN for a parameter in another region or account", e.Region)
	case "ParameterVersionNotFound":
		return fmt.Sprintf("the parameter has no version or label %q in %s", e.Ref.Selector, e.Region)
	case "ResourceNotFoundException":
		return fmt.Sprintf("no such secret, or no version with that stage or id, in %s; check the ARN, the stage and the version id", e.Region)
	case "AccessDeniedException":
		return fmt.Sprintf("access denied: the task role needs %s on this resource (and kms:Decrypt on its key if it uses a customer managed key)", svc)
	case "DecryptionFailure", "KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException", "KMSInvalidStateException":
		return "AWS could not decrypt the value: the task role needs kms:Decrypt on the key that encrypts it, and the key must be enabled"
	case "InvalidRequestException":
		return "Secrets Manager refused the request: the secret may be scheduled for deletion"
	case "ValidationException", "InvalidParameterException", "InvalidKeyId", "ParameterVersionLabelLimitExceeded":
		return "AWS rejected the reference as invalid: " + apiMessage(e.Err)
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return "AWS rejected the credentials: check the task role (taskRoleArn) and the container's clock"
	case "NoCredentials":
		return "no credentials: give the task a task role (taskRoleArn); outside ECS set the usual AWS credential variables"
	case "ThrottlingException":
		return "throttled by AWS after every retry; lower the polling rate or ask for a higher quota"
	case "KeyNotFound":
		var k *secret.KeyNotFoundError
		errors.As(e.Err, &k)
		return fmt.Sprintf("the secret's JSON has no top-level key %q (keys are case-sensitive)", k.Key)
	case "NotJSONObject":
		return fmt.Sprintf("the secret is not a JSON object, so key %q cannot be read from it", e.Ref.JSONKey)
	case "Timeout":
		return "gave up at the start-up deadline (--timeout) before AWS answered"
	case "RequestError":
		return fmt.Sprintf("could not reach the %s endpoint in %s: check the network path (NAT gateway or VPC endpoint) and the region", e.Ref.Service, e.Region)
	}
	return apiMessage(e.Err)
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != "" {
		return ae.ErrorMessage()
	}
	return "unexpected error"
}

// ErrorCode names err: the AWS error code where AWS sent one, else one of
// ours (Timeout, NoCredentials, RequestError, ...). One classification for
// every AWS call the agent makes.
func ErrorCode(err error) string {
	var ae smithy.APIError
	var kn *secret.KeyNotFoundError
	switch {
	case errors.Is(err, errParameterNotFound):
		return "ParameterNotFound"
	case errors.Is(err, errStageNotFound):
		// What GetSecretValue answers for that stage.
		return "ResourceNotFoundException"
	case errors.As(err, &kn):
		return "KeyNotFound"
	case errors.Is(err, secret.ErrNotJSONObject):
		return "NotJSONObject"
	case errors.Is(err, ErrCredentials):
		// Before APIError: the credentials endpoint's own errors are APIErrors too.
		return "NoCredentials"
	case errors.As(err, &ae):
		return ae.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "Timeout"
	}
	// Network failures, and anything else that never reached AWS.
	return "RequestError"
}

// ErrCredentials marks a failure to get credentials, as opposed to AWS
// rejecting them.
var ErrCredentials = errors.New("cannot get credentials")

// Errors returns the *Error values joined in err (as Fetch and Poll return
// them), and any other error as it is.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// LogAttrs are the slog attributes of e, for the one line that reports it.
func (e *Error) LogAttrs() []any {
	return []any{"secret", e.Name, "value_from", e.Ref.Raw, "region", e.Region,
		"code", e.Code, "class", string(e.Class())}
}
