package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/pgstore"
	"github.com/b6368a97/engine/events/pgstore/pgtest"
)

// TestTwoNodesRacingOnOneStream: two runtimes, each with its own
// connection pool to one PostgreSQL schema, both activate the same stream
// and take commands for it at once, as two cluster nodes do while
// ownership moves (or while one is a stale owner). No version is stored
// twice, every acknowledged command is stored exactly once, and each
// runtime's answers stay true to the store.
func TestTwoNodesRacingOnOneStream(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nodes [2]*Runtime
	var stores [2]*pgstore.Store
	for i := range nodes {
		s, err := pgstore.Open(ctx, pgstore.Config{URL: url, Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
		nodes[i] = rtStart(t, rtConfig(s))
	}
	const writers, perWriter = 8, 25
	type ack struct {
		id      string
		version uint64
	}
	acks := make(chan ack, writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := nodes[w%2]
			for n := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, n)
				cmd := decider.Command{Stream: "room:race", Type: "Post", Data: []byte(`{"id":"` + id + `"}`), ID: id}
				for {
					res, err := r.Execute(ctx, cmd, events.AnyVersion)
					if err == nil {
						acks <- ack{id, res.Version}
						break
					}
					// Losing the race twice in a row is reported; the
					// caller retries with the same id.
					if !errors.Is(err, events.ErrWrongExpectedVersion) {
						t.Errorf("command %s: %v", id, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(acks)
	byVersion := map[uint64]string{}
	for a := range acks {
		if other, ok := byVersion[a.version]; ok {
			t.Fatalf("commands %s and %s were both acknowledged at version %d", other, a.id, a.version)
		}
		byVersion[a.version] = a.id
	}
	stored, err := stores[0].ReadStream(ctx, "room:race", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != writers*perWriter || len(byVersion) != len(stored) {
		t.Fatalf("%d events stored, %d acknowledged, want %d each", len(stored), len(byVersion), writers*perWriter)
	}
	for i, e := range stored {
		want := fmt.Sprintf(`{"id":"%s"}`, byVersion[e.Version])
		if e.Version != uint64(i+1) || string(e.Data) != want {
			t.Fatalf("event %d: version %d data %s, want version %d data %s", i, e.Version, e.Data, i+1, want)
		}
	}
}
