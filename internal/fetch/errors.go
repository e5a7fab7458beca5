package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Error is one secret that could not be resolved. It names the secret, the
// reference, the AWS error code and what to do; it never holds a value.
type Error struct {
	Name   string // configured name
	Ref    Ref
	Region string
	Code   string // AWS error code, or one of ours (ParameterNotFound, KeyNotFound, NotJSONObject, NoCredentials, CredentialsUnavailable, NoAnswer, BadResponse, RequestError, Timeout, Canceled)
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

// Error is our hint and then AWS's own message, which tells an SCP from a
// permissions boundary from a resource policy (and never holds a value).
func (e *Error) Error() string {
	line := fmt.Sprintf("secret %s (valueFrom %s): %s: %s", e.Name, e.Ref.Raw, e.Code, e.Hint())
	if msg := awsMessage(e.Err); msg != "" && !strings.Contains(line, msg) {
		line += " (AWS: " + msg + ")"
	}
	return line
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
		"InternalFailure", "ServiceUnavailable", "InternalServiceError", "Timeout", "Canceled",
		"NoAnswer", "CredentialsUnavailable", "BadResponse":
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
	case "CredentialsUnavailable":
		return credentialsHint(e.Err) + "; the agent retries"
	case "NoAnswer":
		var na *NoAnswerError
		errors.As(e.Err, &na)
		return fmt.Sprintf("no answer from the %s endpoint in %s within %s (each attempt's deadline): AWS is slow or the network path drops packets; the agent retries", e.Ref.Service, e.Region, na.After)
	case "BadResponse":
		return fmt.Sprintf("the %s endpoint in %s sent a response that could not be read (cut off, or not in AWS's format: a proxy answering in its place?); the agent retries", e.Ref.Service, e.Region)
	case "ThrottlingException":
		return "throttled by AWS after every retry; lower the polling rate or ask for a higher quota"
	case "KeyNotFound":
		var k *secret.KeyNotFoundError
		errors.As(e.Err, &k)
		return fmt.Sprintf("the secret's JSON has no top-level key %q (keys are case-sensitive)", k.Key)
	case "NotJSONObject":
		return fmt.Sprintf("the secret is not a JSON object, so key %q cannot be read from it", e.Ref.JSONKey)
	case "Timeout":
		return "no answer before the deadline (the start-up --timeout, or the refresh cycle's): AWS is slow or unreachable; the agent retries while it runs"
	case "Canceled":
		return "stopped before AWS answered: the agent is shutting down"
	case "RequestError":
		return fmt.Sprintf("could not reach the %s endpoint in %s (%v): check the network path (NAT gateway or VPC endpoint) and the region", e.Ref.Service, e.Region, networkCause(e.Err))
	}
	return apiMessage(e.Err)
}

func apiMessage(err error) string {
	if m := awsMessage(err); m != "" {
		return m
	}
	return "unexpected error"
}

// awsMessage is the message AWS (or the credentials endpoint) sent with its
// error code, on one line and cut short (a proxy may answer with a page of
// HTML), or "".
func awsMessage(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	m := strings.Join(strings.Fields(ae.ErrorMessage()), " ")
	if len(m) > maxAWSMessage {
		m = strings.ToValidUTF8(m[:maxAWSMessage], "") + "…"
	}
	return m
}

// maxAWSMessage bounds the AWS message on an error line.
const maxAWSMessage = 300

// credentialsHint says what went wrong with the container credentials
// endpoint when it did not give an answer to act on.
func credentialsHint(err error) string {
	var (
		na *NoAnswerError
		st interface{ HTTPStatusCode() int }
		ne net.Error
	)
	switch {
	case errors.As(err, &na):
		return fmt.Sprintf("the container credentials endpoint gave no answer within %s", na.After)
	case errors.As(err, &st) && st.HTTPStatusCode() != 0:
		return fmt.Sprintf("the container credentials endpoint answered %d %s", st.HTTPStatusCode(), http.StatusText(st.HTTPStatusCode()))
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("the container credentials endpoint gave no answer within %s", CredentialsTimeout)
	}
	return fmt.Sprintf("could not reach the container credentials endpoint (%v)", networkCause(err))
}

// networkCause is the innermost useful part of a network error: the
// operation and address ("dial tcp 10.0.0.1:443: connect: connection
// refused"), without the request's URL.
func networkCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) && se.Err != nil && !errors.As(se.Err, &ue) {
		return se.Err
	}
	if ue != nil {
		return ue.Err
	}
	return errors.New("no response")
}

// credentialsUnavailable reports whether a failure to get credentials is the
// endpoint's failure (down, 5xx, throttled, no answer), which passes, rather
// than an answer that there are none.
func credentialsUnavailable(err error) bool {
	var (
		na *NoAnswerError
		st interface{ HTTPStatusCode() int }
		se *smithyhttp.RequestSendError
	)
	switch {
	case errors.As(err, &na), errors.As(err, &se):
		return true
	case errors.As(err, &st):
		return st.HTTPStatusCode() >= 500 || st.HTTPStatusCode() == http.StatusTooManyRequests
	}
	return false
}

// ErrorCode names err: the AWS error code where AWS sent one, else one of
// ours (Timeout, NoCredentials, RequestError, ...). One classification for
// every AWS call the agent makes.
func ErrorCode(err error) string {
	var (
		ae smithy.APIError
		kn *secret.KeyNotFoundError
		na *NoAnswerError
		de *smithy.DeserializationError
	)
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
	case errors.Is(err, ErrCredentials) && credentialsUnavailable(err):
		return "CredentialsUnavailable"
	case errors.Is(err, ErrCredentials) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		// Before APIError: the credentials endpoint's own errors are APIErrors too.
		return "NoCredentials"
	case errors.As(err, &na):
		return "NoAnswer"
	case errors.As(err, &ae):
		return ae.ErrorCode()
	case errors.As(err, &de):
		return "BadResponse"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.Is(err, context.DeadlineExceeded):
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
