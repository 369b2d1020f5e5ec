package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
)

// deadline bounds every wait for a condition.
const deadline = 20 * time.Second

// testSink records what it receives. With limit > 0 it refuses deliveries
// beyond limit. gate, when set, makes WaitRoom wait for a token (or ctx).
// After closed is set, any Enqueue is recorded as a violation.
type testSink struct {
	mu        sync.Mutex
	got       []actors.Delivery
	limit     int
	overflows int
	closed    bool // Cancel returned: nothing may be enqueued
	late      int  // deliveries after closed
	waiting   int  // WaitRoom calls blocked on gate
	changed   chan struct{}
	gate      chan struct{}
}

func newSink() *testSink { return &testSink{changed: make(chan struct{})} }

// signalLocked wakes await.
func (s *testSink) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *testSink) Enqueue(d actors.Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.late++
	}
	if s.limit > 0 && len(s.got) >= s.limit {
		return false
	}
	s.got = append(s.got, d)
	s.signalLocked()
	return true
}

func (s *testSink) WaitRoom(ctx context.Context) error {
	if s.gate == nil {
		return ctx.Err()
	}
	s.mu.Lock()
	s.waiting++
	s.signalLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}()
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *testSink) Overflow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overflows++
	s.signalLocked()
}

// await waits until cond (called with the sink locked) holds.
func (s *testSink) await(t testing.TB, what string, cond func(s *testSink) bool) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond(s)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s; sink has versions %v, presence %v, %d overflows",
				what, s.versions(), s.presence(), s.overflowCount())
		}
	}
}

// awaitVersion waits until the sink has an event at version v or more.
func (s *testSink) awaitVersion(t testing.TB, v uint64) {
	t.Helper()
	s.await(t, fmt.Sprintf("version %d", v), func(s *testSink) bool {
		return s.lastVersionLocked() >= v
	})
}

func (s *testSink) awaitOverflow(t testing.TB) {
	t.Helper()
	s.await(t, "an overflow", func(s *testSink) bool { return s.overflows > 0 })
}

func (s *testSink) lastVersionLocked() uint64 {
	for i := len(s.got) - 1; i >= 0; i-- {
		if s.got[i].Event != nil {
			return s.got[i].Event.Version
		}
	}
	return 0
}

func (s *testSink) versions() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []uint64
	for _, d := range s.got {
		if d.Event != nil {
			vs = append(vs, d.Event.Version)
		}
	}
	return vs
}

func (s *testSink) presence() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presenceLocked()
}

func (s *testSink) presenceLocked() [][]string {
	var ps [][]string
	for _, d := range s.got {
		if d.Presence {
			ps = append(ps, slices.Clone(d.Members))
		}
	}
	return ps
}

func (s *testSink) overflowCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overflows
}

// close marks the subscription cancelled: later deliveries are late.
func (s *testSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

func (s *testSink) lateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.late
}

// seq returns from+1 … to.
func seq(from, to uint64) []uint64 {
	var vs []uint64
	for v := from + 1; v <= to; v++ {
		vs = append(vs, v)
	}
	return vs
}

// faultStore wraps a Store with faults tests switch on.
type faultStore struct {
	events.Store
	mu          sync.Mutex
	readErr     error  // ReadStream fails with it
	versionErr  error  // StreamVersion fails with it
	versionLag  uint64 // StreamVersion reports this much less
	breakFollow chan error
	follows     chan struct{} // receives a value as each Follow starts
}

func newFaultStore(inner events.Store) *faultStore {
	return &faultStore{Store: inner, breakFollow: make(chan error), follows: make(chan struct{}, 16)}
}

func (s *faultStore) ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]events.Event, error) {
	s.mu.Lock()
	err := s.readErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Store.ReadStream(ctx, stream, after, limit)
}

func (s *faultStore) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	s.mu.Lock()
	lag, verr := s.versionLag, s.versionErr
	s.mu.Unlock()
	if verr != nil {
		return 0, verr
	}
	v, err := s.Store.StreamVersion(ctx, stream)
	return v - min(v, lag), err
}

// Follow follows the inner store until a test sends an error on
// breakFollow, which it then returns.
func (s *faultStore) Follow(ctx context.Context, after uint64, fn func(events.Event) error) error {
	select {
	case s.follows <- struct{}{}:
	default:
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Store.Follow(fctx, after, fn) }()
	select {
	case err := <-done:
		return err
	case err := <-s.breakFollow:
		cancel()
		<-done
		return err
	}
}

// startHub starts a Hub on store with cfg's other fields and stops it at
// the end of the test.
func startHub(t testing.TB, store events.Store, cfg Config) *Hub {
	t.Helper()
	cfg.Store = store
	if cfg.FollowBackoff == 0 {
		cfg.FollowBackoff = time.Millisecond
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return h
}

var idSeq struct {
	sync.Mutex
	n int
}

// appendN appends n events to stream and returns the stream's version.
func appendN(t testing.TB, store events.Store, stream string, n int) uint64 {
	t.Helper()
	evs := make([]events.Event, n)
	idSeq.Lock()
	for i := range evs {
		idSeq.n++
		evs[i] = events.Event{ID: fmt.Sprintf("e%d", idSeq.n), Type: "Happened"}
	}
	idSeq.Unlock()
	res, err := store.Append(context.Background(), stream, events.AnyVersion, evs)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res.Version()
}

func newStore(t testing.TB) *memstore.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

// subscribe subscribes sink to stream and returns the subscription and
// the version Subscribed was called with.
func subscribe(t testing.TB, h *Hub, stream string, from *uint64, member string, sink actors.Sink) (actors.Subscription, uint64) {
	t.Helper()
	var got uint64
	calls := 0
	sub, err := h.Subscribe(context.Background(), actors.SubscribeRequest{
		Stream: stream, From: from, Member: member, Sink: sink,
		Subscribed: func(v uint64) {
			got = v
			calls++
			if ts, ok := sink.(*testSink); ok {
				ts.mu.Lock()
				n := len(ts.got)
				ts.mu.Unlock()
				if n != 0 {
					t.Errorf("%d deliveries before Subscribed", n)
				}
			}
		},
	})
	if err != nil {
		t.Fatalf("subscribe %s: %v", stream, err)
	}
	if calls != 1 {
		t.Fatalf("Subscribed called %d times before Subscribe returned, want 1", calls)
	}
	if sub.Version() != got {
		t.Fatalf("Version() = %d, Subscribed(%d)", sub.Version(), got)
	}
	return sub, got
}

func ptr(v uint64) *uint64 { return &v }

// entryCount is how many streams have an entry.
func (h *Hub) entryCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.entries)
}

// awaitCond polls cond until it holds (for hub-internal state that has
// no channel to wait on).
func awaitCond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
