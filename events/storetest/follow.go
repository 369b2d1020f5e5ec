package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/b6368a97/engine/events"
)

// errStop is what the suite's Follow callbacks return to end Follow once
// they have seen what they wait for.
var errStop = errors.New("storetest: stop following")

// follower collects what Follow delivers and checks, as each event
// arrives, that it is the one right after the previous.
type follower struct {
	last    uint64 // position of the last event delivered
	until   uint64 // return errStop once this position is delivered
	got     []events.Event
	reached chan struct{} // closed when a position ≥ mark is delivered
	mark    uint64
}

func newFollower(after, until uint64) *follower {
	return &follower{last: after, until: until, reached: make(chan struct{})}
}

// fn is the callback for Follow. It runs on Follow's goroutine only; the
// test goroutine reads got after Follow returned.
func (f *follower) fn(e events.Event) error {
	if e.Position != f.last+1 {
		return fmt.Errorf("after position %d Follow delivered position %d (%s/%d): want %d", f.last, e.Position, e.Stream, e.Version, f.last+1)
	}
	f.last = e.Position
	f.got = append(f.got, e)
	if f.mark != 0 && e.Position == f.mark {
		close(f.reached)
	}
	if e.Position == f.until {
		return errStop
	}
	return nil
}

func testFollowCatchUp(t *testing.T, s suite) {
	st := s.store(t)
	all := interleaved(t, st) // 15 events
	for _, after := range []uint64{0, 1, 7, 14} {
		t.Run(fmt.Sprintf("after %d", after), func(t *testing.T) {
			f := newFollower(after, 15)
			err := await(t, "Follow catching up", goFollow(t.Context(), st, after, f.fn))
			if !errors.Is(err, errStop) {
				t.Fatalf("Follow(%d): want it to end with the callback's error, got %v", after, err)
			}
			checkEvents(t, fmt.Sprintf("Follow(%d)", after), f.got, all[after:])
		})
	}
}

// testFollowLive starts followers, then appends from several goroutines:
// each follower must see every event once, in order, with no gap.
func testFollowLive(t *testing.T, s suite) {
	st := s.store(t)
	pre := mustAppend(t, st, "room:pre", events.NoStream, batch("pre", 5)).Events

	const writers, appends = 4, 15
	// Writer w appends batches of w%2+1 events.
	total := uint64(len(pre))
	for w := range writers {
		total += uint64(appends * (w%2 + 1))
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type run struct {
		name string
		f    *follower
		done <-chan error
	}
	var runs []run
	for _, after := range []uint64{0, 3, 5} {
		f := newFollower(after, total)
		if after < 5 {
			f.mark = 5
		} else {
			close(f.reached)
		}
		runs = append(runs, run{fmt.Sprintf("Follow(%d)", after), f, goFollow(ctx, st, after, f.fn)})
	}
	// Writers start once the followers are through the catch-up, so most
	// events are delivered live.
	for _, r := range runs {
		signal(t, r.name+" to catch up", r.f.reached)
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				evs := batch(fmt.Sprintf("live-%d-%d", w, i), w%2+1)
				stream := fmt.Sprintf("room:live-%d", w)
				if i%3 == 0 {
					stream = "room:shared" // a stream that several writers share
				}
				if _, err := st.Append(ctx, stream, events.AnyVersion, evs); err != nil {
					t.Errorf("Append(%s): %v", stream, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if h := head(t, st); h != total {
		t.Fatalf("Head after the writers: want %d, got %d", total, h)
	}
	all := readAll(t, st)
	for _, r := range runs {
		err := await(t, r.name, r.done)
		if !errors.Is(err, errStop) {
			t.Fatalf("%s: want it to deliver through position %d and end with the callback's error, got %v (delivered up to %d)", r.name, total, err, r.f.last)
		}
		after := r.f.got[0].Position - 1
		checkEvents(t, r.name+" against ReadAll", r.f.got, all[after:])
	}
}

// testFollowAfterHead follows from beyond the head: only events with a
// higher position are delivered.
func testFollowAfterHead(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 2))
	f := newFollower(5, 6)
	done := goFollow(t.Context(), st, 5, f.fn)
	res := mustAppend(t, st, "room:a", events.Exactly(2), batch("b", 4)) // positions 3..6
	err := await(t, "Follow(5)", done)
	if !errors.Is(err, errStop) {
		t.Fatalf("Follow(5): want position 6 delivered first and the callback's error, got %v", err)
	}
	checkEvents(t, "Follow(5)", f.got, res.Events[3:])
}

func testFollowFnError(t *testing.T, s suite) {
	boom := errors.New("boom")
	t.Run("during catch-up", func(t *testing.T) {
		st := s.store(t)
		mustAppend(t, st, "room:a", events.NoStream, batch("a", 3))
		calls := 0
		err := await(t, "Follow", goFollow(t.Context(), st, 0, func(events.Event) error { calls++; return boom }))
		if !errors.Is(err, boom) {
			t.Fatalf("Follow whose callback fails: want the callback's error, got %v", err)
		}
		if calls != 1 {
			t.Fatalf("Follow whose callback fails: want 1 call, got %d", calls)
		}
	})
	t.Run("live", func(t *testing.T) {
		st := s.store(t)
		calls := 0
		done := goFollow(t.Context(), st, 0, func(events.Event) error { calls++; return boom })
		mustAppend(t, st, "room:a", events.NoStream, batch("a", 2))
		err := await(t, "Follow", done)
		if !errors.Is(err, boom) {
			t.Fatalf("Follow whose callback fails on a live event: want the callback's error, got %v", err)
		}
		if calls != 1 {
			t.Fatalf("Follow whose callback fails: want 1 call, got %d", calls)
		}
	})
}

func testFollowCancel(t *testing.T, s suite) {
	st := s.store(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := newFollower(0, 0)
	f.mark = 1
	done := goFollow(ctx, st, 0, f.fn)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 1))
	// Follow has delivered the only event and is now waiting for more.
	signal(t, "Follow to deliver position 1", f.reached)
	cancel()
	err := await(t, "Follow after cancel", done)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow whose context is cancelled: want an error matching context.Canceled, got %v", err)
	}
	checkPositions(t, "Follow before cancel", f.got, []uint64{1})
}
