package lint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// What an environment variable is flagged for. One variable gets at most one
// finding, the most specific: credential, then name, then entropy.
type envKind int

const (
	kindNone envKind = iota
	kindCredential
	kindName
	kindEntropy
)

// secretNameParts are the words in a variable name that say it holds a
// secret.
var secretNameParts = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY"}

// pointerSuffixes name variables that point at a secret rather than hold it
// (DB_PASSWORD_FILE=/run/secrets/DB_PASSWORD).
var pointerSuffixes = []string{"_FILE", "_PATH", "_DIR", "_ARN"}

// credentialPatterns recognise credentials by their shape; the label is what
// a finding calls it.
var credentialPatterns = []struct {
	label string
	re    *regexp.Regexp
}{
	{"an AWS access key id", regexp.MustCompile(`\b(AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b`)},
	{"a private key", regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)},
	{"a URL with a password", regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@[^\s]`)},
	{"a GitHub token", regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,})\b`)},
	{"a GitLab token", regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{"a Stripe key", regexp.MustCompile(`\b[sr]k_(live|test)_[A-Za-z0-9]{16,}`)},
	{"a Google API key", regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`)},
	{"an npm token", regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}\b`)},
	{"a SendGrid key", regexp.MustCompile(`\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`)},
	{"a JSON web token", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`)},
}

// fingerprint identifies a value without showing it: enough to tell two
// findings apart or match a value the operator holds.
func fingerprint(v string) string {
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// classify returns what an environment variable is flagged for and, for a
// credential, what it looks like.
func classify(name, value string) (envKind, string) {
	if value == "" {
		return kindNone, ""
	}
	for _, p := range credentialPatterns {
		if p.re.MatchString(value) {
			return kindCredential, p.label
		}
	}
	// The agent's configuration is JSON: only credentials inside it count.
	if name == "AGENT_CONFIG" {
		return kindNone, ""
	}
	if secretName(name) && !pointerValue(value) {
		return kindName, ""
	}
	if highEntropy(value) {
		return kindEntropy, ""
	}
	return kindNone, ""
}

func secretName(name string) bool {
	n := strings.ToUpper(name)
	for _, s := range pointerSuffixes {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	for _, p := range secretNameParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// pointerValue reports values that are not secrets whatever the name: a
// path, a reference, a URL without credentials, a switch.
func pointerValue(v string) bool {
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "arn:") {
		return true
	}
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "enabled", "disabled":
		return true
	}
	// A short number is a setting (TOKEN_TTL=300), not a secret.
	if len(v) <= 6 && strings.Trim(v, "0123456789") == "" {
		return true
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" && u.User == nil {
		return true
	}
	return false
}

// highEntropy reports a long token-like string: only token characters,
// upper and lower case and digits, close to random, and switching between
// case and digits as often as random text does (words and identifiers,
// "MyServiceName2024", switch rarely). Hex alone is left out: commit ids and
// digests are hex and are everywhere in environments.
func highEntropy(v string) bool {
	if len(v) < 20 || len(v) > 4096 || strings.HasPrefix(v, "arn:") {
		return false
	}
	var upper, lower, digit bool
	switches, letters, prev := 0, 0, -1
	for _, c := range v {
		class := -1 // punctuation separates words; it is no switch
		switch {
		case c >= 'A' && c <= 'Z':
			upper, class = true, 0
		case c >= 'a' && c <= 'z':
			lower, class = true, 1
		case c >= '0' && c <= '9':
			digit, class = true, 2
		case strings.ContainsRune("+/=_-.", c):
		default:
			return false
		}
		if class < 0 {
			continue
		}
		if prev >= 0 && class != prev {
			switches++
		}
		prev = class
		letters++
	}
	return upper && lower && digit && entropy(v) >= 3.5 && float64(switches) >= 0.35*float64(letters-1)
}

// entropy is the Shannon entropy of s in bits a byte.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(s))
			h -= p * math.Log2(p)
		}
	}
	return h
}

// checkEnvironment reports the environment variables classified as kind.
func checkEnvironment(kind envKind) func(*task, emitFunc) {
	return func(t *task, emit emitFunc) {
		for _, c := range t.containers {
			for j, kv := range c.def.Environment {
				name, value := aws.ToString(kv.Name), aws.ToString(kv.Value)
				k, label := classify(name, value)
				if k != kind {
					continue
				}
				p := c.path + ".environment[" + strconv.Itoa(j) + "]"
				fp := fingerprint(value)
				switch k {
				case kindCredential:
					emit(c, p, fmt.Sprintf("environment variable %s holds what looks like %s in plaintext (%s)", name, label, fp))
				case kindName:
					emit(c, p, fmt.Sprintf("environment variable %s holds a plaintext value (%s), and its name says it is a secret", name, fp))
				case kindEntropy:
					emit(c, p, fmt.Sprintf("environment variable %s holds a random-looking plaintext value (%s), possibly a credential", name, fp))
				}
			}
		}
	}
}

// checkValueFrom applies our reference parser, and what ECS rejects beyond
// it, to the secrets ECS itself resolves.
func checkValueFrom(t *task, emit emitFunc) {
	for _, c := range t.containers {
		for j, s := range c.def.Secrets {
			p := c.path + ".secrets[" + strconv.Itoa(j) + "]"
			if msg := nativeRefProblem(aws.ToString(s.ValueFrom)); msg != "" {
				emit(c, p, fmt.Sprintf("secret %s: %s", aws.ToString(s.Name), msg))
			}
		}
		if lc := c.def.LogConfiguration; lc != nil {
			for j, s := range lc.SecretOptions {
				p := c.path + ".logConfiguration.secretOptions[" + strconv.Itoa(j) + "]"
				if msg := nativeRefProblem(aws.ToString(s.ValueFrom)); msg != "" {
					emit(c, p, fmt.Sprintf("log driver secret option %s: %s", aws.ToString(s.Name), msg))
				}
			}
		}
	}
}

// nativeRefProblem is why ECS would reject ref, or "".
func nativeRefProblem(ref string) string {
	r, err := fetch.ParseRef(ref)
	var re *fetch.RefError
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("valueFrom %q is rejected: %s", ref, re.Reason)
	case err != nil:
		return fmt.Sprintf("valueFrom %q is rejected: %v", ref, err)
	case r.Selector != "":
		return fmt.Sprintf("valueFrom %q: ECS does not accept a Parameter Store version or label selector (the agent does)", ref)
	}
	return ""
}

// checkAgentConfig reports an AGENT_CONFIG or --secret that `agent check`
// would reject for its JSON or its references.
func checkAgentConfig(t *task, emit emitFunc) {
	for _, c := range t.containers {
		if c.mode == "" {
			continue
		}
		if c.cfgErr != nil {
			emit(c, c.cfgPath, fmt.Sprintf("AGENT_CONFIG is not a valid agent configuration: %v", c.cfgErr))
		}
		if c.cfg != nil {
			for j, s := range c.cfg.Secrets {
				if _, err := fetch.ParseRef(s.ValueFrom); err != nil {
					emit(c, c.cfgPath, fmt.Sprintf("AGENT_CONFIG secrets[%d] (%s): %v", j, s.Name, err))
				}
			}
		}
		for _, s := range c.secrets {
			name, ref, ok := strings.Cut(s, "=")
			if !ok {
				emit(c, c.path+".command", fmt.Sprintf("--secret %q: want NAME=VALUEFROM", s))
				continue
			}
			if _, err := fetch.ParseRef(ref); err != nil {
				emit(c, c.path+".command", fmt.Sprintf("--secret %s: %v", name, err))
			}
		}
	}
}
