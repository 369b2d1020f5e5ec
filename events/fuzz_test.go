package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// streamIDGrammar is ParseStreamID's documented grammar, written out
// independently of it: kind is 1–32 of [a-z], id is 1–64 of [A-Za-z0-9_.-].
var streamIDGrammar = regexp.MustCompile(`^[a-z]{1,32}:[A-Za-z0-9_.\-]{1,64}$`)

// FuzzParseStreamID: ParseStreamID never panics, accepts exactly the
// documented grammar, and what it accepts round-trips through String;
// ValidStreamID agrees with it; errors match ErrInvalidStream and quote the
// input clipped.
func FuzzParseStreamID(f *testing.F) {
	for _, s := range []string{
		"room:lobby", "order:1001", "kitchen:main", "user:71d4f55f72fa128dfb468a1a3901507c",
		"game:final.2026-11_25", "a:b", strings.Repeat("k", 32) + ":" + strings.Repeat("I", 64),
		"", ":", "room", "room:", ":x", "Room:x", "room:a:b", "room:a b", "room:é",
		strings.Repeat("k", 33) + ":x", "room:" + strings.Repeat("x", 65), "room:x\n", "room:\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := events.ParseStreamID(s)
		if valid := events.ValidStreamID(s); valid != (err == nil) {
			t.Fatalf("ValidStreamID(%q) = %v, ParseStreamID error %v", s, valid, err)
		}
		if want := streamIDGrammar.MatchString(s); want != (err == nil) {
			t.Fatalf("ParseStreamID(%q) error %v, grammar says valid=%v", s, err, want)
		}
		if err != nil {
			if !errors.Is(err, events.ErrInvalidStream) {
				t.Fatalf("ParseStreamID(%q) error %v does not match ErrInvalidStream", s, err)
			}
			if id != (events.StreamID{}) {
				t.Fatalf("ParseStreamID(%q) returned %+v with its error", s, id)
			}
			// The input is quoted clipped to 80 bytes: at most ~4 bytes
			// of %q per byte, plus the message.
			if n := len(err.Error()); n > 512 {
				t.Fatalf("ParseStreamID error is %d bytes long: %.100s…", n, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseStreamID(%q).String() = %q", s, id.String())
		}
		if id.Kind+":"+id.ID != s || strings.Contains(id.ID, ":") {
			t.Fatalf("ParseStreamID(%q) = %+v", s, id)
		}
	})
}

// FuzzDecoder: a Decoder over arbitrary bytes never panics; its errors are
// *LineError with a sensible line; every event it returns is a valid
// envelope that the Encoder writes as one line which decodes back to the
// same event (with the time and the data as a store keeps them: UTC
// milliseconds, empty data as {}), and encoding that again gives the same
// line.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		`{"stream":"room:lobby","version":1,"position":1,"id":"b3322680-6768-4557-997b-f40f4d952c93","type":"MessagePosted","time":"2026-11-25T08:59:36.705Z","data":{"user":"bob","text":"rolling back, sorry (#1)"}}`,
		`{"stream":"order:1001","version":2,"position":4,"id":"3b46fa4e","type":"KitchenNotified","time":"2026-11-25T12:00:29.773Z","data":{},"meta":{"correlation":"071ee443","causation":"071ee443"}}` + "\n\n" +
			`{"stream":"kitchen:main","version":1,"position":3,"id":"db3c6e4e","type":"TicketAdded","time":"2026-11-25T12:00:29.770Z","data":{"order":"order:1001","items":[{"name":"flat white","qty":2}]}}` + "\r\n",
		`{"stream":"game:x","version":1,"id":"e","type":"T"}`,
		`{"stream":"game:x","version":1,"id":"e","type":"T","time":"2026-01-02T03:04:05.123456789+05:30","data":{ "a" : [1, 2.5e3, null, "\u2028<b>"] }}`,
		`{"stream":"game:x","version":1,"id":"e","type":"T","data":null,"meta":{}}`,
		`{"stream":"game:x","version":1,"id":"e","type":"T","data":"not an object"}`,
		`{"stream":"Game:x","version":1,"id":"e","type":"T"}`,
		`{"stream":"game:x","version":0,"id":"e","type":"T"}`,
		`{"stream":"game:x","version":1,"id":"e","type":"T","extra":1}`,
		`{"stream":"game:x","version":1,"id":"e","type":"T"} {}`,
		`{"stream":"game:x","version":1,"id":"\ud800\"","type":"T\u0000"}`,
		"not json\n{\"stream\":",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := events.NewDecoder(bytes.NewReader(b))
		lines := bytes.Count(b, []byte("\n")) + 1
		// An error does not stop the Decoder, but a read error repeats:
		// stop after as many calls as there can be lines.
		for range lines + 1 {
			ev, err := dec.Next()
			if errors.Is(err, io.EOF) {
				if err != io.EOF {
					t.Fatalf("end of input is %v, want io.EOF itself", err)
				}
				return
			}
			if err != nil {
				var le *events.LineError
				if !errors.As(err, &le) {
					t.Fatalf("error %v (%T) is not a *LineError", err, err)
				}
				if le.Line < 1 || le.Line > lines+1 {
					t.Fatalf("error on line %d of %d: %v", le.Line, lines, err)
				}
				continue
			}
			if dec.Line() < 1 || dec.Line() > lines {
				t.Fatalf("event on line %d of %d", dec.Line(), lines)
			}
			checkReencode(t, ev)
		}
	})
}

// checkReencode checks one decoded event's round trip through the Encoder.
func checkReencode(t *testing.T, ev events.Event) {
	t.Helper()
	if !events.ValidStreamID(ev.Stream) || ev.Version == 0 || ev.ID == "" || ev.Type == "" {
		t.Fatalf("decoded an incomplete envelope: %+v", ev)
	}
	line := encodeLine(t, ev)
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' || !json.Valid(line) {
		t.Fatalf("Encoder wrote %q: not one JSON line", line)
	}
	back, err := events.DecodeEnvelope(line[:len(line)-1])
	if err != nil {
		t.Fatalf("event %+v\nencodes as %s\nwhich does not decode: %v", ev, line, err)
	}
	want := ev
	want.Time = ev.Time.UTC().Truncate(time.Millisecond)
	want.Data = events.NormalizeData(ev.Data)
	if !equalEvents(back, want) {
		t.Fatalf("round trip changed the event:\n got %+v\nwant %+v\nline %s", back, want, line)
	}
	if again := encodeLine(t, back); !bytes.Equal(again, line) {
		t.Fatalf("encoding is not stable:\n%s%s", line, again)
	}
}

func encodeLine(t *testing.T, ev events.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := events.NewEncoder(&buf)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func equalEvents(a, b events.Event) bool {
	return a.Stream == b.Stream && a.Version == b.Version && a.Position == b.Position &&
		a.ID == b.ID && a.Type == b.Type && a.Time.Equal(b.Time) && a.Meta == b.Meta &&
		bytes.Equal(a.Data, b.Data)
}
