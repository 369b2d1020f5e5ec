package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

const waitTimeout = 10 * time.Second

func TestWatermarkAdvance(t *testing.T) {
	var w events.Watermark // the zero value is ready
	steps := []struct {
		advance, want uint64
	}{{0, 0}, {3, 3}, {2, 3}, {3, 3}, {10, 10}}
	for _, s := range steps {
		w.Advance(s.advance)
		if got := w.Load(); got != s.want {
			t.Fatalf("Advance(%d): want Load %d, got %d", s.advance, s.want, got)
		}
	}
}

func TestWatermarkWait(t *testing.T) {
	t.Run("already beyond", func(t *testing.T) {
		var w events.Watermark
		w.Advance(5)
		got, err := w.Wait(t.Context(), 4)
		if err != nil || got != 5 {
			t.Fatalf("Wait(4) at 5: want 5, nil; got %d, %v", got, err)
		}
	})
	t.Run("blocks until advanced beyond", func(t *testing.T) {
		var w events.Watermark
		w.Advance(2)
		done := make(chan uint64, 1)
		go func() {
			pos, err := w.Wait(context.Background(), 2)
			if err != nil {
				t.Errorf("Wait: %v", err)
			}
			done <- pos
		}()
		w.Advance(2) // not beyond 2: no wake-up with a result
		select {
		case pos := <-done:
			t.Fatalf("Wait(2) returned %d while the watermark was at 2", pos)
		default:
		}
		w.Advance(4)
		select {
		case pos := <-done:
			if pos != 4 {
				t.Fatalf("want 4, got %d", pos)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Wait did not return after Advance")
		}
	})
	t.Run("many waiters", func(t *testing.T) {
		var w events.Watermark
		const n = 8
		var wg sync.WaitGroup
		got := make([]uint64, n)
		for i := range n {
			wg.Go(func() { got[i], _ = w.Wait(context.Background(), 0) })
		}
		w.Advance(1)
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(waitTimeout):
			t.Fatal("not every waiter woke up")
		}
		for i, pos := range got {
			if pos != 1 {
				t.Fatalf("waiter %d: want 1, got %d", i, pos)
			}
		}
	})
	t.Run("context", func(t *testing.T) {
		var w events.Watermark
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { _, err := w.Wait(ctx, 0); done <- err }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("want context.Canceled, got %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Wait did not return after cancel")
		}
	})
	t.Run("close", func(t *testing.T) {
		var w events.Watermark
		w.Advance(3)
		done := make(chan error, 1)
		go func() { _, err := w.Wait(context.Background(), 3); done <- err }()
		w.Close()
		select {
		case err := <-done:
			if !errors.Is(err, events.ErrClosed) {
				t.Fatalf("want ErrClosed, got %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Wait did not return after Close")
		}
		// Closed for good, even when the position is beyond.
		if _, err := w.Wait(context.Background(), 0); !errors.Is(err, events.ErrClosed) {
			t.Fatalf("Wait after Close: want ErrClosed, got %v", err)
		}
		w.Advance(9)
		w.Close() // twice is fine
	})
}

// memLog is a minimal log for Follow: appends advance the watermark.
type memLog struct {
	mu  sync.Mutex
	evs []events.Event
	w   events.Watermark
	err error // returned by ReadAll when set
}

func (l *memLog) add(n int) {
	l.mu.Lock()
	for range n {
		p := uint64(len(l.evs) + 1)
		l.evs = append(l.evs, events.Event{Stream: "room:a", Version: p, Position: p, ID: fmt.Sprint(p), Type: "T"})
	}
	head := uint64(len(l.evs))
	l.mu.Unlock()
	l.w.Advance(head)
}

func (l *memLog) ReadAll(_ context.Context, after uint64, limit int) ([]events.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	if after >= uint64(len(l.evs)) {
		return nil, nil
	}
	page := l.evs[after:]
	if limit > 0 && len(page) > limit {
		page = page[:limit]
	}
	return append([]events.Event(nil), page...), nil
}

func follow(ctx context.Context, l *memLog, after uint64, fn func(events.Event) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- events.Follow(ctx, l, &l.w, after, fn) }()
	return done
}

func awaitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Follow still running")
		return nil
	}
}

var errEnough = errors.New("enough")

func TestFollow(t *testing.T) {
	t.Run("catch-up over pages then live, no gap", func(t *testing.T) {
		l := &memLog{}
		l.add(2*events.DefaultPageSize + 5)
		const total = 2*events.DefaultPageSize + 5 + 300
		caughtUp := make(chan struct{})
		var last uint64
		done := follow(t.Context(), l, 0, func(e events.Event) error {
			if e.Position != last+1 {
				return fmt.Errorf("after %d got %d", last, e.Position)
			}
			last = e.Position
			if last == 2*events.DefaultPageSize+5 {
				close(caughtUp)
			}
			if last == total {
				return errEnough
			}
			return nil
		})
		select {
		case <-caughtUp:
		case <-time.After(waitTimeout):
			t.Fatal("Follow did not catch up")
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for range 100 {
					l.add(1)
				}
			})
		}
		wg.Wait()
		if err := awaitErr(t, done); !errors.Is(err, errEnough) {
			t.Fatalf("want every event through %d and the callback's error, got %v (last %d)", total, err, last)
		}
	})
	t.Run("after", func(t *testing.T) {
		l := &memLog{}
		l.add(10)
		var got []uint64
		done := follow(t.Context(), l, 7, func(e events.Event) error {
			got = append(got, e.Position)
			if e.Position == 10 {
				return errEnough
			}
			return nil
		})
		if err := awaitErr(t, done); !errors.Is(err, errEnough) {
			t.Fatalf("want the callback's error, got %v", err)
		}
		if fmt.Sprint(got) != "[8 9 10]" {
			t.Fatalf("Follow(7): want [8 9 10], got %v", got)
		}
	})
	t.Run("context cancelled while waiting", func(t *testing.T) {
		l := &memLog{}
		ctx, cancel := context.WithCancel(t.Context())
		delivered := make(chan struct{})
		done := follow(ctx, l, 0, func(events.Event) error { close(delivered); return nil })
		l.add(1)
		select {
		case <-delivered:
		case <-time.After(waitTimeout):
			t.Fatal("nothing delivered")
		}
		cancel()
		if err := awaitErr(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
	})
	t.Run("closed watermark", func(t *testing.T) {
		l := &memLog{}
		l.add(1)
		delivered := make(chan struct{})
		done := follow(t.Context(), l, 0, func(events.Event) error { close(delivered); return nil })
		select {
		case <-delivered:
		case <-time.After(waitTimeout):
			t.Fatal("nothing delivered")
		}
		l.w.Close()
		if err := awaitErr(t, done); !errors.Is(err, events.ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		l := &memLog{err: events.ErrClosed}
		if err := awaitErr(t, follow(t.Context(), l, 0, func(events.Event) error { return nil })); !errors.Is(err, events.ErrClosed) {
			t.Fatalf("want the read error wrapped, got %v", err)
		}
	})
}
