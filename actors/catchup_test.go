package actors

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Catch-up tests: a subscription reads history at its consumer's pace and
// goes live without a gap or a duplicate (subscription.go).

// rtPacedSink is a Sink with a small cap that a test's consumer drains.
// Enqueue refuses beyond cap; WaitRoom returns once fewer than cap/2
// deliveries wait (leaving the other half for live events) and, while the
// sink is gated, not before the gate opens.
type rtPacedSink struct {
	cap int

	mu        sync.Mutex
	buf       []Delivery
	maxLen    int // the most deliveries held at once
	overflows int
	gated     bool

	room    chan struct{} // the consumer took something, or the gate opened
	ready   chan struct{} // something was enqueued
	waiting chan struct{} // WaitRoom is waiting
}

func newRtPacedSink(cap int) *rtPacedSink {
	return &rtPacedSink{
		cap:     cap,
		room:    make(chan struct{}, 1),
		ready:   make(chan struct{}, 1),
		waiting: make(chan struct{}, 1),
	}
}

func rtPoke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *rtPacedSink) Enqueue(d Delivery) bool {
	s.mu.Lock()
	if len(s.buf) >= s.cap {
		s.mu.Unlock()
		return false
	}
	s.buf = append(s.buf, d)
	s.maxLen = max(s.maxLen, len(s.buf))
	s.mu.Unlock()
	rtPoke(s.ready)
	return true
}

func (s *rtPacedSink) WaitRoom(ctx context.Context) error {
	for {
		s.mu.Lock()
		ok := !s.gated && len(s.buf) < s.cap/2
		s.mu.Unlock()
		if ok {
			return nil
		}
		rtPoke(s.waiting)
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *rtPacedSink) Overflow() {
	s.mu.Lock()
	s.overflows++
	s.mu.Unlock()
	rtPoke(s.ready)
}

// take waits for the next delivery.
func (s *rtPacedSink) take(ctx context.Context) (Delivery, error) {
	for {
		s.mu.Lock()
		if len(s.buf) > 0 {
			d := s.buf[0]
			s.buf = s.buf[1:]
			s.mu.Unlock()
			rtPoke(s.room)
			return d, nil
		}
		s.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Delivery{}, ctx.Err()
		}
	}
}

// drain takes what is there without waiting.
func (s *rtPacedSink) drain() []Delivery {
	s.mu.Lock()
	got := s.buf
	s.buf = nil
	s.mu.Unlock()
	rtPoke(s.room)
	return got
}

func (s *rtPacedSink) gate(closed bool) {
	s.mu.Lock()
	s.gated = closed
	s.mu.Unlock()
	rtPoke(s.room)
}

func (s *rtPacedSink) stats() (maxLen, overflows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxLen, s.overflows
}

func eventVersions(ds []Delivery) []uint64 {
	var vs []uint64
	for _, d := range ds {
		if d.Event != nil {
			vs = append(vs, d.Event.Version)
		}
	}
	return vs
}

// Test accessors of a subscription's state.

func (s *subscription) rtHeldMax() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxHeld
}

// rtLive: registered with the actor, nothing held.
func (s *subscription) rtLive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registered && !s.holding
}

func (s *subscription) rtHolding() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registered && s.holding, len(s.held)
}

// rtAppendDirect appends n Incremented events to stream through the
// store, in big batches.
func rtAppendDirect(t testing.TB, store events.Store, stream string, n int) {
	t.Helper()
	const batch = 25_000
	evs := make([]events.Event, 0, batch)
	for v := 0; v < n; v += batch {
		evs = evs[:0]
		for i := v; i < min(n, v+batch); i++ {
			evs = append(evs, events.Event{ID: stream + "-" + strconv.Itoa(i+1), Type: "Incremented"})
		}
		if _, err := store.Append(context.Background(), stream, events.Exactly(uint64(v)), evs); err != nil {
			t.Fatalf("append %d events at %d: %v", len(evs), v, err)
		}
	}
}

// The required one: a consumer that reads slowly subscribes from 0 to a
// 100,000-event stream while commands keep arriving through the runtime.
// It receives every event exactly once, in order, up to the last one
// appended; the sink never holds more than its cap and the subscription's
// own buffer stays within holdLimit.
//
// The consumer takes one event at a time and pauses every pauseEvery
// events until the writer has run one more command; the writer runs one
// when the consumer pauses or has taken everything appended so far. So
// commands keep arriving during the whole catch-up, and, once live, the
// consumer is never more than a few events behind.
func TestSubscribeSlowConsumerLongStream(t *testing.T) {
	began := time.Now()
	store := rtOpenPebble(t, t.TempDir())
	const stream, stored = "counter:long", 100_000
	rtAppendDirect(t, store, stream, stored)
	seeded := time.Since(began)
	r := rtStart(t, rtConfig(store))
	var attempts atomic.Int64
	r.hooks.goLive = func(string) { attempts.Add(1) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const sinkCap, pauseEvery = 64, 200
	sink := newRtPacedSink(sinkCap)
	var consumed, appended atomic.Uint64 // versions
	var commands atomic.Int64
	appended.Store(stored)
	ask := make(chan struct{}, 1)      // the consumer pauses for a command
	tick := make(chan struct{}, 1)     // the writer ran one
	progress := make(chan struct{}, 1) // the consumer took an event
	stopWriter, writerDone := make(chan struct{}), make(chan struct{})

	from := uint64(0)
	api, err := r.Subscribe(ctx, SubscribeRequest{Stream: stream, From: &from, Sink: sink, Subscribed: func(v uint64) {
		if v != stored {
			t.Errorf("Subscribed(%d), want %d", v, stored)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Cancel()
	sub := api.(*subscription)

	var writerErr error
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stopWriter:
				return
			case <-ask:
			case <-progress:
				if consumed.Load() < appended.Load() {
					continue
				}
			}
			res, err := r.Execute(ctx, decider.Command{Stream: stream, Type: "Inc"}, events.AnyVersion)
			if err != nil {
				writerErr = err
				return
			}
			appended.Store(res.Version)
			commands.Add(1)
			rtPoke(tick)
		}
	}()

	consumerCtx, stopConsumer := context.WithCancel(ctx)
	consumerDone := make(chan error, 1)
	go func() {
		for next := uint64(1); ; next++ {
			d, err := sink.take(consumerCtx)
			if err != nil {
				consumerDone <- nil
				return
			}
			if d.Event == nil || d.Event.Version != next {
				consumerDone <- fmt.Errorf("got %+v, want version %d", d, next)
				return
			}
			consumed.Store(next)
			rtPoke(progress)
			if next%pauseEvery == 0 {
				rtPoke(ask)
				select {
				case <-tick:
				case <-writerDone:
				case <-consumerCtx.Done():
				}
			}
		}
	}()

	rtWaitLong(t, "the subscription to go live", 50*time.Second, sub.rtLive, consumerDone)
	caughtUp, atLive := time.Since(began), commands.Load()
	rtWaitLong(t, "50 commands once live", 10*time.Second, func() bool { return commands.Load() >= atLive+50 }, consumerDone)
	close(stopWriter)
	<-writerDone
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	final := appended.Load()
	rtWaitLong(t, "every event", 10*time.Second, func() bool { return consumed.Load() == final }, consumerDone)
	stopConsumer()
	if err := <-consumerDone; err != nil {
		t.Fatal(err)
	}
	// Nothing beyond the last event, nothing twice.
	if rest := sink.drain(); len(rest) != 0 {
		t.Fatalf("%d deliveries after the last event: %v", len(rest), eventVersions(rest))
	}
	maxLen, overflows := sink.stats()
	if overflows != 0 || maxLen > sinkCap {
		t.Fatalf("sink: %d overflows, held up to %d (cap %d)", overflows, maxLen, sinkCap)
	}
	if h := sub.rtHeldMax(); h > holdLimit {
		t.Fatalf("the subscription held %d deliveries, bound %d", h, holdLimit)
	}
	t.Logf("%d events (%d stored, %d appended by %d commands during the catch-up and after); seeding %v, live after %v, total %v; "+
		"%d go-live requests; sink held at most %d (cap %d), subscription held at most %d (bound %d), read %d events a page at most",
		final, stored, final-stored, commands.Load(), seeded.Round(time.Millisecond), caughtUp.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond), attempts.Load(), maxLen, sinkCap, sub.rtHeldMax(), holdLimit, catchUpPage)
}

// rtWaitLong polls cond for up to d, failing early if the consumer ended.
func rtWaitLong(t *testing.T, what string, d time.Duration, cond func() bool, consumerDone chan error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case err := <-consumerDone:
			t.Fatalf("waiting for %s: consumer ended: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// rtWaitSignal waits for ch or fails after 10 s.
func rtWaitSignal(t *testing.T, what string, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// rtTakeEvents takes n deliveries and returns their versions (0 for a
// presence change).
func rtTakeEvents(t *testing.T, sink *rtPacedSink, n int) []uint64 {
	t.Helper()
	ctx := rtCtx(t)
	var vs []uint64
	for range n {
		d, err := sink.take(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", vs, err)
		}
		if d.Event == nil {
			vs = append(vs, 0)
			continue
		}
		vs = append(vs, d.Event.Version)
	}
	return vs
}

// After liveAttempts refusals the reader is registered held: live
// deliveries wait in the subscription, at most holdLimit of them, while it
// reads the last stretch, and follow it once, in order. One more and the
// subscriber has overflowed.
func TestSubscribeGoLiveHeld(t *testing.T) {
	for _, over := range []bool{false, true} {
		t.Run(fmt.Sprintf("over the bound %v", over), func(t *testing.T) {
			r := rtStart(t, rtConfig(rtMemStore(t)))
			const stream = "counter:held"
			for range 10 {
				rtExec(t, r, stream, "Inc", "")
			}
			sink := newRtPacedSink(64)
			var attempts atomic.Int64
			// Each request to go live finds the stream one event further;
			// the last one (held) also closes the sink's gate.
			r.hooks.goLive = func(string) {
				if _, err := r.Execute(context.Background(), decider.Command{Stream: stream, Type: "Inc"}, events.AnyVersion); err != nil {
					t.Errorf("Execute: %v", err)
				}
				if attempts.Add(1) == liveAttempts+1 {
					sink.gate(true)
				}
			}
			from := uint64(0)
			api, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: stream, From: &from, Sink: sink})
			if err != nil {
				t.Fatal(err)
			}
			defer api.Cancel()
			sub := api.(*subscription)
			rtWaitFor(t, "a held registration", func() bool { held, _ := sub.rtHolding(); return held })
			rtWaitSignal(t, "the reader to wait for room", sink.waiting)
			// Registered at 15, the sink has 1..14: the reader waits to hand
			// over 15.
			if got := eventVersions(sink.drain()); !slices.Equal(got, rtSeq(1, 14)) {
				t.Fatalf("before the hold: %v", got)
			}
			live := 20
			if over {
				live = holdLimit + 1
			}
			for range live {
				rtExec(t, r, stream, "Inc", "")
			}
			if over {
				rtWaitFor(t, "the overflow", func() bool { _, n := sink.stats(); return n == 1 })
				rtWaitFor(t, "the reader to end", func() bool { return r.bg.N() == 0 })
				sink.gate(false)
				rtExec(t, r, stream, "Inc", "")
				if rest := sink.drain(); len(rest) != 0 || sub.rtHeldMax() != holdLimit {
					t.Fatalf("after the overflow: %v delivered, %d held at most", eventVersions(rest), sub.rtHeldMax())
				}
				return
			}
			// A command is answered before its event is published.
			rtWaitFor(t, fmt.Sprintf("%d held", live), func() bool { _, n := sub.rtHolding(); return n == live })
			sink.gate(false)
			want := rtSeq(15, 15+uint64(live))
			if got := rtTakeEvents(t, sink, len(want)); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			rtWaitFor(t, "direct delivery", sub.rtLive)
			rtExec(t, r, stream, "Inc", "")
			if got := rtTakeEvents(t, sink, 1); got[0] != 16+uint64(live) {
				t.Fatalf("live: got %v", got)
			}
			maxLen, overflows := sink.stats()
			if attempts.Load() != liveAttempts+1 || sub.rtHeldMax() != live || maxLen > 32 || overflows != 0 {
				t.Fatalf("%d requests, %d held at most, sink held %d at most, %d overflows", attempts.Load(), sub.rtHeldMax(), maxLen, overflows)
			}
		})
	}
}

// Cancel ends a reader that waits for room at once; Stop waits for (and
// ends) the readers; neither is an overflow.
func TestSubscribeCatchUpCancelAndStop(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	const stream = "counter:c"
	for range 10 {
		rtExec(t, r, stream, "Inc", "")
	}
	subscribe := func() (*rtPacedSink, Subscription) {
		sink := newRtPacedSink(64)
		sink.gate(true)
		from := uint64(0)
		sub, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: stream, From: &from, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		rtWaitSignal(t, "the reader to wait for room", sink.waiting)
		if n := r.bg.N(); n != 1 {
			t.Fatalf("%d readers", n)
		}
		return sink, sub
	}
	sink, sub := subscribe()
	sub.Cancel()
	rtWaitFor(t, "the reader to end", func() bool { return r.bg.N() == 0 })
	sink.gate(false)
	rtExec(t, r, stream, "Inc", "")
	if got := sink.drain(); len(got) != 0 {
		t.Fatalf("delivered after Cancel: %v", eventVersions(got))
	}

	sink, _ = subscribe()
	rtStop(t, r)
	if n := r.bg.N(); n != 0 {
		t.Fatalf("%d readers after Stop", n)
	}
	if _, overflows := sink.stats(); overflows != 0 {
		t.Fatal("Stop reported an overflow")
	}
}

// A store error during catch-up ends the subscription like a slow
// consumer: Overflow, once; a resume then gets everything.
func TestSubscribeCatchUpStoreError(t *testing.T) {
	store := &rtFaultyStore{Store: rtMemStore(t)}
	r := rtStart(t, rtConfig(store))
	const stream = "counter:e"
	for range 10 {
		rtExec(t, r, stream, "Inc", "")
	}
	store.failReads.Store(true)
	sink := newRtPacedSink(64)
	from := uint64(0)
	if _, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: stream, From: &from, Sink: sink}); err != nil {
		t.Fatal(err)
	}
	rtWaitFor(t, "the overflow", func() bool { _, n := sink.stats(); return n > 0 })
	rtWaitFor(t, "the reader to end", func() bool { return r.bg.N() == 0 })
	rtExec(t, r, stream, "Inc", "")
	if _, n := sink.stats(); n != 1 || len(sink.drain()) != 0 {
		t.Fatalf("%d overflows, or deliveries after it", n)
	}
	store.failReads.Store(false)
	if _, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: stream, From: &from, Sink: sink}); err != nil {
		t.Fatal(err)
	}
	if got := rtTakeEvents(t, sink, 11); !slices.Equal(got, rtSeq(1, 11)) {
		t.Fatalf("resume: %v", got)
	}
}

// A room subscriber that catches up joins presence when it goes live: the
// room's members see it then, and its own presence delivery follows its
// catch-up.
func TestPresenceAfterCatchUp(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	const room = "room:c"
	for range 5 {
		rtExec(t, r, room, "Post", `{}`)
	}
	watcher := &rtSink{}
	if _, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: room, Sink: watcher}); err != nil {
		t.Fatal(err)
	}
	rtWaitFor(t, "the watcher's presence", func() bool { return len(watcher.presence()) == 1 })
	sink := newRtPacedSink(64)
	sink.gate(true)
	from := uint64(0)
	if _, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: room, From: &from, Member: "ann", Sink: sink}); err != nil {
		t.Fatal(err)
	}
	rtWaitSignal(t, "the reader to wait for room", sink.waiting)
	if p := watcher.presence(); len(p) != 1 {
		t.Fatalf("ann joined before her catch-up: %v", p)
	}
	sink.gate(false)
	if got := rtTakeEvents(t, sink, 6); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 0}) {
		t.Fatalf("ann got %v, want the 5 events then presence", got)
	}
	rtWaitFor(t, "the watcher to see ann", func() bool { return slices.Equal(watcher.lastPresence(), []string{"ann"}) })
}

// Live only, and From at or beyond the stream's version, need no reader:
// the subscription is live when Subscribe returns.
func TestSubscribeImmediate(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	const stream = "counter:i"
	for range 3 {
		rtExec(t, r, stream, "Inc", "")
	}
	u := func(v uint64) *uint64 { return &v }
	for name, from := range map[string]*uint64{"live only": nil, "from 3": u(3), "from 5": u(5)} {
		sink := &rtSink{}
		api, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: stream, From: from, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		if sub := api.(*subscription); !sub.rtLive() || r.bg.N() != 0 || sub.Version() != 3 {
			t.Fatalf("%s: live %v, %d readers, version %d", name, sub.rtLive(), r.bg.N(), sub.Version())
		}
		api.Cancel()
	}
}
