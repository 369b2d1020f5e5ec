package transport_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// lateAPI is an API whose ExecuteFunc keeps the commands of type "Late"
// unanswered until release: the transport's own deadline must answer
// them.
type lateAPI struct {
	actors.API
	mu      sync.Mutex
	pending []func()
	started chan string
}

func (a *lateAPI) ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(actors.Result, error)) {
	if cmd.Type != "Late" {
		a.API.(interface {
			ExecuteFunc(context.Context, decider.Command, events.ExpectedVersion, time.Time, func(actors.Result, error))
		}).ExecuteFunc(ctx, cmd, expected, deadline, done)
		return
	}
	a.mu.Lock()
	a.pending = append(a.pending, func() { done(actors.Result{Stream: cmd.Stream, Version: 99}, nil) })
	a.mu.Unlock()
	a.started <- cmd.Stream
}

func (a *lateAPI) release() {
	a.mu.Lock()
	p := a.pending
	a.pending = nil
	a.mu.Unlock()
	for _, f := range p {
		f()
	}
}

// A /ws command the runtime does not answer within CommandTimeout gets
// 503 unavailable from the connection's deadline timer, and the late
// answer is dropped. (The stream's next command, handed over without
// waiting, is answered meanwhile.)
func TestWSCommandDeadline(t *testing.T) {
	api := &lateAPI{started: make(chan string, 16)}
	h := transporttest.New(t, func(c *transport.Config) {
		c.CommandTimeout = 100 * time.Millisecond
		api.API = c.API
		c.API = api
	})
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"command","stream":"room:a","type":"Late","ref":"1"}`)
	c.Send(`{"op":"command","stream":"room:a","type":"PostMessage","data":{"user":"ann","text":"hi"},"ref":"2"}`)
	<-api.started
	start := time.Now()
	var late, acked bool
	for range 2 {
		switch m := c.Frame(); {
		case m["op"] == "error" && m["code"] == "unavailable" && m["ref"] == "1" && strings.Contains(m["message"].(string), "in time") && !late:
			late = true
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the deadline answered after %v", d)
			}
		case m["op"] == "ack" && m["ref"] == "2" && m["version"] == float64(1) && !acked:
			acked = true
		default:
			t.Fatalf("reply %v, want unavailable for ref 1 and the ack of ref 2 at version 1", m)
		}
	}
	api.release()
	c.Send(`{"op":"ping","ref":"p"}`)
	if m := c.Frame(); m["op"] != "pong" {
		t.Fatalf("after the late answer: %v, want only the pong", m)
	}
}

// A connection that ends with commands the runtime has not answered
// closes at once: its handler does not wait for the runtime.
func TestWSCommandsEndWithConnection(t *testing.T) {
	api := &lateAPI{started: make(chan string, 16)}
	h := transporttest.New(t, func(c *transport.Config) {
		api.API = c.API
		c.API = api
	})
	c := h.Dial(t, "/ws")
	for _, s := range []string{"room:a", "room:b", "room:a"} {
		c.Send(`{"op":"command","stream":"` + s + `","type":"Late"}`)
	}
	for range 3 { // handed over at once, room:a's second without waiting
		<-api.started
	}
	c.C.CloseNow()
	transporttest.Eventually(t, "the connection to end", func() bool { return transport.WebSocketPlaces(h.Srv) == 0 })
	api.release()
	select {
	case s := <-api.started:
		t.Fatalf("a command on %s started after the connection ended", s)
	case <-time.After(50 * time.Millisecond):
	}
}

// plainAPI hides ExecuteFunc: commands then run on lane goroutines that
// wait for Execute (an API such as the cluster's).
type plainAPI struct{ actors.API }

// Over an API without ExecuteFunc, /ws commands keep their order per
// stream, and the deadline still answers a command its actor holds.
func TestWSCommandsWithoutExecuteFunc(t *testing.T) {
	var fault *transporttest.FaultAPI
	h := transporttest.New(t, func(c *transport.Config) {
		c.CommandTimeout = 200 * time.Millisecond
		fault = c.API.(*transporttest.FaultAPI)
		c.API = plainAPI{c.API}
	})
	c := h.Dial(t, "/ws")
	for i := range 3 {
		c.Send(`{"op":"command","stream":"room:a","type":"PostMessage","data":{"user":"ann","text":"hi"},"ref":"` + string(rune('1'+i)) + `"}`)
	}
	c.Send(`{"op":"command","stream":"room:a","type":"Nope","ref":"4"}`)
	for i := range 3 {
		if m := c.Frame(); m["op"] != "ack" || m["ref"] != string(rune('1'+i)) || m["version"] != float64(i+1) {
			t.Fatalf("reply %d: %v", i, m)
		}
	}
	if m := c.Frame(); m["op"] != "error" || m["code"] != "bad_request" || m["ref"] != "4" {
		t.Fatalf("reply to an unknown command: %v", m)
	}
	hold := fault.HoldType("PostMessage")
	defer hold.Open()
	c.Send(`{"op":"command","stream":"room:b","type":"PostMessage","data":{"user":"ann","text":"hi"},"ref":"5"}`)
	if m := c.Frame(); m["op"] != "error" || m["code"] != "unavailable" || m["ref"] != "5" {
		t.Fatalf("reply to a held command: %v", m)
	}
}

// pipeAPI counts the commands handed to the runtime and not yet answered,
// and holds the first answer until several wait behind it.
type pipeAPI struct {
	actors.API
	mu          sync.Mutex
	outstanding int
	most        int
	first       bool
}

func (a *pipeAPI) ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(actors.Result, error)) {
	a.mu.Lock()
	a.outstanding++
	a.most = max(a.most, a.outstanding)
	hold := !a.first
	a.first = true
	a.mu.Unlock()
	a.API.(interface {
		ExecuteFunc(context.Context, decider.Command, events.ExpectedVersion, time.Time, func(actors.Result, error))
	}).ExecuteFunc(ctx, cmd, expected, deadline, func(res actors.Result, err error) {
		for end := time.Now().Add(2 * time.Second); hold && time.Now().Before(end); time.Sleep(time.Millisecond) {
			a.mu.Lock()
			n := a.outstanding
			a.mu.Unlock()
			if n >= 8 {
				break
			}
		}
		a.mu.Lock()
		a.outstanding--
		a.mu.Unlock()
		done(res, err)
	})
}

// Many commands to one stream from one connection are handed to the
// runtime without waiting for each other's outcome, and are acked in the
// order sent, at versions one after the other.
func TestWSCommandsPipelined(t *testing.T) {
	api := &pipeAPI{}
	h := transporttest.New(t, func(c *transport.Config) {
		api.API = c.API
		c.API = api
	})
	c := h.Dial(t, "/ws")
	const n = 300
	go func() {
		for i := range n {
			c.Send(`{"op":"command","stream":"room:a","type":"PostMessage","data":{"user":"ann","text":"hi"},"ref":"` + strconv.Itoa(i) + `"}`)
		}
	}()
	for i := range n {
		if m := c.Frame(); m["op"] != "ack" || m["ref"] != strconv.Itoa(i) || m["version"] != float64(i+1) {
			t.Fatalf("reply %d: %v, want the ack of ref %d at version %d", i, m, i, i+1)
		}
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.most < 8 {
		t.Fatalf("at most %d commands were handed over at once, want 8 or more", api.most)
	}
}
