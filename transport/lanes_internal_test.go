package transport

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
)

// handAPI records the commands handed to it and answers them when the
// test says.
type handAPI struct {
	actors.API
	mu     sync.Mutex
	handed []string
	done   map[string]func(actors.Result, error)
}

func (a *handAPI) ExecuteFunc(_ context.Context, cmd decider.Command, _ events.ExpectedVersion, _ time.Time, done func(actors.Result, error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handed = append(a.handed, cmd.ID)
	a.done[cmd.ID] = done
}

func (a *handAPI) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.handed...)
}

func (a *handAPI) answer(id string, v uint64) {
	a.mu.Lock()
	done := a.done[id]
	a.mu.Unlock()
	done(actors.Result{Version: v}, nil)
}

// Commands on an API with ExecuteFunc are handed over at once, in order;
// a function on the same lane waits for the commands before it, and the
// commands after it wait for it.
func TestLanePipelinesAroundFunctions(t *testing.T) {
	api := &handAPI{done: make(map[string]func(actors.Result, error))}
	store := memstore.New()
	defer store.Close()
	reg := prometheus.NewRegistry()
	s, err := New(Config{API: api, Log: store, Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	c := &Conn{s: s, ep: &Endpoint{Path: "/ws", Frame: engineFrame, Render: renderEvent}, req: &Upgrade{}, ctx: ctx, cancel: cancel,
		lanes: make(map[string]*lane), slots: make(chan struct{}, s.cfg.MaxInflight), subs: make(map[string]*wsSub)}
	c.q = newSendQueue(s.cfg.SendQueueFrames, s.cfg.SendQueueBytes, func() {})
	c.auth.p.Store(&principal{anonymous: true})

	// As the reader does: queue the command, then drive the lane it took
	// once the frame's handling has returned (engineFrame).
	cmd := func(stream, id string) {
		c.submitCommand(decider.Command{Stream: stream, Type: "PostMessage", ID: id}, nil)
		c.driveStarted()
	}
	ran := make(chan []string, 1)
	cmd("room:a", "1")
	cmd("room:a", "2")
	c.submit("room:a", func() { ran <- api.seen() })
	cmd("room:a", "3")
	cmd("room:a", "4")
	cmd("room:b", "b")
	if got := api.seen(); len(got) != 3 || got[0] != "1" || got[1] != "2" || got[2] != "b" {
		t.Fatalf("handed over %v, want 1 2 b", got)
	}
	api.answer("1", 1)
	select {
	case <-ran:
		t.Fatal("the function ran before command 2 was answered")
	case <-time.After(20 * time.Millisecond):
	}
	api.answer("2", 2)
	select {
	case got := <-ran:
		if len(got) != 3 {
			t.Fatalf("when the function ran, handed over %v, want 1 2 b", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the function did not run")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(api.seen()) < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := api.seen(); len(got) != 5 || got[3] != "3" || got[4] != "4" {
		t.Fatalf("handed over %v, want 1 2 b 3 4", got)
	}
	api.answer("3", 3)
	api.answer("4", 4)
	api.answer("b", 1)
	if err := c.waitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lanes) != 0 {
		t.Fatalf("lanes left: %v", c.lanes)
	}
}
