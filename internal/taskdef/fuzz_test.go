package taskdef

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParse: any input either fails with an error or yields a register
// shape that re-reads as itself; nothing panics. The corpus is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{describeJSON, registerJSON, containersJSON, `[]`, `{}`, `{"taskDefinition":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		td, err := Parse(data)
		if err != nil {
			return
		}
		td.Line("containerDefinitions[0].environment[0]")
		b, err := json.Marshal(td.Raw)
		if err != nil {
			t.Fatalf("register shape does not encode: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("register shape does not re-read: %v\n%s", err, b)
		}
		if again.Shape != Register || !reflect.DeepEqual(again.Raw, td.Raw) {
			t.Fatalf("register shape changed on re-reading:\n%s", b)
		}
	})
}
