package events

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidJSON checks the fast JSON scan against encoding/json: ValidJSON
// and validObject accept exactly what json.Valid accepts, and JSONValueLen
// finds a valid value.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {}`, `{} `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`,
		`{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"` + "\x01" + `"}`, `{"a":"` + "\xff\xfe" + `"}`,
		`{"a":tru}`, `{"a":true,}`, `{,}`, `{"a" 1}`, `{"a":1}x`, `{"a":1}{}`, `[1]`, `"a"`, `1 `, ` [1,2]`, `-`, `"x`,
		`{"a":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`,
		`{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 70) + `}`,
		`{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 69) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data)
		if got := ValidJSON(data); got != valid {
			t.Fatalf("ValidJSON(%q) = %v, json.Valid says %v", data, got, valid)
		}
		want := len(data) > 0 && data[0] == '{' && valid
		if got := validObject(data); got != want {
			t.Fatalf("validObject(%q) = %v, json.Valid says %v", data, got, want)
		}
		// JSONValueLen on data followed by more: the value it finds is
		// valid on its own and ends where a following comma can start.
		if n, ok := JSONValueLen(append(append([]byte(nil), data...), ',', '1')); ok {
			if !json.Valid(data[:min(n, len(data))]) || n > len(data) {
				t.Fatalf("JSONValueLen(%q+\",1\") = %d, not a valid value", data, n)
			}
		} else if valid && len(data) > 0 && data[0] > ' ' && len(data) < 100 && !deep(data) {
			t.Fatalf("JSONValueLen refused valid %q", data)
		}
	})
}

// deep reports whether data nests brackets deeper than the scan follows.
func deep(data []byte) bool {
	d := 0
	for _, c := range data {
		switch c {
		case '{', '[':
			if d++; d > maxScanDepth {
				return true
			}
		case '}', ']':
			d--
		}
	}
	return false
}

// BenchmarkValidJSON checks a chat message's data, mostly string bytes,
// as every append and command does.
func BenchmarkValidJSON(b *testing.B) {
	data := []byte(`{"user":"bench-user-0042","text":"The quick brown fox jumps over the lazy dog while the kitchen prepares order 00000042; nothing to see here, just padding to size.","n":42,"tags":["a","b"]}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if !ValidJSON(data) {
			b.Fatal("not valid")
		}
	}
}
