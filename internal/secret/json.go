package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// ErrNotJSONObject means a secret that was asked for a JSON key is not a JSON
// object. It deliberately carries no parser detail: encoding/json errors quote
// bytes of the input, which here is the secret.
var ErrNotJSONObject = errors.New("secret value is not a JSON object")

// KeyNotFoundError means a JSON secret has no such top-level key. Key names are
// structure, not content, so the error names it.
type KeyNotFoundError struct{ Key string }

func (e *KeyNotFoundError) Error() string {
	return fmt.Sprintf("key %q not found in secret's JSON", e.Key)
}

// Fields returns the top-level fields of a JSON object secret. A string field
// is its unquoted text, as ECS injects it; any other field is its compact JSON
// text (1000000 stays 1000000, {"a": "b"} becomes {"a":"b"}), where ECS would
// print Go's %v.
func (v Value) Fields() (map[string]Value, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v.b, &obj); err != nil || obj == nil {
		return nil, ErrNotJSONObject
	}
	out := make(map[string]Value, len(obj))
	for k, raw := range obj {
		out[k] = fieldValue(raw)
	}
	return out, nil
}

// Field returns one top-level field, as Fields does.
func (v Value) Field(key string) (Value, error) {
	fields, err := v.Fields()
	if err != nil {
		return Value{}, err
	}
	f, ok := fields[key]
	if !ok {
		return Value{}, &KeyNotFoundError{Key: key}
	}
	return f, nil
}

// SortedKeys returns m's keys in byte order, for stable output.
func SortedKeys(m map[string]Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fieldValue(raw json.RawMessage) Value {
	var s *string
	if json.Unmarshal(raw, &s) == nil && s != nil {
		return FromString(*s)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		// Unmarshal already validated raw; keep it as is if Compact disagrees.
		return New(bytes.Clone(raw))
	}
	return New(buf.Bytes())
}
