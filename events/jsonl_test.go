package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

func TestJSONLRoundTrip(t *testing.T) {
	in := []events.Event{
		{Stream: "room:a", Version: 1, Position: 1, ID: "e1", Type: "RoomOpened",
			Time: time.Date(2024, 1, 2, 3, 4, 5, 6_000_000, time.UTC), Data: json.RawMessage(`{"name":"<lobby> & co"}`)},
		{Stream: "room:a", Version: 2, Position: 3, ID: "e2", Type: "MessagePosted",
			Time: time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC), Data: json.RawMessage(`{}`),
			Meta: events.Meta{Correlation: "c", Causation: "k"}},
	}
	var buf bytes.Buffer
	enc := events.NewEncoder(&buf)
	for _, e := range in {
		if err := enc.Encode(e); err != nil {
			t.Fatalf("Encode: %v", err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantText := `{"stream":"room:a","version":1,"position":1,"id":"e1","type":"RoomOpened","time":"2024-01-02T03:04:05.006Z","data":{"name":"<lobby> & co"}}
{"stream":"room:a","version":2,"position":3,"id":"e2","type":"MessagePosted","time":"2024-01-02T03:04:06.000Z","data":{},"meta":{"correlation":"c","causation":"k"}}
`
	if buf.String() != wantText {
		t.Fatalf("encoded:\n%s\nwant:\n%s", buf.String(), wantText)
	}

	dec := events.NewDecoder(&buf)
	for i, want := range in {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Next %d: want %+v, got %+v", i, want, got)
		}
		if dec.Line() != i+1 {
			t.Fatalf("Line after record %d: want %d, got %d", i, i+1, dec.Line())
		}
	}
	if _, err := dec.Next(); err != io.EOF {
		t.Fatalf("after the last record: want io.EOF, got %v", err)
	}
}

func TestDecoderStrict(t *testing.T) {
	const good = `{"stream":"room:a","version":1,"position":1,"id":"e1","type":"T","time":"2024-01-02T03:04:05Z","data":{}}`
	cases := []struct {
		name     string
		input    string
		wantLine int
		wantMsg  string
	}{
		{"unknown field", good + "\n" + `{"stream":"room:a","version":2,"id":"e2","type":"T","data":{},"extra":1}`, 2, "unknown field"},
		{"wrong type", `{"stream":"room:a","version":"1","id":"e1","type":"T"}`, 1, "version"},
		{"trailing data", good + ` {}`, 1, "trailing data"},
		{"missing stream", `{"version":1,"id":"e1","type":"T"}`, 1, "missing stream"},
		{"missing version", `{"stream":"room:a","id":"e1","type":"T"}`, 1, "missing version"},
		{"missing id", `{"stream":"room:a","version":1,"type":"T"}`, 1, "missing id"},
		{"missing type", `{"stream":"room:a","version":1,"id":"e1"}`, 1, "missing type"},
		{"bad stream", `{"stream":"Room:a","version":1,"id":"e1","type":"T"}`, 1, "invalid stream id"},
		{"not JSON", good + "\n\n" + `not json`, 3, "bad envelope"},
		{"negative version", `{"stream":"room:a","version":-1,"id":"e1","type":"T"}`, 1, "version"},
		{"time before year 0 in UTC", `{"stream":"room:a","version":1,"id":"e1","type":"T","time":"0000-01-01T00:30:00+01:00"}`, 1, "outside the years"},
		{"time after year 9999 in UTC", `{"stream":"room:a","version":1,"id":"e1","type":"T","time":"9999-12-31T23:59:59.999-00:01"}`, 1, "outside the years"},
		{"line too long", good + "\n" + strings.Repeat(" ", events.MaxLineSize+1), 2, "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec := events.NewDecoder(strings.NewReader(tc.input))
			var err error
			for err == nil {
				_, err = dec.Next()
			}
			var le *events.LineError
			if !errors.As(err, &le) {
				t.Fatalf("want a *LineError, got %T: %v", err, err)
			}
			if le.Line != tc.wantLine {
				t.Fatalf("want the error on line %d, got line %d: %v", tc.wantLine, le.Line, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("want an error naming the line and containing %q, got %q", tc.wantMsg, err)
			}
		})
	}
}

func TestDecoderSkipsBlankLinesAndUnwraps(t *testing.T) {
	in := "\n   \n" + `{"stream":"room:a","version":1,"id":"e1","type":"T"}` + "\r\n\n" + `{"stream":"order:1","version":1,"id":"x"}`
	dec := events.NewDecoder(strings.NewReader(in))
	e, err := dec.Next()
	if err != nil || e.ID != "e1" || dec.Line() != 3 {
		t.Fatalf("first record: want e1 on line 3, got %q on line %d, %v", e.ID, dec.Line(), err)
	}
	_, err = dec.Next()
	var le *events.LineError
	if !errors.As(err, &le) || le.Line != 5 || le.Unwrap() == nil {
		t.Fatalf("want a LineError on line 5 with a cause, got %v", err)
	}
	// DecodeEnvelope names an invalid stream with ErrInvalidStream.
	if _, err := events.DecodeEnvelope([]byte(`{"stream":"x","version":1,"id":"e","type":"T"}`)); !errors.Is(err, events.ErrInvalidStream) {
		t.Fatalf("DecodeEnvelope with a bad stream: want ErrInvalidStream, got %v", err)
	}
}
