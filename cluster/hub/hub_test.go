package hub

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Subscriptions of every kind, made while a writer appends, each get
// every version after their start exactly once, in order.
func TestCatchUpWhileAppending(t *testing.T) {
	store := newStore(t)
	// A hold that cannot overflow: this test is about order, not pace.
	h := startHub(t, store, Config{HoldLimit: 1 << 20})
	const stream, subscribers, burst = "chat:busy", 40, 150
	appendN(t, store, stream, 700)

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// The writer appends a burst of events in small batches for each
	// token, so that every subscription races with appends.
	tokens, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		wr := rand.New(rand.NewPCG(seed, 1))
		for range tokens {
			for n := 0; n < burst; {
				k := min(1+wr.IntN(7), burst-n)
				appendN(t, store, stream, k)
				n += k
			}
		}
	}()

	type subscriber struct {
		sink *testSink
		from uint64 // deliveries start after it
	}
	var subs []subscriber
	version := func() uint64 {
		v, err := store.StreamVersion(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range subscribers {
		now := version()
		tokens <- struct{}{}
		var from *uint64
		switch i % 4 {
		case 0:
			from = ptr(0)
		case 1:
			from = ptr(rng.Uint64N(now + 1))
		case 2:
			from = nil // live only
		case 3:
			from = ptr(now) // at the head, which moves on
		}
		sink := newSink()
		_, v := subscribe(t, h, stream, from, "", sink)
		start := v
		if from != nil {
			start = *from
		}
		subs = append(subs, subscriber{sink, start})
	}
	close(tokens)
	<-writerDone
	final := version()
	if final != 700+subscribers*burst {
		t.Fatalf("the stream is at %d", final)
	}
	awaitDispatched(t, h, store)
	for i, s := range subs {
		if s.from < final { // a live-only one may have come after the last burst
			s.sink.awaitVersion(t, final)
		}
		if got, want := s.sink.versions(), seq(s.from, final); !slices.Equal(got, want) {
			t.Fatalf("subscriber %d from %d: got %d events, want %d (first %v)", i, s.from, len(got), len(want), got[:min(5, len(got))])
		}
		if n := s.sink.overflowCount(); n != 0 {
			t.Fatalf("subscriber %d overflowed %d times", i, n)
		}
	}
}

// A long catch-up reads the stored events before it registers: it holds
// nothing while it reads them.
func TestLongCatchUpRegistersAtTheEnd(t *testing.T) {
	store := newStore(t)
	const stream, stored = "chat:long", 100_000
	for range stored / 1000 {
		appendN(t, store, stream, 1000)
	}
	h, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	atRegistration := make(chan uint64, 1)
	h.hooks.registered = func(s *sub) { atRegistration <- s.lastVersion() }
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())

	sink := newSink()
	_, v := subscribe(t, h, stream, ptr(0), "", sink)
	if v != stored {
		t.Fatalf("Subscribed(%d), want %d", v, stored)
	}
	if got := <-atRegistration; got != stored {
		t.Fatalf("registered having read %d events, want all %d", got, stored)
	}
	appendN(t, store, stream, 1)
	sink.awaitVersion(t, stored+1)
	if got := sink.versions(); !slices.Equal(got, seq(0, stored+1)) {
		t.Fatalf("got %d events, want %d in order", len(got), stored+1)
	}
}

func TestFromAtAndBeyondTheHead(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	const stream = "chat:from"
	appendN(t, store, stream, 10)

	all, at, beyond := newSink(), newSink(), newSink()
	for _, c := range []struct {
		sink *testSink
		from uint64
	}{{all, 0}, {at, 10}, {beyond, 15}} {
		if _, v := subscribe(t, h, stream, ptr(c.from), "", c.sink); v != 10 {
			t.Fatalf("from %d: Subscribed(%d), want 10", c.from, v)
		}
	}
	appendN(t, store, stream, 10)
	for _, c := range []struct {
		sink *testSink
		from uint64
	}{{all, 0}, {at, 10}, {beyond, 15}} {
		c.sink.awaitVersion(t, 20)
		if got, want := c.sink.versions(), seq(c.from, 20); !slices.Equal(got, want) {
			t.Fatalf("from %d: got %v, want %v", c.from, got, want)
		}
	}
}

func TestLiveOnly(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	const stream = "chat:live"
	appendN(t, store, stream, 5)
	sink := newSink()
	if _, v := subscribe(t, h, stream, nil, "", sink); v != 5 {
		t.Fatalf("Subscribed(%d), want 5", v)
	}
	appendN(t, store, "chat:other", 3)
	appendN(t, store, stream, 2)
	sink.awaitVersion(t, 7)
	if got := sink.versions(); !slices.Equal(got, []uint64{6, 7}) {
		t.Fatalf("got %v, want [6 7]", got)
	}
}

// A subscription to an empty stream starts at version 0.
func TestEmptyStream(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	live, from := newSink(), newSink()
	if _, v := subscribe(t, h, "chat:new", nil, "", live); v != 0 {
		t.Fatalf("Subscribed(%d), want 0", v)
	}
	subscribe(t, h, "chat:new", ptr(0), "", from)
	appendN(t, store, "chat:new", 2)
	for _, s := range []*testSink{live, from} {
		s.awaitVersion(t, 2)
		if got := s.versions(); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("got %v, want [1 2]", got)
		}
	}
}

// awaitDispatched waits until the follower has dispatched the event at
// the store's head: a fresh subscriber to a marker stream gets it.
func awaitDispatched(t *testing.T, h *Hub, store events.Store) {
	t.Helper()
	marker := newSink()
	sub, _ := subscribe(t, h, "chat:marker", nil, "", marker)
	defer sub.Cancel()
	v := appendN(t, store, "chat:marker", 1)
	marker.awaitVersion(t, v)
}

func TestOverflowLive(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	const stream = "chat:full"
	sink := newSink()
	sink.limit = 2
	sub, _ := subscribe(t, h, stream, nil, "", sink)
	for range 5 {
		appendN(t, store, stream, 1)
	}
	sink.awaitOverflow(t)
	appendN(t, store, stream, 3)
	awaitDispatched(t, h, store)
	if n := sink.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}
	if got := sink.versions(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("got %v, want [1 2]", got)
	}
	if n := h.entryCount(); n != 0 {
		t.Fatalf("%d entries left, want 0", n)
	}
	sub.Cancel() // after Overflow: nothing happens
	sub.Cancel()
	if n := sink.overflowCount(); n != 1 {
		t.Fatalf("%d overflows after Cancel, want 1", n)
	}
}

func TestOverflowDuringCatchUp(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	const stream = "chat:slow"
	appendN(t, store, stream, 10)
	sink := newSink()
	sink.limit = 3
	subscribe(t, h, stream, ptr(0), "", sink)
	sink.awaitOverflow(t)
	appendN(t, store, stream, 1)
	awaitDispatched(t, h, store)
	if n := sink.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}
	if got := sink.versions(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("got %v, want [1 2 3]", got)
	}
}

// Live events that arrive while a subscription reads its last stretch
// are held; more than HoldLimit of them is an overflow.
func TestHoldLimit(t *testing.T) {
	store := newStore(t)
	const stream, limit = "chat:hold", 4
	appendN(t, store, stream, 1)
	h, err := New(Config{Store: store, HoldLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	registered, resume := make(chan *sub), make(chan struct{})
	h.hooks.registered = func(s *sub) {
		registered <- s
		<-resume
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())

	sink := newSink()
	subscribe(t, h, stream, ptr(0), "", sink)
	s := <-registered
	for range limit {
		appendN(t, store, stream, 1)
	}
	awaitCond(t, "a full hold", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.held) == limit
	})
	if n := sink.overflowCount(); n != 0 {
		t.Fatalf("%d overflows with a full hold, want 0", n)
	}
	appendN(t, store, stream, 1)
	sink.awaitOverflow(t)
	close(resume)
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}
	if got := sink.versions(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("got %v, want [1]", got)
	}
}

// A catch-up reader that finds events held beyond what it has read (a
// StreamVersion that lags, as from a replica) reads the gap from the
// store before handing them over.
func TestHoldGapReadFromStore(t *testing.T) {
	fs := newFaultStore(newStore(t))
	const stream = "chat:gap"
	appendN(t, fs, stream, 10)
	h, err := New(Config{Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	registered, resume := make(chan *sub), make(chan struct{})
	h.hooks.registered = func(s *sub) {
		registered <- s
		<-resume
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())

	fs.mu.Lock()
	fs.versionLag = 5
	fs.mu.Unlock()
	sink := newSink()
	if _, v := subscribe(t, h, stream, ptr(0), "", sink); v != 5 {
		t.Fatalf("Subscribed(%d), want the lagging 5", v)
	}
	s := <-registered
	appendN(t, fs, stream, 1) // 11: held
	awaitCond(t, "a held event", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.held) == 1
	})
	close(resume) // it reads up to 6, then 7…10 for the gap before 11
	appendN(t, fs, stream, 1)
	sink.awaitVersion(t, 12)
	if got := sink.versions(); !slices.Equal(got, seq(0, 12)) {
		t.Fatalf("got %v, want 1…12", got)
	}
	if n := sink.overflowCount(); n != 0 {
		t.Fatalf("%d overflows, want 0", n)
	}
}

func TestStoreErrorDuringCatchUp(t *testing.T) {
	fs := newFaultStore(newStore(t))
	h := startHub(t, fs, Config{})
	const stream = "chat:broken"
	appendN(t, fs, stream, 10)
	fs.mu.Lock()
	fs.readErr = errors.New("connection reset")
	fs.mu.Unlock()
	sink := newSink()
	subscribe(t, h, stream, ptr(0), "", sink)
	sink.awaitOverflow(t)
	fs.mu.Lock()
	fs.readErr = nil
	fs.mu.Unlock()
	appendN(t, fs, stream, 1)
	awaitDispatched(t, h, fs)
	if got := sink.versions(); len(got) != 0 {
		t.Fatalf("got %v, want nothing", got)
	}
	if n := sink.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}

	// The stream's version cannot be read: Subscribe fails.
	fs.mu.Lock()
	fs.versionErr = errors.New("connection reset")
	fs.mu.Unlock()
	for _, from := range []*uint64{nil, ptr(0)} {
		_, err := h.Subscribe(context.Background(), actors.SubscribeRequest{
			Stream: stream, From: from, Sink: newSink(),
			Subscribed: func(uint64) { t.Error("Subscribed called for a failed Subscribe") },
		})
		if !errors.Is(err, actors.ErrUnavailable) {
			t.Fatalf("from %v: got %v, want ErrUnavailable", from, err)
		}
	}
	fs.mu.Lock()
	fs.versionErr = nil
	fs.mu.Unlock()
	awaitCond(t, "no entry left", func() bool { return h.entryCount() == 0 })
}

// When Follow fails, every live subscription ends with Overflow; the
// follower resumes where it was, and new subscriptions work.
func TestFollowErrorEndsSubscriptions(t *testing.T) {
	fs := newFaultStore(newStore(t))
	h, err := New(Config{Store: fs, FollowBackoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	h.hooks.followFailed = func(err error) { failed <- err }
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	<-fs.follows

	const stream = "chat:follow"
	a, b := newSink(), newSink()
	subscribe(t, h, stream, nil, "", a)
	subscribe(t, h, "chat:follow2", ptr(0), "", b)
	appendN(t, fs, stream, 1)
	appendN(t, fs, "chat:follow2", 1)
	a.awaitVersion(t, 1)
	b.awaitVersion(t, 1)

	lost := errors.New("connection lost")
	fs.breakFollow <- lost
	if err := <-failed; !errors.Is(err, lost) {
		t.Fatalf("follower failed with %v, want %v", err, lost)
	}
	a.awaitOverflow(t)
	b.awaitOverflow(t)
	if h.entryCount() != 0 {
		t.Fatal("entries left after the follower failed")
	}
	appendN(t, fs, stream, 2) // while the follower is down
	c, d := newSink(), newSink()
	subscribe(t, h, stream, ptr(1), "", c) // resumes
	subscribe(t, h, stream, nil, "", d)
	<-fs.follows // restarted
	appendN(t, fs, stream, 1)
	c.awaitVersion(t, 4)
	d.awaitVersion(t, 4)
	if got := c.versions(); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("resumed: got %v, want [2 3 4]", got)
	}
	if got := d.versions(); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("live: got %v, want [4]", got)
	}
	for _, s := range []*testSink{a, b} {
		if n := s.overflowCount(); n != 1 {
			t.Fatalf("%d overflows, want 1", n)
		}
	}
}

// Once Cancel returns nothing more is enqueued, also while the reader
// waits for room or holds.
func TestCancelDuringCatchUp(t *testing.T) {
	store := newStore(t)
	h := startHub(t, store, Config{})
	const stream = "chat:cancel"
	appendN(t, store, stream, 1000)
	sink := newSink()
	sink.gate = make(chan struct{})
	sub, _ := subscribe(t, h, stream, ptr(0), "", sink)
	for range 10 {
		sink.gate <- struct{}{}
	}
	sink.await(t, "the reader to wait for room", func(s *testSink) bool {
		return len(s.got) == 10 && s.waiting == 1
	})
	sub.Cancel()
	sink.close()
	sub.Cancel()
	appendN(t, store, stream, 5)
	if err := h.Stop(context.Background()); err != nil { // waits for the reader
		t.Fatal(err)
	}
	if n := sink.lateCount(); n != 0 {
		t.Fatalf("%d deliveries after Cancel", n)
	}
	if n := sink.overflowCount(); n != 0 {
		t.Fatalf("%d overflows, want 0", n)
	}
	if got := sink.versions(); !slices.Equal(got, seq(0, 10)) {
		t.Fatalf("got %v, want 1…10", got)
	}
}

func TestCancelWhileHolding(t *testing.T) {
	store := newStore(t)
	const stream = "chat:cancelheld"
	appendN(t, store, stream, 3)
	h, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	registered, resume := make(chan *sub), make(chan struct{})
	h.hooks.registered = func(s *sub) {
		registered <- s
		<-resume
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	sink := newSink()
	sub, _ := subscribe(t, h, stream, ptr(0), "", sink)
	<-registered
	appendN(t, store, stream, 2)
	sub.Cancel()
	sink.close()
	if h.entryCount() != 0 {
		t.Fatal("the entry outlived its only subscription")
	}
	close(resume)
	appendN(t, store, stream, 1)
	awaitDispatched(t, h, store)
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.lateCount(); n != 0 {
		t.Fatalf("%d deliveries after Cancel", n)
	}
	if got := sink.versions(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("got %v, want [1 2 3]", got)
	}
}

func TestStop(t *testing.T) {
	store := newStore(t)
	calls := make(chan string, 16)
	cfg := Config{
		Store:       store,
		HasPresence: func(s string) bool { return s == "room:stop" },
		LocalMembers: func(stream string, members []string) {
			calls <- stream + ":" + strings.Join(members, ",")
		},
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("Start after Stop succeeded")
	}

	h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	appendN(t, store, "room:stop", 100)
	live, reading := newSink(), newSink()
	reading.gate = make(chan struct{})
	subscribe(t, h, "room:stop", nil, "ann", live)
	subscribe(t, h, "room:stop", ptr(0), "bob", reading)
	if got := <-calls; got != "room:stop:ann" {
		t.Fatalf("LocalMembers %q, want ann", got)
	}
	reading.await(t, "the reader to wait", func(s *testSink) bool { return s.waiting == 1 })

	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Stop waited for the report of the emptied set.
	select {
	case got := <-calls:
		if got != "room:stop:" {
			t.Fatalf("LocalMembers %q, want an empty set", got)
		}
	default:
		t.Fatal("Stop returned before reporting the emptied member set")
	}
	if live.overflowCount()+reading.overflowCount() != 0 {
		t.Fatal("Stop called Overflow")
	}
	if n := h.entryCount(); n != 0 {
		t.Fatalf("%d entries after Stop", n)
	}
	_, err = h.Subscribe(context.Background(), actors.SubscribeRequest{Stream: "room:stop", Sink: newSink()})
	if !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("Subscribe after Stop: %v, want ErrUnavailable", err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if len(calls) != 0 {
		t.Fatalf("more LocalMembers calls: %q", <-calls)
	}
}

func TestSubscribeErrors(t *testing.T) {
	store := newStore(t)
	h, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Subscribe(context.Background(), actors.SubscribeRequest{Stream: "chat:a", Sink: newSink()})
	if !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("before Start: %v, want ErrUnavailable", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	_, err = h.Subscribe(context.Background(), actors.SubscribeRequest{Stream: "chat:a"})
	if !errors.Is(err, decider.ErrInvalid) {
		t.Fatalf("without a sink: %v, want ErrInvalid", err)
	}
	_, err = h.Subscribe(context.Background(), actors.SubscribeRequest{Stream: "no kind", Sink: newSink()})
	if !errors.Is(err, events.ErrInvalidStream) {
		t.Fatalf("bad stream: %v, want ErrInvalidStream", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
}
