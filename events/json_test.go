package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEventJSON(t *testing.T) {
	tm := time.Date(2026, 11, 25, 16, 37, 55, 120_000_000, time.UTC)
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"three digits kept", Event{Stream: "room:lobby", Version: 3, Position: 1042, ID: "a", Type: "MessagePosted", Time: tm, Data: json.RawMessage(`{"user":"ann","text":"hi"}`)},
			`{"stream":"room:lobby","version":3,"position":1042,"id":"a","type":"MessagePosted","time":"2026-11-25T16:37:55.120Z","data":{"user":"ann","text":"hi"}}`},
		{"whole second", Event{Stream: "game:x", Version: 1, Position: 1, ID: "b", Type: "GameEnded", Time: tm.Truncate(time.Second)},
			`{"stream":"game:x","version":1,"position":1,"id":"b","type":"GameEnded","time":"2026-11-25T16:37:55.000Z","data":{}}`},
		{"meta both", Event{Stream: "game:x", Version: 1, Position: 1, ID: "c", Type: "T", Time: tm, Data: json.RawMessage(`{}`), Meta: Meta{Correlation: "k", Causation: "c"}},
			`{"stream":"game:x","version":1,"position":1,"id":"c","type":"T","time":"2026-11-25T16:37:55.120Z","data":{},"meta":{"correlation":"k","causation":"c"}}`},
		{"meta causation only", Event{Stream: "game:x", Version: 1, Position: 1, ID: "d", Type: "T", Time: tm, Data: json.RawMessage(`{}`), Meta: Meta{Causation: "c"}},
			`{"stream":"game:x","version":1,"position":1,"id":"d","type":"T","time":"2026-11-25T16:37:55.120Z","data":{},"meta":{"causation":"c"}}`},
		{"escapes", Event{Stream: "room:a", Version: 1, Position: 1, ID: "q\"\\\n\t\x01<>&\u2028é\xff", Type: "T", Time: tm, Data: json.RawMessage(`{}`)},
			`{"stream":"room:a","version":1,"position":1,"id":"q\"\\\n\t\u0001<>&\u2028é\ufffd","type":"T","time":"2026-11-25T16:37:55.120Z","data":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.ev.AppendJSON(nil)
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			back, err := DecodeEnvelope(got)
			if err != nil {
				t.Fatalf("decode own output: %v", err)
			}
			if !back.Time.Equal(tt.ev.Time) || back.ID != strings.ToValidUTF8(tt.ev.ID, "\ufffd") || back.Version != tt.ev.Version {
				t.Fatalf("round trip: got %+v", back)
			}
			fields := tt.ev.AppendJSONFields([]byte(`{"op":"event",`))
			fields = append(fields, '}')
			if !json.Valid(fields) || !bytes.Contains(fields, []byte(`"op":"event","stream"`)) {
				t.Fatalf("AppendJSONFields: %s", fields)
			}
		})
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "tab\there", "\x00\x1f\x7f", "ünï©ødé 日本語 🎉", "\u2029", "bad\xc3"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := string(AppendJSONString(nil, s)) + "\n"
		if got != want.String() {
			t.Errorf("%q: got %s want %s", s, got, want.String())
		}
	}
}
