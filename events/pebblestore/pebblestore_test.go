package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string) events.Store {
		s, err := Open(dir, testConfig(t))
		if err != nil {
			t.Fatalf("open %s: %v", dir, err)
		}
		return s
	})
}

func mustOpen(t *testing.T, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func testEvents(prefix string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = events.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Type: "Tested", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}

// checkLog verifies the invariants of a whole store: the log is positions
// 1..head without gaps, every stream is versions 1..n without gaps, and
// ReadStream agrees with the log. It returns the log.
func checkLog(t *testing.T, s events.Store) []events.Event {
	t.Helper()
	ctx := t.Context()
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if uint64(len(all)) != h {
		t.Fatalf("ReadAll returned %d events, Head is %d", len(all), h)
	}
	byStream := map[string][]events.Event{}
	for i, e := range all {
		if e.Position != uint64(i+1) {
			t.Fatalf("log[%d] has position %d, want %d", i, e.Position, i+1)
		}
		byStream[e.Stream] = append(byStream[e.Stream], e)
	}
	for stream, want := range byStream {
		got, err := s.ReadStream(ctx, stream, 0, 0)
		if err != nil {
			t.Fatalf("ReadStream(%s): %v", stream, err)
		}
		if len(got) != len(want) {
			t.Fatalf("ReadStream(%s): %d events, the log holds %d", stream, len(got), len(want))
		}
		for i := range got {
			if got[i].Version != uint64(i+1) {
				t.Fatalf("%s: event %d has version %d", stream, i, got[i].Version)
			}
			if got[i].Position != want[i].Position || got[i].ID != want[i].ID || string(got[i].Data) != string(want[i].Data) {
				t.Fatalf("%s/%d: ReadStream has %s@%d, ReadAll has %s@%d", stream, i+1, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
			}
		}
		v, err := s.StreamVersion(ctx, stream)
		if err != nil || v != uint64(len(got)) {
			t.Fatalf("StreamVersion(%s) = %d, %v; want %d", stream, v, err, len(got))
		}
	}
	return all
}

// TestConcurrentWriters races writers over a few streams, half with exact
// expected versions (retrying on conflict), half with AnyVersion, and
// checks that every acknowledged append is in the log exactly as
// acknowledged. The small-batch case forces many batches per round.
func TestConcurrentWriters(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(Config) Config
	}{
		{"defaults", func(c Config) Config { return c }},
		// One event in flight: every append waits for the one before it,
		// and one of more events runs alone.
		{"one event in flight", func(c Config) Config { c.MaxInFlightEvents = 1; return c }},
		{"three events in flight", func(c Config) Config { c.MaxInFlightEvents = 3; return c }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mustOpen(t, t.TempDir(), tc.cfg(testConfig(t)))
			const writers, appends, streams = 8, 30, 3
			results := make([][]events.Event, writers)
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- runWriter(t.Context(), s, w, appends, streams, &results[w])
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			wantLogAsAcked(t, checkLog(t, s), results...)
		})
	}
}

// runWriter appends 1–3 events at a time; even writers use exact expected
// versions and retry with the version a conflict reports.
func runWriter(ctx context.Context, s events.Store, w, appends, streams int, out *[]events.Event) error {
	known := map[string]uint64{}
	for i := range appends {
		stream := fmt.Sprintf("room:s%d", (w+i)%streams)
		evs := testEvents(fmt.Sprintf("w%d-a%d", w, i), 1+i%3)
		for {
			exp := events.AnyVersion
			if w%2 == 0 {
				exp = events.Exactly(known[stream])
			}
			res, err := s.Append(ctx, stream, exp, evs)
			if v, ok := events.CurrentVersion(err); ok {
				known[stream] = v
				continue
			}
			if err != nil {
				return fmt.Errorf("writer %d append %d: %w", w, i, err)
			}
			if res.Duplicate {
				return fmt.Errorf("writer %d append %d: unexpected duplicate", w, i)
			}
			for j, e := range res.Events {
				if e.Version != res.Events[0].Version+uint64(j) || e.Position != res.Events[0].Position+uint64(j) {
					return fmt.Errorf("writer %d append %d: not consecutive: %+v", w, i, res.Events)
				}
			}
			if exp != events.AnyVersion && res.Events[0].Version != known[stream]+1 {
				return fmt.Errorf("writer %d: expected %d, got first version %d", w, known[stream], res.Events[0].Version)
			}
			known[stream] = res.Version()
			*out = append(*out, res.Events...)
			break
		}
	}
	return nil
}

// TestReopenRecoversHeads closes and reopens a store and checks that heads
// and the global position continue where they were, including with a head
// cache so small that heads are evicted and reloaded all the time.
func TestReopenRecoversHeads(t *testing.T) {
	tests := []struct {
		name        string
		cachedHeads int
	}{
		{"default cache", 0},
		{"evicting cache", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := testConfig(t)
			cfg.MaxCachedStreams = tc.cachedHeads
			ctx := t.Context()
			want := map[string]uint64{}
			var pos uint64
			for round := range 3 {
				s, err := Open(dir, cfg)
				if err != nil {
					t.Fatalf("round %d: open: %v", round, err)
				}
				if h, err := s.Head(ctx); err != nil || h != pos {
					t.Fatalf("round %d: Head = %d, %v; want %d", round, h, err, pos)
				}
				for i := range 10 {
					stream := fmt.Sprintf("order:o%d", i)
					if v, err := s.StreamVersion(ctx, stream); err != nil || v != want[stream] {
						t.Fatalf("round %d: StreamVersion(%s) = %d, %v; want %d", round, stream, v, err, want[stream])
					}
					// A stale expected version must see the recovered head.
					_, err := s.Append(ctx, stream, events.Exactly(want[stream]+1), testEvents("stale", 1))
					if cur, ok := events.CurrentVersion(err); !ok || cur != want[stream] {
						t.Fatalf("round %d: stale append on %s: %v; want current version %d", round, stream, err, want[stream])
					}
					n := 1 + (i+round)%3
					res, err := s.Append(ctx, stream, events.Exactly(want[stream]), testEvents(fmt.Sprintf("r%d-%s", round, stream), n))
					if err != nil {
						t.Fatalf("round %d: append %s: %v", round, stream, err)
					}
					if res.Events[0].Version != want[stream]+1 || res.Events[0].Position != pos+1 {
						t.Fatalf("round %d: %s got version %d position %d, want %d and %d", round, stream,
							res.Events[0].Version, res.Events[0].Position, want[stream]+1, pos+1)
					}
					want[stream] += uint64(n)
					pos += uint64(n)
				}
				checkLog(t, s)
				if err := s.Close(); err != nil {
					t.Fatalf("round %d: close: %v", round, err)
				}
			}
		})
	}
}

// TestIdempotencyAcrossReopen retries appends after a reopen: a full retry
// returns the original events, a partial one or one on another stream is
// refused, and nothing is written either way.
func TestIdempotencyAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(dir, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := s.Append(ctx, "user:u1", events.NoStream, testEvents("signup", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "user:u2", events.NoStream, testEvents("other", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, testConfig(t))

	mixed := append(testEvents("signup", 1), testEvents("fresh", 1)...)
	tests := []struct {
		name    string
		stream  string
		exp     events.ExpectedVersion
		evs     []events.Event
		wantErr error
	}{
		{"full retry, stale version", "user:u1", events.NoStream, testEvents("signup", 2), nil},
		{"full retry, any version", "user:u1", events.AnyVersion, testEvents("signup", 2), nil},
		{"partial retry", "user:u1", events.AnyVersion, mixed, events.ErrDuplicateID},
		{"same ids, other stream", "user:u3", events.NoStream, testEvents("signup", 2), events.ErrDuplicateID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Append(ctx, tc.stream, tc.exp, tc.evs)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want %v, got %v (%+v)", tc.wantErr, err, res)
				}
			} else {
				if err != nil || !res.Duplicate {
					t.Fatalf("want a duplicate result, got %+v, %v", res, err)
				}
				for i, e := range res.Events {
					o := orig.Events[i]
					if e.ID != o.ID || e.Version != o.Version || e.Position != o.Position || !e.Time.Equal(o.Time) || string(e.Data) != string(o.Data) {
						t.Fatalf("retry returned %+v, the original was %+v", e, o)
					}
				}
			}
			if h, _ := s.Head(ctx); h != 3 {
				t.Fatalf("Head = %d after the retry, want 3: something was written", h)
			}
		})
	}
}

// TestCloseDuringAppends closes the store while writers append: every
// append either succeeds (and is there after a reopen) or fails with
// ErrClosed, and Follow ends with ErrClosed.
func TestCloseDuringAppends(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	followDone := make(chan error, 1)
	go func() {
		followDone <- s.Follow(context.Background(), 0, func(events.Event) error { return nil })
	}()
	const writers = 8
	acks := make(chan events.Event, 1<<16)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				res, err := s.Append(context.Background(), fmt.Sprintf("game:g%d", w%3), events.AnyVersion, testEvents(fmt.Sprintf("w%d-%d", w, i), 1))
				if err != nil {
					errs <- err
					return
				}
				acks <- res.Events[0]
			}
		}()
	}
	var early []events.Event
	for range 50 { // let some appends through before closing
		early = append(early, <-acks)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	close(errs)
	close(acks)
	for err := range errs {
		if !errors.Is(err, events.ErrClosed) {
			t.Fatalf("append during close: want ErrClosed, got %v", err)
		}
	}
	if err := <-followDone; !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Follow after close: want ErrClosed, got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	s = mustOpen(t, dir, testConfig(t))
	all := checkLog(t, s)
	n := 0
	for e := range acks {
		early = append(early, e)
	}
	for _, e := range early {
		n++
		if e.Position > uint64(len(all)) || all[e.Position-1].ID != e.ID {
			t.Fatalf("acknowledged %s@%d is missing after reopen", e.ID, e.Position)
		}
	}
	if n < 50 {
		t.Fatalf("only %d acknowledged appends", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"negative in flight", Config{MaxInFlightEvents: -1}, false},
		{"in flight past the repair window", Config{MaxInFlightEvents: repairWindow + 1}, false},
		{"in flight at the repair window", Config{MaxInFlightEvents: repairWindow}, true},
		{"negative heads", Config{MaxCachedStreams: -1}, false},
		{"huge memtable", Config{MemTableSize: 2 << 30}, false},
		{"negative cache", Config{CacheSize: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if _, err := Open(t.TempDir(), tc.cfg); err == nil {
					t.Fatal("Open accepted an invalid config")
				}
			}
		})
	}
}

// wantLogAsAcked fails t unless the log all holds exactly the acknowledged
// events, each at the position, stream and version its append reported.
func wantLogAsAcked(t *testing.T, all []events.Event, acked ...[]events.Event) {
	t.Helper()
	n := 0
	for _, evs := range acked {
		for _, e := range evs {
			n++
			if e.Position == 0 || e.Position > uint64(len(all)) {
				t.Fatalf("acknowledged %s at position %d, log has %d events", e.ID, e.Position, len(all))
			}
			if got := all[e.Position-1]; got.ID != e.ID || got.Stream != e.Stream || got.Version != e.Version {
				t.Fatalf("acknowledged %s as %s/%d@%d, stored %s as %s/%d", e.ID, e.Stream, e.Version, e.Position, got.ID, got.Stream, got.Version)
			}
		}
	}
	if n != len(all) {
		t.Fatalf("%d events acknowledged, %d stored", n, len(all))
	}
}
