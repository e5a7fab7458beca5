// Package secret holds secret bytes in a type that never prints them, and reads
// the top-level fields of JSON secrets the way ECS does.
package secret

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Value is a secret's bytes. Every way of printing it (fmt verbs, slog, JSON
// marshalling) yields a placeholder; only Bytes gives the content.
type Value struct {
	b []byte
}

// New wraps b. The caller must not modify b afterwards.
func New(b []byte) Value { return Value{b: b} }

// FromString wraps s.
func FromString(s string) Value { return Value{b: []byte(s)} }

// Bytes returns the secret's content. The caller must not modify it.
func (v Value) Bytes() []byte { return v.b }

// Len returns the content's length in bytes.
func (v Value) Len() int { return len(v.b) }

// Equal reports whether v and w hold the same bytes.
func (v Value) Equal(w Value) bool { return string(v.b) == string(w.b) }

func (Value) String() string               { return redacted }
func (Value) GoString() string             { return redacted }
func (Value) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Value) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
