package events_test

import (
	"errors"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

func TestValidateAppend(t *testing.T) {
	ok := events.Event{ID: "a", Type: "T"}
	cases := []struct {
		name     string
		stream   string
		expected events.ExpectedVersion
		evs      []events.Event
		want     error
	}{
		{"valid", "room:a", events.AnyVersion, []events.Event{ok, {ID: "b", Type: "T"}}, nil},
		{"exact version", "room:a", events.Exactly(7), []events.Event{ok}, nil},
		{"bad stream", "room", events.AnyVersion, []events.Event{ok}, events.ErrInvalidStream},
		{"expected below AnyVersion", "room:a", events.ExpectedVersion(-2), []events.Event{ok}, events.ErrInvalidEvent},
		{"no events", "room:a", events.NoStream, nil, events.ErrNoEvents},
		{"bad event", "room:a", events.NoStream, []events.Event{ok, {ID: "b"}}, events.ErrInvalidEvent},
		{"too large", "room:a", events.NoStream, []events.Event{{ID: "b", Type: "T", Data: make([]byte, events.MaxEventSize)}}, events.ErrTooLarge},
		{"same id twice", "room:a", events.NoStream, []events.Event{ok, {ID: "x", Type: "T"}, ok}, events.ErrInvalidEvent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := events.ValidateAppend(tc.stream, tc.expected, tc.evs)
			if tc.want == nil && err != nil {
				t.Fatalf("want nil, got %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}

func TestNormalizeTime(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("X", -5*3600))
	clock := func() time.Time { return now }
	cases := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"zero takes now", time.Time{}, time.Date(2025, 1, 2, 8, 4, 5, 678_000_000, time.UTC)},
		{"kept, in UTC, truncated", time.Date(2020, 6, 1, 12, 0, 0, 999_999_999, time.FixedZone("Y", 3600)), time.Date(2020, 6, 1, 11, 0, 0, 999_000_000, time.UTC)},
		{"already normal", time.Date(2020, 6, 1, 12, 0, 0, 5_000_000, time.UTC), time.Date(2020, 6, 1, 12, 0, 0, 5_000_000, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := events.NormalizeTime(tc.in, clock)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("want %s, got %s", tc.want.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestNormalizeData(t *testing.T) {
	if got := string(events.NormalizeData(nil)); got != "{}" {
		t.Fatalf("nil: want {}, got %q", got)
	}
	if got := string(events.NormalizeData([]byte{})); got != "{}" {
		t.Fatalf("empty: want {}, got %q", got)
	}
	if got := string(events.NormalizeData([]byte(`{"a":1}`))); got != `{"a":1}` {
		t.Fatalf("object: want it unchanged, got %q", got)
	}
}
