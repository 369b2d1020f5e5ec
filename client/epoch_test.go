package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/b6368a97/engine/events"
)

// timeline records, in delivery order, what a subscription's goroutine
// hands the application: "v<N>" for an event, "epoch" for an epoch change.
type timeline struct {
	mu      sync.Mutex
	order   []string
	changes []EpochChange
}

func (l *timeline) event(v uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.order = append(l.order, fmt.Sprint("v", v))
}

func (l *timeline) onEpoch(c EpochChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.order = append(l.order, "epoch")
	l.changes = append(l.changes, c)
}

func (l *timeline) snapshot() ([]string, []EpochChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.order), slices.Clone(l.changes)
}

func (l *timeline) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}

// TestEpochChangeStartsOver: the server's store is replaced by an empty one
// with another epoch while the client is subscribed. The client's resume
// (from its last version, with the old epoch) is refused, and it subscribes
// again from 0: the application is told, between the old events and the
// new store's, and never sees the new store from its old version.
func TestEpochChangeStartsOver(t *testing.T) {
	f := newFakeServer(t)
	var st states
	c := dial(t, f, fastOptions(&st))
	for range 5 {
		f.Append("room:e")
	}
	var tl timeline
	var r recorder
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := c.Subscribe(ctx, "room:e", From(0), "", func(e events.Event) { r.handle(e); tl.event(e.Version) }, WithEpochChange(tl.onEpoch))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first store's 5 events", func() bool { return sub.Version() == 5 })
	old := f.Epoch()
	if got := sub.Epoch(); got != old {
		t.Fatalf("Epoch() = %q, want the server's %q", got, old)
	}

	fresh := f.Wipe()
	waitUntil(t, "the reconnect", func() bool { return st.count(StateReconnected) == 1 })
	for range 3 {
		f.Append("room:e")
	}
	waitUntil(t, "the epoch change and the new store's 3 events", func() bool { return tl.len() == 5+1+3 })

	order, changes := tl.snapshot()
	want := []string{"v1", "v2", "v3", "v4", "v5", "epoch", "v1", "v2", "v3"}
	if !slices.Equal(order, want) {
		t.Fatalf("delivered %v, want %v", order, want)
	}
	if wantC := (EpochChange{Stream: "room:e", Old: old, New: fresh, LastVersion: 5}); changes[0] != wantC {
		t.Fatalf("EpochChange %+v, want %+v", changes[0], wantC)
	}
	if got := sub.Epoch(); got != fresh {
		t.Fatalf("Epoch() after the change = %q, want %q", got, fresh)
	}
	if got := sub.Version(); got != 3 {
		t.Fatalf("Version() = %d, want 3", got)
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("the subscription ended: %v", err)
	}

	// What the server was asked: the first subscribe, the resume from 5
	// under the old epoch (refused), then from 0 without an epoch.
	reqs := f.SubscribeRequests()
	type sent struct {
		from  int64
		epoch string
	}
	var got []sent
	for _, q := range reqs {
		s := sent{from: -1, epoch: q.Epoch}
		if q.From != nil {
			s.from = int64(*q.From)
		}
		got = append(got, s)
	}
	if wantS := []sent{{0, ""}, {5, old}, {0, ""}}; !slices.Equal(got, wantS) {
		t.Fatalf("subscribe requests (from, epoch) %v, want %v", got, wantS)
	}

	// Live events go on, and a plain reconnect now resumes under the new
	// epoch with no further change.
	f.DropAll(0)
	waitUntil(t, "the second reconnect", func() bool { return st.count(StateReconnected) == 2 })
	f.Append("room:e")
	waitUntil(t, "version 4", func() bool { return sub.Version() == 4 })
	if _, changes := tl.snapshot(); len(changes) != 1 {
		t.Fatalf("%d epoch changes, want 1", len(changes))
	}
	if last := f.SubscribeRequests()[len(f.SubscribeRequests())-1]; last.From == nil || *last.From != 3 || last.Epoch != fresh {
		t.Fatalf("resume after the change: %+v, want from 3 under %s", last, fresh)
	}
}

// TestSubscribeWithEpoch: an epoch given with WithEpoch goes out with from;
// the server's refusal is Subscribe's error, and the right epoch resumes.
func TestSubscribeWithEpoch(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	for range 4 {
		f.Append("room:w")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := c.Subscribe(ctx, "room:w", From(2), "", nil, WithEpoch("stale"))
	if ErrorCode(err) != CodeEpochChanged {
		t.Fatalf("Subscribe under a stale epoch: %v, want an *Error with code %s", err, CodeEpochChanged)
	}
	var r recorder
	sub := subscribe(t, c, "room:w", From(2), &r, WithEpoch(f.Epoch()))
	waitUntil(t, "version 4", func() bool { return sub.Version() == 4 })
	if got := r.versions(); !slices.Equal(got, seq(3, 4)) {
		t.Fatalf("handler saw %v, want 3..4", got)
	}
	// Without WithEpochChange the change is not fatal: the handler sees
	// the new store from version 1.
	fresh := f.Wipe()
	f.Append("room:w")
	waitUntil(t, "the new store's version 1", func() bool {
		v := r.versions()
		return len(v) == 3 && sub.Epoch() == fresh
	})
	if got := r.versions(); !slices.Equal(got, []uint64{3, 4, 1}) {
		t.Fatalf("handler saw %v, want 3, 4, then 1", got)
	}
}
