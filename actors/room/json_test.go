package room

import (
	"bytes"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// The shortcuts must agree with the general way whenever they answer.

func FuzzParseUserText(f *testing.F) {
	for _, s := range []string{
		`{"user":"ann","text":"hi"}`, ` { "text" : "x" , "user":"y" } `, `{}`, `{"user":"a"}`,
		`{"user":"a","user":"b"}`, `{"User":"a"}`, `{"user":"a\n"}`, `{"user":1}`, `{"user":"a"} x`,
		`{"user":"a",}`, "{\"user\":\"\xff\"}", `{"user":"é€","text":"<b>&amp;</b>"}`, `{"user":null}`, ``, `[]`,
		`{"user":"a","text":"b","x":1}`, "{\"user\":\"a\u2028\"}", `{"user":"a"}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		user, text, ok := parseUserText(data)
		if !ok {
			return
		}
		var d MessagePosted
		if err := events.DecodeData(data, &d, events.ErrInvalidEvent); err != nil {
			t.Fatalf("%q: shortcut took it, the strict decoder refuses: %v", data, err)
		}
		if d.User != string(user) || d.Text != string(text) {
			t.Fatalf("%q: shortcut %q %q, strict decoder %q %q", data, user, text, d.User, d.Text)
		}
	})
}

func FuzzAppendUserText(f *testing.F) {
	for _, s := range [][2]string{{"ann", "hi"}, {"a\"b", "c"}, {"<b>", "&"}, {"é", "\u2028"}, {"\xff", "x"}, {"a\\b", "\x01"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, user, text string) {
		got, ok := appendUserText(nil, user, text)
		if !ok {
			return
		}
		want, err := events.EncodeData(MessagePosted{User: user, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q %q: shortcut %s, EncodeData %s", user, text, got, want)
		}
	})
}

func FuzzPlainBytes(f *testing.F) {
	for _, s := range []string{"ann", "a\"b", "é", "\u2028", "\u2029x", "\xff", "\xe2\x80", "a\\b", "\x01", "€\u2027"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plainBytes([]byte(s)), plain(s); got != want {
			t.Fatalf("%q: plainBytes %t, plain %t", s, got, want)
		}
	})
}

// FuzzPostPlain: the shortcut decides as the general way does.
func FuzzPostPlain(f *testing.F) {
	for _, s := range [][2]string{{`{"user":"ann","text":"hi"}`, ""}, {`{"text":"hi"}`, "bob"}, {`{"user":"bob","text":"hi"}`, "bob"},
		{`{"user":"ann","text":"hi"}`, "bob"}, {`{"user":"","text":"x"}`, ""}, {`{"user":"a","text":""}`, ""}, {"{\"user\":\"a\u0085\",\"text\":\"x\"}", ""},
		{`{"text":"x"}`, "b\n"}, {`{"text":"x"}`, "\xff"}, {`{"user":"é","text":"€"}`, ""}} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, data []byte, authUser string) {
		c := decider.Command{Stream: "room:r", Type: CommandPostMessage, Data: data, User: authUser}
		got, ok := postPlain(c)
		if !ok {
			return
		}
		want, err := postGeneral(c)
		if err != nil {
			t.Fatalf("%q as %q: shortcut took it, the general way refuses: %v", data, authUser, err)
		}
		if len(got) != 1 || len(want) != 1 || got[0].Type != want[0].Type || !bytes.Equal(got[0].Data, want[0].Data) {
			t.Fatalf("%q as %q: shortcut %+v, general way %+v", data, authUser, got, want)
		}
	})
}
