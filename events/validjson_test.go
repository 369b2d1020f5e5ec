package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidObject checks validObject against encoding/json: the fast scan
// must accept exactly the objects json.Valid accepts.
func FuzzValidObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {}`, `{} `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`,
		`{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"` + "\x01" + `"}`, `{"a":"` + "\xff\xfe" + `"}`,
		`{"a":tru}`, `{"a":true,}`, `{,}`, `{"a" 1}`, `{"a":1}x`, `{"a":1}{}`, `[1]`, `"a"`,
		`{"a":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`,
		`{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 70) + `}`,
		`{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 69) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := len(data) > 0 && data[0] == '{' && json.Valid(data)
		if got := validObject(data); got != want {
			t.Fatalf("validObject(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}
