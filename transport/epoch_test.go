package transport

import (
	"testing"
)

func TestWithEpoch(t *testing.T) {
	for _, c := range []struct{ in, epoch, want string }{
		{`{}`, "e1", `{"epoch":"e1"}`},
		{"{ \n}", "e1", "{ \n\"epoch\":\"e1\"}"},
		{`{"stream":"room:a","version":2}`, "e1", `{"stream":"room:a","version":2,"epoch":"e1"}`},
		{"{\"version\":2}\n", "e1", `{"version":2,"epoch":"e1"}`},
		{`{"version":2}`, `a"b`, `{"version":2,"epoch":"a\"b"}`},
		{`{"version":2}`, "", `{"version":2}`},
		{`[1]`, "e1", `[1]`},
		{`null`, "e1", `null`},
		{``, "e1", ``},
	} {
		if got := string(withEpoch([]byte(c.in), c.epoch)); got != c.want {
			t.Errorf("withEpoch(%q, %q) = %q, want %q", c.in, c.epoch, got, c.want)
		}
	}
}
