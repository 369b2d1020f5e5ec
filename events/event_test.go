package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
)

func TestParseStreamID(t *testing.T) {
	cases := []struct {
		in       string
		kind, id string
		ok       bool
	}{
		{"room:lobby", "room", "lobby", true},
		{"order:42", "order", "42", true},
		{"user:Alice_B.c-9", "user", "Alice_B.c-9", true},
		{strings.Repeat("k", 32) + ":x", strings.Repeat("k", 32), "x", true},
		{"room:" + strings.Repeat("i", 64), "room", strings.Repeat("i", 64), true},
		{"", "", "", false},
		{"room", "", "", false},
		{":lobby", "", "", false},
		{"room:", "", "", false},
		{"Room:lobby", "", "", false},
		{"ro-om:lobby", "", "", false},
		{"room1:lobby", "", "", false},
		{strings.Repeat("k", 33) + ":x", "", "", false},
		{"room:" + strings.Repeat("i", 65), "", "", false},
		{"room:lob by", "", "", false},
		{"room:a:b", "", "", false},
		{"room:a/b", "", "", false},
		{"room:é", "", "", false},
		{"room:lobby\n", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := events.ParseStreamID(tc.in)
			if !tc.ok {
				if !errors.Is(err, events.ErrInvalidStream) {
					t.Fatalf("ParseStreamID(%q): want ErrInvalidStream, got %+v, %v", tc.in, got, err)
				}
				if events.ValidStreamID(tc.in) {
					t.Fatalf("ValidStreamID(%q): want false", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStreamID(%q): want ok, got %v", tc.in, err)
			}
			if got.Kind != tc.kind || got.ID != tc.id {
				t.Fatalf("ParseStreamID(%q): want kind %q id %q, got %q %q", tc.in, tc.kind, tc.id, got.Kind, got.ID)
			}
			if got.String() != tc.in {
				t.Fatalf("String(): want %q, got %q", tc.in, got.String())
			}
			if !events.ValidStreamID(tc.in) {
				t.Fatalf("ValidStreamID(%q): want true", tc.in)
			}
		})
	}
}

func TestParseStreamIDClipsHugeInput(t *testing.T) {
	_, err := events.ParseStreamID(strings.Repeat("x", 10_000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("want a short error for a 10 kB stream id, got %d bytes", len(err.Error()))
	}
}

func TestEventValidate(t *testing.T) {
	long := strings.Repeat("x", events.MaxIDLength+1)
	fill := func(n int) string { return `{"x":"` + strings.Repeat("a", n) + `"}` }
	// An event of exactly MaxEventSize: id "i", type "t", data of the rest.
	exact := fill(events.MaxEventSize - 2 - len(`{"x":""}`))
	cases := []struct {
		name string
		ev   events.Event
		want error
	}{
		{"minimal", events.Event{ID: "i", Type: "t"}, nil},
		{"object data", events.Event{ID: "i", Type: "t", Data: []byte(`{"a":[1,2]}`)}, nil},
		{"object data with spaces", events.Event{ID: "i", Type: "t", Data: []byte(`{ "a" : 1 }`)}, nil},
		{"id of MaxIDLength", events.Event{ID: long[1:], Type: long[1:]}, nil},
		{"exactly MaxEventSize", events.Event{ID: "i", Type: "t", Data: []byte(exact)}, nil},
		{"no id", events.Event{Type: "t"}, events.ErrInvalidEvent},
		{"no type", events.Event{ID: "i"}, events.ErrInvalidEvent},
		{"id too long", events.Event{ID: long, Type: "t"}, events.ErrInvalidEvent},
		{"type too long", events.Event{ID: "i", Type: long}, events.ErrInvalidEvent},
		{"array data", events.Event{ID: "i", Type: "t", Data: []byte(`[]`)}, events.ErrInvalidEvent},
		{"string data", events.Event{ID: "i", Type: "t", Data: []byte(`"x"`)}, events.ErrInvalidEvent},
		{"null data", events.Event{ID: "i", Type: "t", Data: []byte(`null`)}, events.ErrInvalidEvent},
		{"leading space", events.Event{ID: "i", Type: "t", Data: []byte(` {}`)}, events.ErrInvalidEvent},
		{"broken JSON", events.Event{ID: "i", Type: "t", Data: []byte(`{"a"`)}, events.ErrInvalidEvent},
		{"one byte over MaxEventSize", events.Event{ID: "i", Type: "t", Data: []byte(exact), Meta: events.Meta{Causation: "c"}}, events.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate()
			if tc.want == nil && err != nil {
				t.Fatalf("want valid, got %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}

func TestEventSize(t *testing.T) {
	e := events.Event{ID: "ab", Type: "cde", Data: []byte(`{}`), Meta: events.Meta{Correlation: "f", Causation: "gh"},
		Stream: "room:not-counted", Version: 9, Position: 9}
	if got := e.Size(); got != 2+3+2+1+2 {
		t.Fatalf("Size: want 10, got %d", got)
	}
}
