package pebblestore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

func TestEventCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 16, 37, 55, 123_000_000, time.UTC)
	tests := []struct {
		name   string
		stream string
		ev     events.Event
	}{
		{"plain", "room:lobby", events.Event{ID: "e1", Type: "MessagePosted", Time: at, Data: []byte(`{"text":"hi"}`)}},
		{"empty data becomes {}", "room:lobby", events.Event{ID: "e2", Type: "T", Time: at}},
		{"meta", "order:42", events.Event{ID: "e3", Type: "OrderPlaced", Time: at, Data: []byte(`{}`),
			Meta: events.Meta{Correlation: "c-1", Causation: "cmd-9"}}},
		{"unicode and long fields", "user:" + strings.Repeat("x", 64), events.Event{ID: strings.Repeat("é", 64), Type: strings.Repeat("T", 128),
			Time: at, Data: []byte(`{"s":"` + strings.Repeat("ü", 5000) + `"}`)}},
		{"before 1970", "game:g", events.Event{ID: "old", Type: "T", Time: time.Date(1960, 1, 2, 3, 4, 5, 6_000_000, time.UTC), Data: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, dataOff := encodeEvent(nil, tc.stream, &tc.ev)
			if len(v) != encodedLen(tc.stream, &tc.ev) {
				t.Fatalf("encoded %d bytes, encodedLen says %d", len(v), encodedLen(tc.stream, &tc.ev))
			}
			if want := events.NormalizeData(tc.ev.Data); !bytes.Equal(v[dataOff:], want) {
				t.Fatalf("data at offset %d is %q, want %q", dataOff, v[dataOff:], want)
			}
			patchValue(v, 77, 5)
			if p, err := valuePosition(v); err != nil || p != 77 {
				t.Fatalf("valuePosition = %d, %v", p, err)
			}
			var d decoder
			got, err := d.decode(v)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.ev
			want.Stream, want.Position, want.Version, want.Data = tc.stream, 77, 5, events.NormalizeData(tc.ev.Data)
			if got.Stream != want.Stream || got.Position != want.Position || got.Version != want.Version ||
				got.ID != want.ID || got.Type != want.Type || !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC ||
				!bytes.Equal(got.Data, want.Data) || got.Meta != want.Meta {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
			if cap(got.Data) != len(got.Data) {
				t.Fatalf("decoded data has spare capacity %d: an append by the caller would overwrite a neighbour", cap(got.Data)-len(got.Data))
			}
		})
	}
}

func TestEventCodecRejectsCorruption(t *testing.T) {
	good, _ := encodeEvent(nil, "room:a", &events.Event{ID: "e", Type: "T", Data: []byte(`{}`)})
	tests := []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"short header", good[:headerLen-1]},
		{"wrong tag", append([]byte{9}, good[1:]...)},
		{"truncated fields", good[:headerLen+3]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d decoder
			if _, err := d.decode(tc.v); !errors.Is(err, errCorrupt) {
				t.Fatalf("decode: want errCorrupt, got %v", err)
			}
		})
	}
}

func TestKeysOrder(t *testing.T) {
	// A stream's keys sort by version and never interleave with a stream
	// whose id extends it.
	a1 := eventKey(nil, "room:a", 1)
	a2 := eventKey(nil, "room:a", 256)
	ab := eventKey(nil, "room:ab", 1)
	upper := streamUpper(nil, "room:a")
	if !(bytes.Compare(a1, a2) < 0 && bytes.Compare(a2, upper) < 0 && bytes.Compare(upper, ab) < 0) {
		t.Fatalf("key order broken: %x %x %x %x", a1, a2, upper, ab)
	}
	if bytes.Compare(posKey(nil, 255), posKey(nil, 256)) >= 0 {
		t.Fatal("position keys do not sort numerically")
	}
	stream, version, err := parseIDRef(idRef(nil, "room:a", 42))
	if err != nil || string(stream) != "room:a" || version != 42 {
		t.Fatalf("id ref round trip: %q %d %v", stream, version, err)
	}
}
