package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/events"
)

// interleaved appends ten events to room:r and five to room:s, one at a
// time, alternating, and returns them in position order. Positions:
// r1 1, r2 2, s1 3, r3 4, r4 5, s2 6, …, r10 14, s5 15.
func interleaved(t *testing.T, st events.Store) []events.Event {
	t.Helper()
	var all []events.Event
	for i := 1; i <= 10; i++ {
		all = append(all, mustAppend(t, st, "room:r", events.AnyVersion, []events.Event{ev(fmt.Sprintf("r-%d", i), "Tested", "")}).Events...)
		if i%2 == 0 {
			all = append(all, mustAppend(t, st, "room:s", events.AnyVersion, []events.Event{ev(fmt.Sprintf("s-%d", i/2), "Tested", "")}).Events...)
		}
	}
	return all
}

func testReadStream(t *testing.T, s suite) {
	st := s.store(t)
	all := interleaved(t, st)
	var r []events.Event
	for _, e := range all {
		if e.Stream == "room:r" {
			r = append(r, e)
		}
	}
	cases := []struct {
		name   string
		stream string
		after  uint64
		limit  int
		want   []uint64 // versions
	}{
		{"everything", "room:r", 0, 0, seq(1, 10)},
		{"negative limit means all", "room:r", 0, -1, seq(1, 10)},
		{"after is exclusive", "room:r", 3, 0, seq(4, 10)},
		{"limit 1", "room:r", 0, 1, []uint64{1}},
		{"after and limit", "room:r", 3, 2, []uint64{4, 5}},
		{"limit beyond the end", "room:r", 8, 5, []uint64{9, 10}},
		{"limit equal to what is left", "room:r", 7, 3, []uint64{8, 9, 10}},
		{"after the last version", "room:r", 10, 0, nil},
		{"far after the last version", "room:r", 1000, 3, nil},
		{"the other stream", "room:s", 2, 0, []uint64{3, 4, 5}},
		{"unknown stream", "room:nobody", 0, 0, nil},
		{"unknown stream with after", "room:nobody", 5, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ReadStream(t.Context(), tc.stream, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ReadStream(%s, %d, %d): want no error, got %v", tc.stream, tc.after, tc.limit, err)
			}
			what := fmt.Sprintf("ReadStream(%s, %d, %d)", tc.stream, tc.after, tc.limit)
			checkVersions(t, what, got, tc.want)
			for _, e := range got {
				if e.Stream != tc.stream {
					t.Fatalf("%s: event %s belongs to %s", what, e.ID, e.Stream)
				}
				if d := diffEvent(e, all[e.Position-1]); d != "" {
					t.Fatalf("%s: version %d differs from what Append returned: %s", what, e.Version, d)
				}
			}
		})
	}
	checkEvents(t, "ReadStream(room:r, 0, 0)", readStream(t, st, "room:r"), r)
}

func testReadAll(t *testing.T, s suite) {
	st := s.store(t)
	if got, err := st.ReadAll(t.Context(), 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("ReadAll on an empty store: want no events and no error, got %s, %v", summary(got), err)
	}
	all := interleaved(t, st)
	cases := []struct {
		name  string
		after uint64
		limit int
		want  []uint64 // positions
	}{
		{"everything", 0, 0, seq(1, 15)},
		{"negative limit means all", 0, -5, seq(1, 15)},
		{"after is exclusive", 4, 0, seq(5, 15)},
		{"limit 1", 0, 1, []uint64{1}},
		{"after and limit", 2, 3, []uint64{3, 4, 5}},
		{"limit beyond the end", 13, 10, []uint64{14, 15}},
		{"at the head", 15, 0, nil},
		{"beyond the head", 99, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ReadAll(t.Context(), tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ReadAll(%d, %d): want no error, got %v", tc.after, tc.limit, err)
			}
			what := fmt.Sprintf("ReadAll(%d, %d)", tc.after, tc.limit)
			checkPositions(t, what, got, tc.want)
			for _, e := range got {
				if d := diffEvent(e, all[e.Position-1]); d != "" {
					t.Fatalf("%s: position %d differs from what Append returned: %s", what, e.Position, d)
				}
			}
		})
	}
}

func testIterators(t *testing.T, s suite) {
	st := s.store(t)
	const n = 2*events.DefaultPageSize + 7
	mustAppend(t, st, "room:other", events.NoStream, batch("other", 3))
	for done := 0; done < n; {
		size := min(200, n-done)
		evs := make([]events.Event, size)
		for i := range evs {
			evs[i] = ev(fmt.Sprintf("big-%d", done+i+1), "Tested", "")
		}
		mustAppend(t, st, "room:big", events.Exactly(uint64(done)), evs)
		done += size
	}
	mustAppend(t, st, "room:other", events.Exactly(3), batch("other2", 2))
	const total = n + 5

	collect := func(t *testing.T, what string, seq func(yield func(events.Event, error) bool)) []events.Event {
		t.Helper()
		var out []events.Event
		for e, err := range seq {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			out = append(out, e)
		}
		return out
	}
	t.Run("IterStream", func(t *testing.T) {
		got := collect(t, "IterStream(room:big, 0)", events.IterStream(t.Context(), st, "room:big", 0))
		checkVersions(t, "IterStream(room:big, 0)", got, seq(1, n))
		checkEvents(t, "IterStream(room:big, 0) against ReadStream", got, readStream(t, st, "room:big"))
	})
	t.Run("IterStream after", func(t *testing.T) {
		after := uint64(events.DefaultPageSize - 1)
		got := collect(t, "IterStream(room:big, after)", events.IterStream(t.Context(), st, "room:big", after))
		checkVersions(t, fmt.Sprintf("IterStream(room:big, %d)", after), got, seq(after+1, n))
	})
	t.Run("IterAll", func(t *testing.T) {
		got := collect(t, "IterAll(0)", events.IterAll(t.Context(), st, 0))
		checkPositions(t, "IterAll(0)", got, seq(1, total))
		checkEvents(t, "IterAll(0) against ReadAll", got, readAll(t, st))
	})
	t.Run("IterAll after", func(t *testing.T) {
		got := collect(t, "IterAll(100)", events.IterAll(t.Context(), st, 100))
		checkPositions(t, "IterAll(100)", got, seq(101, total))
	})
	t.Run("IterAll stops early", func(t *testing.T) {
		count := 0
		for _, err := range events.IterAll(t.Context(), st, 0) {
			if err != nil {
				t.Fatalf("IterAll: %v", err)
			}
			if count++; count == 10 {
				break
			}
		}
		if count != 10 {
			t.Fatalf("IterAll with break after 10: want 10 events, got %d", count)
		}
	})
	t.Run("IterStream of an unknown stream", func(t *testing.T) {
		got := collect(t, "IterStream(room:nobody, 0)", events.IterStream(t.Context(), st, "room:nobody", 0))
		if len(got) != 0 {
			t.Fatalf("IterStream of an unknown stream: want nothing, got %s", summary(got))
		}
	})
}

func testStreamVersionAndHead(t *testing.T, s suite) {
	st := s.store(t)
	if h := head(t, st); h != 0 {
		t.Fatalf("Head of an empty store: want 0, got %d", h)
	}
	if v := streamVersion(t, st, "room:v"); v != 0 {
		t.Fatalf("StreamVersion of an unknown stream: want 0, got %d", v)
	}
	mustAppend(t, st, "room:v", events.NoStream, batch("v", 3))
	mustAppend(t, st, "room:w", events.NoStream, batch("w", 2))
	mustAppend(t, st, "room:v", events.Exactly(3), batch("v2", 1))
	for _, c := range []struct {
		stream string
		want   uint64
	}{{"room:v", 4}, {"room:w", 2}, {"room:none", 0}} {
		if v := streamVersion(t, st, c.stream); v != c.want {
			t.Fatalf("StreamVersion(%s): want %d, got %d", c.stream, c.want, v)
		}
	}
	if h := head(t, st); h != 6 {
		t.Fatalf("Head after 6 events: want 6, got %d", h)
	}
	if _, err := st.StreamVersion(t.Context(), "Room:v"); !errors.Is(err, events.ErrInvalidStream) {
		t.Fatalf("StreamVersion(Room:v): want ErrInvalidStream, got %v", err)
	}
}
