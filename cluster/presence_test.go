package cluster

import (
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestPresenceBookUnionsNodesAndForgetsTheDead(t *testing.T) {
	b := newPresenceBook()
	h1, h2 := actor.NewPID("n1:1", "engine-hub"), actor.NewPID("n2:1", "engine-hub")

	union, hubs := b.set("room:a", "n1:1", h1, []string{"ann", "bob"})
	if !slices.Equal(union, []string{"ann", "bob"}) || len(hubs) != 1 {
		t.Fatalf("first report: %v to %d hubs", union, len(hubs))
	}
	union, hubs = b.set("room:a", "n2:1", h2, []string{"bob", "cy"})
	if !slices.Equal(union, []string{"ann", "bob", "cy"}) || len(hubs) != 2 {
		t.Fatalf("second node: %v to %d hubs", union, len(hubs))
	}
	if got := b.union("room:a"); !slices.Equal(got, []string{"ann", "bob", "cy"}) {
		t.Fatalf("union %v", got)
	}

	// A node that empties its room still hears the result.
	union, hubs = b.set("room:a", "n1:1", h1, nil)
	if !slices.Equal(union, []string{"bob", "cy"}) || len(hubs) != 2 {
		t.Fatalf("after n1 left the room: %v to %d hubs", union, len(hubs))
	}

	// A node that leaves the cluster is dropped; the others are told.
	b.set("room:a", "n1:1", h1, []string{"ann"})
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
	b.drop("room:a")
	if got := b.union("room:a"); len(got) != 0 {
		t.Fatalf("a dropped room has members %v", got)
	}
}
