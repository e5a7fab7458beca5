package feed

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// The environment variables of the feed's shared bearer token
// (docs/FEED.md "Authentication"). ECS injects them from Secrets Manager
// (a task definition's secrets): never a flag, never the configuration
// file, so the token reaches no command line and no file.
const (
	// TokenEnv is the token the watcher accepts and the agents send.
	TokenEnv = "AGENT_FEED_TOKEN"
	// TokenPreviousEnv is a token the watcher also accepts while the
	// agents move to a new one.
	TokenPreviousEnv = "AGENT_FEED_TOKEN_PREVIOUS"
)

// MinTokenBytes is the shortest token accepted.
const MinTokenBytes = 16

// Token is a shared bearer token. Its value is never printed: String,
// GoString and LogValue redact it. The zero Token is no token.
type Token struct {
	value string
	sum   [sha256.Size]byte
}

// ParseToken reads the token in the variable env (named in the error,
// whose text never holds the value). "" is no token, and no error.
func ParseToken(env, value string) (Token, error) {
	if value == "" {
		return Token{}, nil
	}
	if len(value) < MinTokenBytes {
		return Token{}, fmt.Errorf("%s: %d bytes, want at least %d", env, len(value), MinTokenBytes)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c <= ' ' || c > '~' {
			return Token{}, fmt.Errorf("%s: byte %d is not printable ASCII (spaces, control and non-ASCII characters are not allowed)", env, i+1)
		}
	}
	return Token{value: value, sum: sha256.Sum256([]byte(value))}, nil
}

// Set reports whether t is a token.
func (t Token) Set() bool { return t.value != "" }

// String redacts the value.
func (t Token) String() string {
	if !t.Set() {
		return "none"
	}
	return "[REDACTED]"
}

// GoString redacts the value.
func (t Token) GoString() string { return "feed.Token(" + t.String() + ")" }

// LogValue redacts the value.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// authorize sets r's Authorization header to t, if t is a token.
func (t Token) authorize(r *http.Request) {
	if t.Set() {
		r.Header.Set("Authorization", "Bearer "+t.value)
	}
}

// bearer is the credential of an Authorization: Bearer header (the
// scheme's case ignored, RFC 9110 §11.1), and whether there is one.
func bearer(h http.Header) (string, bool) {
	scheme, cred, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimLeft(cred, " ")
	return cred, cred != ""
}

// accepts reports whether cred is one of tokens. It hashes cred and
// compares the digests with equal, crypto/subtle.ConstantTimeCompare in a
// Server: equal lengths whatever was sent, every token compared, no early
// exit, so the time taken says nothing of how much of a token matched.
func accepts(tokens []Token, cred string, equal func(x, y []byte) int) bool {
	sum := sha256.Sum256([]byte(cred))
	ok := 0
	for _, t := range tokens {
		ok |= equal(sum[:], t.sum[:])
	}
	return ok == 1
}
