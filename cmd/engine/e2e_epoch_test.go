package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/events"
)

// delivered is one thing a subscription handed the application: an event,
// or an epoch change when change is set.
type delivered struct {
	ev     events.Event
	change *client.EpochChange
}

func (d delivered) String() string {
	if d.change != nil {
		return fmt.Sprintf("epoch %s→%s after v%d", d.change.Old, d.change.New, d.change.LastVersion)
	}
	return fmt.Sprintf("v%d", d.ev.Version)
}

// TestE2EWipedStoreClientStartsOver: a Go client is subscribed to a stream
// with events; the engine stops, its data directory is removed and it
// starts again on the same address, with a new store. The client's resume
// from its old version is refused (epoch_changed), it is told the epoch
// changed, and it ends up with the new store's events from version 1 —
// never resuming the new store from its old version.
func TestE2EWipedStoreClientStartsOver(t *testing.T) {
	dir := t.TempDir()
	e1 := startEngine(t, dir)
	addr := e1.addr
	epoch1 := e1.m.Store().Epoch()

	states := newCollector[client.StateChange]()
	c := e1.dialClient(t, client.Options{
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond,
		OnState:      states.add,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eTimeout)
	defer cancel()
	got := newCollector[delivered]()
	sub, err := c.Subscribe(ctx, "room:lobby", client.From(0), "",
		func(ev events.Event) { got.add(delivered{ev: ev}) },
		client.WithEpochChange(func(ch client.EpochChange) { got.add(delivered{change: &ch}) }))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Epoch() != epoch1 {
		t.Fatalf("subscribed under epoch %q, the store's is %q", sub.Epoch(), epoch1)
	}
	for i := 1; i <= 5; i++ {
		e1.command("room:lobby", "PostMessage", map[string]string{"user": "ann", "text": fmt.Sprint("old ", i)})
	}
	got.waitFor(t, "the first store's versions 1-5", func(d []delivered) bool { return len(d) >= 5 })
	if ep := epochOf(t, e1.do("GET", "/streams/room:lobby", nil, nil)); ep != epoch1 {
		t.Fatalf("GET /streams/room:lobby epoch %q, want %q", ep, epoch1)
	}

	// Stop, wipe the data directory, start again on the same address.
	if err := e1.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	states.waitFor(t, "the client to notice the stop", func(s []client.StateChange) bool {
		return slices.ContainsFunc(s, func(c client.StateChange) bool { return c.State == client.StateDisconnected })
	})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	e2 := reopen(t, dir, addr)
	epoch2 := e2.m.Store().Epoch()
	if epoch2 == epoch1 {
		t.Fatalf("the wiped store kept the epoch %q", epoch1)
	}
	for i := 1; i <= 3; i++ {
		e2.command("room:lobby", "PostMessage", map[string]string{"user": "bob", "text": fmt.Sprint("new ", i)})
	}

	all := got.waitFor(t, "the epoch change and the new store's versions 1-3", func(d []delivered) bool { return len(d) >= 5+1+3 })
	var order []string
	for _, d := range all {
		order = append(order, d.String())
	}
	want := []string{"v1", "v2", "v3", "v4", "v5", fmt.Sprintf("epoch %s→%s after v5", epoch1, epoch2), "v1", "v2", "v3"}
	if !slices.Equal(order, want) {
		t.Fatalf("the subscription delivered %v, want %v", order, want)
	}
	for i, d := range all[6:] {
		var m struct{ Text string }
		if err := json.Unmarshal(d.ev.Data, &m); err != nil || m.Text != fmt.Sprint("new ", i+1) {
			t.Fatalf("after the change, event %d is %s (%v), want the new store's %q", i+1, d.ev.Data, err, fmt.Sprint("new ", i+1))
		}
	}
	if sub.Epoch() != epoch2 || sub.Version() != 3 || sub.Err() != nil {
		t.Fatalf("subscription after the change: epoch %q version %d err %v; want %q, 3, nil", sub.Epoch(), sub.Version(), sub.Err(), epoch2)
	}

	// The new store answers with its epoch, and refuses resumes under the
	// old one over HTTP and on a raw /ws connection alike.
	if ep := epochOf(t, e2.do("GET", "/streams/room:lobby", nil, nil)); ep != epoch2 {
		t.Fatalf("GET /streams/room:lobby epoch %q, want %q", ep, epoch2)
	}
	if ep := epochOf(t, e2.do("GET", "/streams/room:lobby/events?from=1&epoch="+epoch2, nil, nil)); ep != epoch2 {
		t.Fatalf("events page epoch %q, want %q", ep, epoch2)
	}
	expectProblem(t, e2.do("GET", "/streams/room:lobby/events?from=5&epoch="+epoch1, nil, nil), http.StatusConflict, "epoch_changed")
	raw := e2.dialRaw(t, "/ws", nil)
	raw.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:lobby", "from": 5, "epoch": epoch1, "ref": "old"})
	if f := raw.nextReply(t); f.Op != "error" || f.Code != "epoch_changed" || refString(f.Ref) != "old" {
		t.Fatalf("raw resume under the old epoch: %+v, want error epoch_changed", f)
	}
}

// epochOf reads the "epoch" member of a 200 JSON reply.
func epochOf(t *testing.T, r reply) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("reply %s, want 200", r)
	}
	var m struct{ Epoch string }
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("reply %s: %v", r.body, err)
	}
	return m.Epoch
}
