package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// TestSubscribePipelineWhileReading: a client that sends thousands of
// subscribes at once and reads its replies as they come is paced by the
// server (which stops reading while its replies wait), not closed as a
// slow consumer. Small socket buffers on both sides make the client's
// reading, not the kernel, what the replies wait for.
func TestSubscribePipelineWhileReading(t *testing.T) {
	const n = 3000
	h := transporttest.NewLn(t, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} },
		func(c *transport.Config) { c.MaxSubscriptions = n + 1 })
	c := h.Dial(t, "/ws", smallBuffers())
	type result struct {
		subscribed int
		err        error
	}
	done := make(chan result, 1)
	go func() {
		got := 0
		for got < n {
			_, b, err := c.Read()
			if err != nil {
				done <- result{got, err}
				return
			}
			var f struct {
				Op  string `json:"op"`
				Ref string `json:"ref"`
			}
			if err := json.Unmarshal(b, &f); err != nil {
				done <- result{got, err}
				return
			}
			switch f.Op {
			case "subscribed":
				if f.Ref != fmt.Sprint(got) {
					done <- result{got, fmt.Errorf("subscribed %s, want ref %d", f.Ref, got)}
					return
				}
				got++
			case "presence":
			default:
				done <- result{got, fmt.Errorf("unexpected %s", b)}
				return
			}
		}
		done <- result{got, nil}
	}()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	for i := range n {
		f := fmt.Sprintf(`{"op":"subscribe","stream":"room:p%d","user":"ann","ref":"%d"}`, i, i)
		if err := c.C.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	r := <-done
	t.Logf("%d subscribes pipelined: all subscribed after %v", n, time.Since(start))
	if r.err != nil || r.subscribed != n {
		t.Fatalf("%d subscribed: %v", r.subscribed, r.err)
	}
	if h.Metric("engine_slow_consumer_closes_total") != 0 {
		t.Fatal("closed as a slow consumer")
	}
	c.Send(`{"op":"ping","ref":"alive"}`)
	c.FrameOp("pong", "presence")
}

// TestFloodingClientReadsItsClose: a client subscribed to a busy room that
// sends continuously and does not read is closed as a slow consumer; from
// then on the server discards what it sends (nothing more is run) and
// keeps reading until it has closed, so the client, once it stops and
// reads, finds the close code 1008 rather than a reset.
func TestFloodingClientReadsItsClose(t *testing.T) {
	const inflight = 4
	h := transporttest.NewLn(t, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} }, func(c *transport.Config) {
		c.SendQueueFrames = 16
		c.MaxInflight = inflight
		c.CloseLingerBytes = 64 << 20 // the flood below goes at loopback speed
	})
	flooder := h.Dial(t, "/ws", smallBuffers())
	flooder.Send(`{"op":"subscribe","stream":"room:busy","ref":"s"}`)
	flooder.FrameOp("subscribed")

	// Someone else keeps the room busy.
	stopPosting := make(chan struct{})
	posted := make(chan error, 1)
	go func() {
		text := strings.Repeat("x", 4000)
		for {
			select {
			case <-stopPosting:
				posted <- nil
				return
			default:
			}
			if r := h.Do("POST", "/streams/room:busy/commands", transporttest.PostMessage("bob", text)); r.Status != 200 {
				posted <- fmt.Errorf("post: %d %s", r.Status, r.Body)
				return
			}
		}
	}()
	// The flooder sends commands of its own, never reading.
	var sent atomic.Int64
	stopFlood := make(chan struct{})
	flooded := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
		defer cancel()
		for i := 0; ; i++ {
			select {
			case <-stopFlood:
				flooded <- nil
				return
			default:
			}
			f := fmt.Sprintf(`{"op":"command","stream":"game:flood","type":"UpdateScore","data":{"team":"home","score":%d}}`, i)
			if err := flooder.C.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
				flooded <- err
				return
			}
			sent.Add(1)
		}
	}()
	version := func() int {
		evs, err := h.Store.ReadStream(context.Background(), "game:flood", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	transporttest.Eventually(t, "the slow consumer close", func() bool { return h.Metric("engine_slow_consumer_closes_total") == 1 })
	close(stopPosting)
	atClose, sentAtClose := version(), sent.Load()
	// The flood goes on for a while after the server gave up on it.
	time.Sleep(300 * time.Millisecond)
	close(stopFlood)
	if err := <-flooded; err != nil {
		t.Fatalf("the flood was refused before it stopped: %v", err)
	}
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	// Now it reads: what was written before the close, then the close.
	code, reason := flooder.CloseStatus()
	t.Logf("sent %d commands, %d after the close; %d ran before it, %d in all", sent.Load(), sent.Load()-sentAtClose, atClose, version())
	if code != websocket.StatusPolicyViolation || reason != "slow consumer" {
		t.Fatalf("close %v %q, want 1008 slow consumer", code, reason)
	}
	// Nothing sent after the overflow ran, except what was in flight.
	if v := version(); v > atClose+inflight+1 {
		t.Fatalf("%d commands ran after the close (at most %d were in flight)", v-atClose, inflight+1)
	}
	transporttest.Eventually(t, "the connection to be gone", func() bool { return h.Metric("engine_connections") == 0 })
}
