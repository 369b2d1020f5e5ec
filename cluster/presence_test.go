package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestPresenceBookUnionsNodesAndForgetsTheDead(t *testing.T) {
	b := newPresenceBook()
	now := time.Now()
	h1, h2 := actor.NewPID("n1:1", "engine-hub"), actor.NewPID("n2:1", "engine-hub")

	union, hubs := b.set("room:a", "n1:1", h1, []string{"ann", "bob"}, true, now)
	if !slices.Equal(union, []string{"ann", "bob"}) || len(hubs) != 1 {
		t.Fatalf("first report: %v to %d hubs", union, len(hubs))
	}
	union, hubs = b.set("room:a", "n2:1", h2, []string{"bob", "cy"}, true, now)
	if !slices.Equal(union, []string{"ann", "bob", "cy"}) || len(hubs) != 2 {
		t.Fatalf("second node: %v to %d hubs", union, len(hubs))
	}
	if got := b.union("room:a"); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("union %v", got)
	}

	// A node that empties its room still hears the result.
	union, hubs = b.set("room:a", "n1:1", h1, nil, false, now)
	if !slices.Equal(union, []string{"bob", "cy"}) || len(hubs) != 2 {
		t.Fatalf("after n1 left the room: %v to %d hubs", union, len(hubs))
	}

	// A node that leaves the cluster is dropped; the others are told.
	b.set("room:a", "n1:1", h1, []string{"ann"}, true, now)
	var pushed []string
	b.forget(map[string]bool{"n1:1": true}, func(stream string, u []string, hubs []*actor.PID) {
		pushed = append(pushed, stream)
		if !slices.Equal(u, []string{"ann"}) || len(hubs) != 1 || hubs[0] != h1 {
			t.Errorf("push after n2 died: %v to %v", u, hubs)
		}
	})
	if !slices.Equal(pushed, []string{"room:a"}) {
		t.Fatalf("pushed %v", pushed)
	}
	// A watcher without members stays in the book until its report
	// expires.
	b.set("room:a", "n2:1", h2, nil, true, now.Add(-time.Minute))
	if _, hubs := b.set("room:a", "n1:1", h1, []string{"ann"}, true, now); len(hubs) != 2 {
		t.Fatalf("a watching node is not told: %d hubs", len(hubs))
	}
	pushed = nil
	b.expire(now.Add(-time.Second), func(stream string, u []string, hubs []*actor.PID) {
		pushed = append(pushed, stream)
		if len(hubs) != 1 || hubs[0] != h1 {
			t.Errorf("push after expiry to %v", hubs)
		}
	})
	if len(pushed) != 0 {
		t.Fatalf("an expired watcher without members changed the union: %v", pushed)
	}
	if _, hubs := b.set("room:a", "n1:1", h1, []string{"ann"}, true, now); len(hubs) != 1 {
		t.Fatalf("an expired watcher is still told: %d hubs", len(hubs))
	}
	b.drop("room:a")
	if got := b.union("room:a"); len(got) != 0 {
		t.Fatalf("a dropped room has members %v", got)
	}
}
