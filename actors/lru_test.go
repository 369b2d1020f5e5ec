package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// rtActiveStreams lists the streams with a serving activation, sorted.
func (r *Runtime) rtActiveStreams() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s := range r.entries {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Past MaxActors the least recently used actor is passivated, and only it.
func TestMaxActorsEvictsLeastRecentlyUsed(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	cfg.MaxActors = 3
	r, retired := rtRetirements(t, cfg)
	for _, s := range []string{"counter:a", "counter:b", "counter:c"} {
		rtExec(t, r, s, "Inc", "")
	}
	rtExec(t, r, "counter:a", "Inc", "") // b is now the least recently used
	noRetirement(t, retired)

	rtExec(t, r, "counter:d", "Inc", "")
	if s := <-retired; s != "counter:b" {
		t.Fatalf("%s was evicted, want counter:b", s)
	}
	if got, want := r.rtActiveStreams(), []string{"counter:a", "counter:c", "counter:d"}; !slices.Equal(got, want) {
		t.Fatalf("active %v, want %v", got, want)
	}
	// The evicted stream comes back with its state, evicting the next one.
	if s := rtState[rtCounter](t, r, "counter:b"); s.N != 1 {
		t.Fatalf("counter:b after eviction = %+v, want n 1", s)
	}
	if s := <-retired; s != "counter:c" {
		t.Fatalf("%s was evicted, want counter:c", s)
	}
	noRetirement(t, retired)
	if n := obs.activated.Load(); n != 5 {
		t.Fatalf("%d activations, want 5", n)
	}
}

// An actor with a subscriber or a running step is never evicted: the limit
// is exceeded while they are pinned, and they are evictable again once
// they are not.
func TestMaxActorsSkipsPinned(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	cfg.MaxActors = 2
	setCook(&cfg, time.Hour)
	r, retired := rtRetirements(t, cfg)
	ctx := rtCtx(t)

	sub, err := r.Subscribe(ctx, SubscribeRequest{Stream: "counter:watched", Sink: &rtSink{}})
	if err != nil {
		t.Fatal(err)
	}
	rtExec(t, r, "counter:watched", "Inc", "")
	// shop:1's first step notifies tally:main (a third actor: not evicted
	// as it spawns, and the others are pinned), its second cooks for an
	// hour.
	rtExec(t, r, "shop:1", "Place", `{}`)
	rtWaitFor(t, "the notify step", func() bool { return rtState[rtShop](t, r, "shop:1").Steps["notify"] == "done" })
	rtExec(t, r, "counter:x", "Inc", "") // tally:main is the only candidate
	if s := <-retired; s != "tally:main" {
		t.Fatalf("%s was evicted, want tally:main", s)
	}
	// An eviction sent to shop:1 or counter:watched would be in their
	// mailbox ahead of these reads, which a new activation would answer.
	for _, s := range []string{"shop:1", "counter:watched"} {
		if _, err := r.State(ctx, s, decider.Caller{}); err != nil {
			t.Fatal(err)
		}
	}
	noRetirement(t, retired)
	if n := obs.activated.Load(); n != 4 {
		t.Fatalf("%d activations, want 4: a pinned actor was evicted", n)
	}
	if got, want := r.rtActiveStreams(), []string{"counter:watched", "counter:x", "shop:1"}; !slices.Equal(got, want) {
		t.Fatalf("active %v, want %v", got, want)
	}

	// Unpinned, counter:watched counts as just used, and the registry is
	// past the limit: counter:x goes at once.
	sub.Cancel()
	if _, err := r.State(ctx, "counter:watched", decider.Caller{}); err != nil {
		t.Fatal(err)
	}
	if s := <-retired; s != "counter:x" {
		t.Fatalf("%s was evicted, want counter:x", s)
	}
	if got, want := r.rtActiveStreams(), []string{"counter:watched", "shop:1"}; !slices.Equal(got, want) {
		t.Fatalf("active %v, want %v", got, want)
	}
}

// An actor asked to passivate for the limit while a request is queued for
// it stays and serves it (no second activation); the next least recently
// used idle actor goes instead.
func TestMaxActorsEvictedBusyActorStays(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	cfg.MaxActors = 2
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deciding := make(chan struct{})
	release := make(chan struct{})
	queued := make(chan struct{})
	retired := make(chan string, 10)
	var hold sync.Once
	r.hooks.idle = func(s string) {
		if s == "counter:a" {
			hold.Do(func() {
				close(deciding)
				<-release
			})
		}
	}
	r.hooks.retired = func(s string) { retired <- s }
	var armed atomic.Bool
	r.hooks.sent = func(s string, _ any) {
		if s == "counter:a" && armed.Load() {
			close(queued)
		}
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtStop(t, r) })

	rtExec(t, r, "counter:a", "Inc", "")
	rtExec(t, r, "counter:b", "Inc", "")
	rtExec(t, r, "counter:c", "Inc", "") // evicts a, which waits in the hook
	<-deciding
	armed.Store(true)
	reply := make(chan error, 1)
	go func() {
		_, err := r.State(context.Background(), "counter:a", decider.Caller{})
		reply <- err
	}()
	<-queued
	close(release)
	if err := <-reply; err != nil {
		t.Fatalf("State of the actor being evicted: %v", err)
	}
	if s := <-retired; s != "counter:b" {
		t.Fatalf("%s retired, want counter:b", s)
	}
	if n := obs.activated.Load(); n != 3 {
		t.Fatalf("%d activations, want 3: the queued read reactivated counter:a", n)
	}
	if got, want := r.rtActiveStreams(), []string{"counter:a", "counter:c"}; !slices.Equal(got, want) {
		t.Fatalf("active %v, want %v", got, want)
	}
}

// Many callers on many more streams than MaxActors: every command lands
// once, and once quiet the registry is within the limit.
func TestMaxActorsUnderLoad(t *testing.T) {
	const streams, callers, perCaller, limit = 200, 4, 300, 10
	cfg := rtConfig(rtMemStore(t))
	cfg.MaxActors = limit
	r := rtStart(t, cfg)
	ctx := rtCtx(t)
	counts := make([][streams]int, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range perCaller {
				i := rng.IntN(streams)
				if i%7 == 0 { // some reads of streams that do not exist
					r.State(ctx, fmt.Sprintf("counter:none%d", i), decider.Caller{})
					continue
				}
				if _, err := r.Execute(ctx, decider.Command{Stream: fmt.Sprintf("counter:s%d", i), Type: "Inc"}, events.AnyVersion); err != nil {
					t.Error(err)
					return
				}
				counts[c][i]++
			}
		}()
	}
	wg.Wait()
	for i := range streams {
		want := 0
		for c := range callers {
			want += counts[c][i]
		}
		if want == 0 {
			continue
		}
		if s := rtState[rtCounter](t, r, fmt.Sprintf("counter:s%d", i)); s.N != want {
			t.Fatalf("counter:s%d = %d, want %d", i, s.N, want)
		}
	}
	rtWaitFor(t, "evictions to settle", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.evicting == 0
	})
	if n := len(r.rtActiveStreams()); n > limit {
		t.Fatalf("%d active actors, want at most %d", n, limit)
	}
}
