package actors

import (
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

func rtSeq(from, to uint64) []uint64 {
	var vs []uint64
	for v := from; v <= to; v++ {
		vs = append(vs, v)
	}
	return vs
}

// Catch-up then live, every event exactly once and in order, while
// commands race with the subscriptions.
func TestSubscribeCatchUpAndLive(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	const stream = "counter:sub"
	for range 30 {
		rtExec(t, r, stream, "Inc", "")
	}
	const writers, each = 4, 50
	const final = 30 + writers*each
	var acked atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := r.Execute(ctx, decider.Command{Stream: stream, Type: "Inc"}, events.AnyVersion); err != nil {
					t.Errorf("Execute: %v", err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	type subCase struct {
		name  string
		from  *uint64
		sink  *rtSink
		sub   Subscription
		first uint64 // first version expected
	}
	u := func(v uint64) *uint64 { return &v }
	subscribe := func(c *subCase) {
		var gotVersion atomic.Uint64
		sub, err := r.Subscribe(ctx, SubscribeRequest{
			Stream: stream, From: c.from, Sink: c.sink,
			Subscribed: func(v uint64) {
				if len(c.sink.versions()) != 0 {
					t.Errorf("%s: Subscribed called after a delivery", c.name)
				}
				gotVersion.Store(v)
			},
		})
		if err != nil {
			t.Fatalf("%s: Subscribe: %v", c.name, err)
		}
		if gotVersion.Load() != sub.Version() {
			t.Fatalf("%s: Subscribed got %d, Version() is %d", c.name, gotVersion.Load(), sub.Version())
		}
		c.sub = sub
		if c.from == nil {
			c.first = sub.Version() + 1
		} else {
			c.first = *c.from + 1
		}
	}
	cases := []*subCase{
		{name: "from 0 at once", from: u(0)},
		{name: "from 0 mid-way", from: u(0)},
		{name: "from 50 mid-way", from: u(50)},
		{name: "live only", from: nil},
		{name: "from the future", from: u(final - 5)},
	}
	for _, c := range cases {
		c.sink = &rtSink{}
	}
	subscribe(cases[0])
	rtWaitFor(t, "half the commands", func() bool { return acked.Load() >= writers*each/2 })
	for _, c := range cases[1:] {
		subscribe(c)
	}
	wg.Wait()
	for _, c := range cases {
		want := rtSeq(c.first, final)
		rtWaitFor(t, c.name+" to receive everything", func() bool { return len(c.sink.versions()) >= len(want) })
		if got := c.sink.versions(); !slices.Equal(got, want) {
			t.Fatalf("%s: got versions %v, want %d..%d exactly once in order", c.name, got, c.first, final)
		}
		c.sub.Cancel()
		c.sub.Cancel() // idempotent
	}
	// Nothing after Cancel.
	rtExec(t, r, stream, "Inc", "")
	for _, c := range cases {
		if got := c.sink.versions(); slices.Contains(got, final+1) {
			t.Fatalf("%s received an event after Cancel", c.name)
		}
	}
}

func TestSubscribeOverflow(t *testing.T) {
	tests := []struct {
		name    string
		from    *uint64
		limit   int
		prefill int
	}{
		{"during catch-up", new(uint64), 3, 10},
		{"live", nil, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &rtObserver{}
			cfg := rtConfig(rtMemStore(t))
			cfg.Observer = obs
			cfg.IdleTimeout = 10 * time.Millisecond
			r := rtStart(t, cfg)
			for range tt.prefill {
				rtExec(t, r, "counter:o", "Inc", "")
			}
			sink := &rtSink{limit: tt.limit}
			if _, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: "counter:o", From: tt.from, Sink: sink}); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				rtExec(t, r, "counter:o", "Inc", "")
			}
			rtWaitFor(t, "Overflow", func() bool { return sink.overflowCount() > 0 })
			rtExec(t, r, "counter:o", "Inc", "")
			// The actor forgot the subscription: it passivates.
			rtWaitFor(t, "passivation", func() bool { return obs.passivated.Load() > 0 })
			if n := sink.overflowCount(); n != 1 {
				t.Fatalf("Overflow called %d times, want 1", n)
			}
			if got := sink.versions(); len(got) != tt.limit || got[0] != 1 {
				t.Fatalf("delivered %v, want the first %d", got, tt.limit)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	const room = "room:p"
	subscribe := func(member string, sink *rtSink) Subscription {
		t.Helper()
		sub, err := r.Subscribe(ctx, SubscribeRequest{Stream: room, Member: member, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	waitPresence := func(what string, sink *rtSink, want []string, n int) {
		t.Helper()
		rtWaitFor(t, what, func() bool { return len(sink.presence()) >= n })
		if got := sink.lastPresence(); !slices.Equal(got, want) || len(sink.presence()) != n {
			t.Fatalf("%s: presence deliveries %v, want %d ending with %v", what, sink.presence(), n, want)
		}
	}
	members := func() []string {
		t.Helper()
		view, err := r.State(ctx, room, decider.Caller{})
		if err != nil {
			t.Fatal(err)
		}
		var s rtRoom
		if err := json.Unmarshal(view.JSON, &s); err != nil {
			t.Fatal(err)
		}
		return s.Members
	}
	rtExec(t, r, room, "Post", `{}`)

	ann, bob, watcher, ann2 := &rtSink{}, &rtSink{}, &rtSink{}, &rtSink{}
	subAnn := subscribe("ann", ann)
	waitPresence("ann joins", ann, []string{"ann"}, 1)
	subBob := subscribe("bob", bob)
	waitPresence("bob joins (ann sees)", ann, []string{"ann", "bob"}, 2)
	waitPresence("bob joins (bob sees)", bob, []string{"ann", "bob"}, 1)
	subscribe("", watcher)
	waitPresence("a watcher learns who is here", watcher, []string{"ann", "bob"}, 1)
	subAnn2 := subscribe("ann", ann2)
	waitPresence("ann's second connection learns who is here", ann2, []string{"ann", "bob"}, 1)
	if got := members(); !slices.Equal(got, []string{"ann", "bob"}) {
		t.Fatalf("state members = %v", got)
	}

	subBob.Cancel()
	waitPresence("bob leaves", ann, []string{"ann"}, 3)
	waitPresence("bob leaves (watcher)", watcher, []string{"ann"}, 2)
	subAnn.Cancel() // ann is still here on her second connection
	rtExec(t, r, room, "Post", `{}`)
	rtWaitFor(t, "the post", func() bool { return len(watcher.versions()) == 1 })
	if len(watcher.presence()) != 2 {
		t.Fatalf("presence changed when one of ann's two connections left: %v", watcher.presence())
	}
	subAnn2.Cancel()
	waitPresence("ann leaves", watcher, []string{}, 3)
	if got := members(); len(got) != 0 {
		t.Fatalf("state members = %v, want none", got)
	}

	// A member whose sink overflows leaves.
	dan := &rtSink{limit: 1}
	subscribe("dan", dan)
	waitPresence("dan joins", watcher, []string{"dan"}, 4)
	rtExec(t, r, room, "Post", `{}`) // dan's sink is full
	waitPresence("dan dropped", watcher, []string{}, 5)
	if dan.overflowCount() != 1 {
		t.Fatalf("dan's Overflow called %d times", dan.overflowCount())
	}
}
