package fetch

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Service is the AWS service a reference is resolved with.
type Service int

const (
	ParameterStore Service = iota + 1
	SecretsManager
)

// String returns the service's ARN name.
func (s Service) String() string {
	switch s {
	case ParameterStore:
		return "ssm"
	case SecretsManager:
		return "secretsmanager"
	}
	return "Service(" + strconv.Itoa(int(s)) + ")"
}

// Ref is a parsed valueFrom.
type Ref struct {
	Raw       string // the valueFrom exactly as written
	Service   Service
	Partition string // from an ARN; "" for a bare Parameter Store name
	Region    string // from an ARN; "" for a bare name (the task's region applies)
	Account   string // from an ARN; ""

	// Parameter Store (Service == ParameterStore)
	Parameter         string // the parameter name: "/prod/db/password" or "dbname"
	Selector          string // "3" or "label" from "name:3" / "name:label"; "" if none
	IsARN             bool   // written as a full ssm ARN (needed for parameters shared from another account)
	ViaSecretsManager bool   // name starts with /aws/reference/secretsmanager/

	// Secrets Manager (Service == SecretsManager)
	SecretID     string // the ARN up to and including the secret id
	JSONKey      string // "" = whole secret
	VersionStage string // "" = unset
	VersionID    string // "" = unset
}

// RefError reports a malformed valueFrom.
type RefError struct{ Ref, Reason string }

func (e *RefError) Error() string {
	return fmt.Sprintf("invalid valueFrom %q: %s", e.Ref, e.Reason)
}

// Limits are the ones Parameter Store and Secrets Manager enforce, so a bad
// reference fails at start-up rather than as a ValidationException later.
const (
	maxNameLen       = 1011
	maxNameDepth     = 15
	maxVersionDigits = 10
	maxLabelLen      = 100
	maxSecretIDLen   = 512
	maxStageLen      = 256
	minVersionIDLen  = 32
	maxVersionIDLen  = 64

	smReferencePrefix = "/aws/reference/secretsmanager/"
	publicPrefix      = "/aws/service/"
)

var regionRE = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$`)

// ParseRef parses one valueFrom. Errors are *RefError.
func ParseRef(s string) (Ref, error) {
	r := Ref{Raw: s}
	reason := checkText(s)
	if reason == "" {
		if strings.HasPrefix(s, "arn:") {
			reason = r.parseARN()
		} else {
			// ECS treats every non-ARN string as a Parameter Store name.
			r.Service = ParameterStore
			reason = r.parseParameter(s, false)
		}
	}
	if reason != "" {
		return Ref{}, &RefError{Ref: s, Reason: reason}
	}
	return r, nil
}

// ParameterQuery is the string to put in GetParameters Names: the full ARN
// (with ":selector" if any) when IsARN, else Parameter[+":"+Selector].
// It is "" for a Secrets Manager reference.
func (r Ref) ParameterQuery() string {
	if r.Service != ParameterStore {
		return ""
	}
	q := r.Parameter
	if r.IsARN {
		q = "arn:" + r.Partition + ":ssm:" + r.Region + ":" + r.Account + ":parameter/" + strings.TrimPrefix(q, "/")
	}
	if r.Selector != "" {
		q += ":" + r.Selector
	}
	return q
}

// String returns Raw.
func (r Ref) String() string { return r.Raw }

// checkText rejects what no form allows; these usually come from a
// copy-paste or a templating mistake, so each gets its own reason.
func checkText(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if first, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(first) {
		return "must not start with whitespace"
	}
	if last, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(last) {
		return "must not end with whitespace"
	}
	for i, c := range s {
		if unicode.IsControl(c) {
			return fmt.Sprintf("must not contain control character %q (at byte %d)", c, i)
		}
	}
	return ""
}

func (r *Ref) parseARN() string {
	// The resource is the rest and may itself contain colons.
	f := strings.SplitN(r.Raw, ":", 6)
	if len(f) < 6 {
		return fmt.Sprintf(`ARN must be "arn:partition:service:region:account:resource", got %d fields`, len(f))
	}
	partition, service, region, account, resource := f[1], f[2], f[3], f[4], f[5]
	switch partition {
	case "aws", "aws-cn", "aws-us-gov":
	default:
		return fmt.Sprintf(`partition must be "aws", "aws-cn" or "aws-us-gov", got %q`, partition)
	}
	switch service {
	case "ssm":
		r.Service = ParameterStore
	case "secretsmanager":
		r.Service = SecretsManager
	default:
		return fmt.Sprintf(`service must be "ssm" or "secretsmanager", got %q`, service)
	}
	if !regionRE.MatchString(region) {
		return fmt.Sprintf(`region must look like "us-east-1", got %q`, region)
	}
	if RegionPartition(region) != partition {
		return fmt.Sprintf("region %q is not in partition %q", region, partition)
	}
	if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
		return fmt.Sprintf("account must be 12 digits, got %q", account)
	}
	r.Partition, r.Region, r.Account = partition, region, account

	if r.Service == SecretsManager {
		return r.parseSecret(resource)
	}
	rest, ok := strings.CutPrefix(resource, "parameter/")
	if !ok {
		return fmt.Sprintf(`ssm ARN resource must be "parameter/NAME", got %q`, resource)
	}
	r.IsARN = true
	return r.parseParameter(rest, true)
}

// RegionPartition is the partition a well-formed region belongs to. ISO
// regions map to a partition we never accept, so they always mismatch.
func RegionPartition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region[2:], "-iso"):
		return "aws-iso"
	}
	return "aws"
}

// parseParameter parses NAME[:SELECTOR]. In an ARN the resource drops the
// leading "/" of a hierarchical name, so fromARN puts it back.
func (r *Ref) parseParameter(s string, fromARN bool) string {
	name, sel := s, ""
	if n := strings.Count(s, ":"); n > 1 {
		return fmt.Sprintf(`parameter must be "NAME" or "NAME:SELECTOR", got %d colons`, n)
	} else if n == 1 {
		i := strings.IndexByte(s, ':')
		name, sel = s[:i], s[i+1:]
		if sel == "" {
			return `selector after ":" is empty, want a version or a label`
		}
	}
	if fromARN && strings.Contains(name, "/") {
		name = "/" + name
	}
	via, reason := checkName(name)
	if reason != "" {
		return reason
	}
	if sel != "" {
		if via {
			return "selector is not allowed on " + smReferencePrefix + " names"
		}
		if reason := checkSelector(sel); reason != "" {
			return reason
		}
	}
	r.Parameter, r.Selector, r.ViaSecretsManager = name, sel, via
	return ""
}

// checkName validates a parameter name and reports whether it is a
// Secrets Manager reference.
func checkName(name string) (via bool, reason string) {
	if name == "" {
		return false, "parameter name is empty"
	}
	if len(name) > maxNameLen {
		return false, fmt.Sprintf("parameter name must be at most %d bytes, got %d", maxNameLen, len(name))
	}
	if c, ok := badChar(name, "_.-/"); ok {
		return false, fmt.Sprintf(`parameter name may only contain A-Z, a-z, 0-9 and "_.-/", got %q`, c)
	}
	if name == smReferencePrefix {
		return false, "secret id after " + smReferencePrefix + " is empty"
	}
	if strings.Contains(name, "/") {
		switch {
		case name[0] != '/':
			return false, `parameter name with "/" must start with "/"`
		case strings.HasSuffix(name, "/"):
			return false, `parameter name must not end with "/"`
		case strings.Contains(name, "//"):
			return false, `parameter name must not contain "//"`
		case strings.Count(name, "/") > maxNameDepth:
			return false, fmt.Sprintf("parameter name must be at most %d levels deep, got %d", maxNameDepth, strings.Count(name, "/"))
		}
	}
	switch {
	case strings.HasPrefix(name, smReferencePrefix):
		return true, ""
	case strings.HasPrefix(name, publicPrefix):
		return false, ""
	case reservedPrefix(strings.TrimPrefix(name, "/")):
		return false, `parameter name must not begin with "aws" or "ssm" (except ` + smReferencePrefix + ` and ` + publicPrefix + `)`
	}
	return false, ""
}

// checkSelector validates a version ("3") or label ("prod") selector.
func checkSelector(sel string) string {
	if strings.Trim(sel, "0123456789") == "" {
		switch {
		case sel[0] == '0':
			return fmt.Sprintf("version selector must be a positive number without leading zeros, got %q", sel)
		case len(sel) > maxVersionDigits:
			return fmt.Sprintf("version selector must be at most %d digits, got %d", maxVersionDigits, len(sel))
		}
		return ""
	}
	switch {
	case len(sel) > maxLabelLen:
		return fmt.Sprintf("label selector must be at most %d characters, got %d", maxLabelLen, len(sel))
	case sel[0] >= '0' && sel[0] <= '9':
		return fmt.Sprintf("label selector must not start with a digit, got %q", sel)
	case reservedPrefix(sel):
		return fmt.Sprintf(`label selector must not begin with "aws" or "ssm", got %q`, sel)
	}
	if c, ok := badChar(sel, "_.-"); ok {
		return fmt.Sprintf(`label selector may only contain A-Z, a-z, 0-9 and "_.-", got %q`, c)
	}
	return ""
}

// parseSecret parses the resource of a Secrets Manager ARN.
func (r *Ref) parseSecret(resource string) string {
	rest, ok := strings.CutPrefix(resource, "secret:")
	if !ok {
		return fmt.Sprintf(`secrets manager ARN resource must start with "secret:", got %q`, resource)
	}
	// ECS requires all four fields or just the id; a partial form is
	// ambiguous (is "a:b" a key or a stage?), so it is an error.
	f := strings.Split(rest, ":")
	if len(f) != 1 && len(f) != 4 {
		return fmt.Sprintf(`secrets manager ARN must be "secret:ID" or "secret:ID:json-key:version-stage:version-id", got %d fields after "secret:"`, len(f))
	}
	id := f[0]
	switch {
	case id == "":
		return "secret id is empty"
	case len(id) > maxSecretIDLen:
		return fmt.Sprintf("secret id must be at most %d characters, got %d", maxSecretIDLen, len(id))
	}
	if c, ok := badChar(id, "/_+=.@-"); ok {
		return fmt.Sprintf(`secret id may only contain A-Z, a-z, 0-9 and "/_+=.@-", got %q`, c)
	}
	if len(f) == 4 {
		key, stage, version := f[1], f[2], f[3]
		if stage != "" && version != "" {
			return "version-stage and version-id are both set, want at most one"
		}
		if stage != "" {
			if len(stage) > maxStageLen {
				return fmt.Sprintf("version-stage must be at most %d characters, got %d", maxStageLen, len(stage))
			}
			if c, ok := badChar(stage, "_.-"); ok {
				return fmt.Sprintf(`version-stage may only contain A-Z, a-z, 0-9 and "_.-", got %q`, c)
			}
		}
		if version != "" {
			if len(version) < minVersionIDLen || len(version) > maxVersionIDLen {
				return fmt.Sprintf("version-id must be %d to %d characters, got %d", minVersionIDLen, maxVersionIDLen, len(version))
			}
			if c, ok := badChar(version, "-"); ok {
				return fmt.Sprintf(`version-id may only contain A-Z, a-z, 0-9 and "-", got %q`, c)
			}
		}
		r.JSONKey, r.VersionStage, r.VersionID = key, stage, version
	}
	// Slice Raw rather than rebuild, so SecretID is the input's own prefix.
	r.SecretID = r.Raw[:len(r.Raw)-len(rest)+len(id)]
	return ""
}

// reservedPrefix reports whether s begins with "aws" or "ssm" in any case,
// which Parameter Store reserves for itself.
func reservedPrefix(s string) bool {
	return len(s) >= 3 && (strings.EqualFold(s[:3], "aws") || strings.EqualFold(s[:3], "ssm"))
}

// badChar returns the first rune of s that is neither an ASCII letter or
// digit nor in extra.
func badChar(s, extra string) (rune, bool) {
	for _, c := range s {
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.ContainsRune(extra, c) {
			continue
		}
		return c, true
	}
	return 0, false
}

// ValidRegion reports whether s has the shape of an AWS region name.
func ValidRegion(s string) bool { return regionRE.MatchString(s) }

// Pinned reports whether r names one fixed version ("name:3", a version
// id), which can never change and is never polled.
func Pinned(r Ref) bool { return pinned(r) }
