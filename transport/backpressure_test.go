package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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
