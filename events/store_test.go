package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

func TestExpectedVersion(t *testing.T) {
	cases := []struct {
		e       events.ExpectedVersion
		str     string
		current uint64
		matches bool
	}{
		{events.AnyVersion, "any", 0, true},
		{events.AnyVersion, "any", 17, true},
		{events.NoStream, "no stream", 0, true},
		{events.NoStream, "no stream", 1, false},
		{events.Exactly(0), "no stream", 0, true},
		{events.Exactly(3), "3", 3, true},
		{events.Exactly(3), "3", 2, false},
		{events.Exactly(3), "3", 4, false},
		{events.ExpectedVersion(-2), "invalid(-2)", 0, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s at %d", tc.str, tc.current), func(t *testing.T) {
			if got := tc.e.String(); got != tc.str {
				t.Errorf("String: want %q, got %q", tc.str, got)
			}
			if got := tc.e.Matches(tc.current); got != tc.matches {
				t.Errorf("Matches(%d): want %v, got %v", tc.current, tc.matches, got)
			}
		})
	}
}

func TestWrongExpectedVersionError(t *testing.T) {
	var err error = &events.WrongExpectedVersionError{Stream: "room:a", Expected: events.Exactly(2), Current: 5}
	wrapped := fmt.Errorf("append: %w", err)
	if !errors.Is(wrapped, events.ErrWrongExpectedVersion) {
		t.Fatal("errors.Is(wrapped, ErrWrongExpectedVersion): want true")
	}
	if errors.Is(wrapped, decider.ErrConflict) {
		t.Fatal("errors.Is(wrapped, ErrConflict): want false")
	}
	if cur, ok := events.CurrentVersion(wrapped); !ok || cur != 5 {
		t.Fatalf("CurrentVersion: want 5, true; got %d, %v", cur, ok)
	}
	if cur, ok := events.CurrentVersion(errors.New("other")); ok || cur != 0 {
		t.Fatalf("CurrentVersion of another error: want 0, false; got %d, %v", cur, ok)
	}
	if msg := err.Error(); !strings.Contains(msg, "room:a") || !strings.Contains(msg, "expected version 2") || !strings.Contains(msg, "at 5") {
		t.Fatalf("Error(): want stream, expected and current version in %q", msg)
	}
}

func TestAppendResult(t *testing.T) {
	if r := (events.AppendResult{}); r.Version() != 0 || r.Position() != 0 {
		t.Fatalf("empty result: want 0, 0; got %d, %d", r.Version(), r.Position())
	}
	r := events.AppendResult{Events: []events.Event{{Version: 3, Position: 10}, {Version: 4, Position: 12}}}
	if r.Version() != 4 || r.Position() != 12 {
		t.Fatalf("want version 4 position 12, got %d and %d", r.Version(), r.Position())
	}
}

// pagedLog is a log of n events in one stream that counts reads and can
// fail the read after a given number of calls.
type pagedLog struct {
	n       uint64
	calls   int
	failAt  int // 1-based call that fails; 0 never
	lastLim int
}

var errRead = errors.New("read failed")

func (l *pagedLog) page(after uint64, limit int) ([]events.Event, error) {
	l.calls++
	l.lastLim = limit
	if l.calls == l.failAt {
		return nil, errRead
	}
	var out []events.Event
	for p := after + 1; p <= l.n && (limit <= 0 || len(out) < limit); p++ {
		out = append(out, events.Event{Stream: "room:a", Version: p, Position: p, ID: fmt.Sprint(p), Type: "T"})
	}
	return out, nil
}

func (l *pagedLog) ReadAll(_ context.Context, after uint64, limit int) ([]events.Event, error) {
	return l.page(after, limit)
}

func (l *pagedLog) ReadStream(_ context.Context, _ string, after uint64, limit int) ([]events.Event, error) {
	return l.page(after, limit)
}

func TestIterators(t *testing.T) {
	const ps = events.DefaultPageSize
	cases := []struct {
		name      string
		n, after  uint64
		wantCalls int
	}{
		{"empty", 0, 0, 1},
		{"less than a page", 10, 0, 1},
		{"exactly one page", ps, 0, 2},
		{"two pages and a bit", 2*ps + 3, 0, 3},
		{"after", 2*ps + 3, ps + 1, 2},
	}
	iters := map[string]func(l *pagedLog, after uint64) func(func(events.Event, error) bool){
		"IterAll": func(l *pagedLog, after uint64) func(func(events.Event, error) bool) {
			return events.IterAll(t.Context(), l, after)
		},
		"IterStream": func(l *pagedLog, after uint64) func(func(events.Event, error) bool) {
			return events.IterStream(t.Context(), l, "room:a", after)
		},
	}
	for name, iterate := range iters {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				l := &pagedLog{n: tc.n}
				want := tc.after + 1
				for e, err := range iterate(l, tc.after) {
					if err != nil {
						t.Fatalf("unexpected error %v", err)
					}
					if e.Position != want {
						t.Fatalf("want position %d, got %d", want, e.Position)
					}
					want++
				}
				if last := want - 1; last != max(tc.n, tc.after) {
					t.Fatalf("want the last position %d, got %d", tc.n, last)
				}
				if l.calls != tc.wantCalls || l.lastLim != ps {
					t.Fatalf("want %d reads of %d, got %d reads, last limit %d", tc.wantCalls, ps, l.calls, l.lastLim)
				}
			})
		}
		t.Run(name+"/error", func(t *testing.T) {
			l := &pagedLog{n: 2 * ps, failAt: 2}
			count, errs := 0, 0
			for e, err := range iterate(l, 0) {
				if err != nil {
					errs++
					if !errors.Is(err, errRead) || e.ID != "" {
						t.Fatalf("want the read error with a zero event, got %v, %+v", err, e)
					}
					continue
				}
				count++
			}
			if count != ps || errs != 1 {
				t.Fatalf("want %d events then one error, got %d events and %d errors", ps, count, errs)
			}
		})
		t.Run(name+"/break", func(t *testing.T) {
			l := &pagedLog{n: 2 * ps}
			count := 0
			for range iterate(l, 0) {
				if count++; count == 3 {
					break
				}
			}
			if count != 3 || l.calls != 1 {
				t.Fatalf("break after 3: want 3 events from 1 read, got %d from %d", count, l.calls)
			}
		})
	}
}
