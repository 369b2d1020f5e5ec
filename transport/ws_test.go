package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
	"github.com/coder/websocket"
)

func TestEngineProtocol(t *testing.T) {
	h := transporttest.New(t)
	for i := range 3 {
		h.Do("POST", "/streams/room:r1/commands", transporttest.PostMessage("ann", fmt.Sprint("m", i+1)))
	}
	c := h.Dial(t, "/ws")

	t.Run("ping", func(t *testing.T) {
		c := c.On(t)
		c.Send(`{"op":"ping","ref":"p1"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"pong","ref":"p1"}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(`{"op":"ping"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"pong"}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(`{"op":"ping","ref":""}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"pong","ref":""}`) {
			t.Fatalf("got %v", f)
		}
	})

	t.Run("subscribe with from catches up then goes live", func(t *testing.T) {
		c := c.On(t)
		c.Send(`{"op":"subscribe","stream":"room:r1","from":1,"ref":"s1"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"subscribed","stream":"room:r1","version":3,"epoch":"`+h.Store.Epoch()+`","ref":"s1"}`) {
			t.Fatalf("got %v", f)
		}
		for _, v := range []float64{2, 3} {
			f := c.NonPresence()
			if f["op"] != "event" || f["stream"] != "room:r1" || f["version"] != v || f["type"] != "MessagePosted" ||
				!transporttest.JSONEq(t, f["data"], fmt.Sprintf(`{"user":"ann","text":"m%d"}`, int(v))) || f["id"] == nil || f["position"] == nil || len(f["time"].(string)) != len("2026-11-25T16:37:55.123Z") {
				t.Fatalf("got %v, want event %v", f, v)
			}
			if _, ok := f["ref"]; ok {
				t.Fatalf("event frame with a ref: %v", f)
			}
		}
		c.Send(`{"op":"command","stream":"room:r1","type":"PostMessage","data":{"user":"ann","text":"m4"},"ref":"c1"}`)
		var ack, ev map[string]any
		for ack == nil || ev == nil {
			f := c.NonPresence()
			switch f["op"] {
			case "ack":
				ack = f
			case "event":
				ev = f
			default:
				t.Fatalf("unexpected %v", f)
			}
		}
		if !transporttest.JSONEq(t, ack, `{"op":"ack","stream":"room:r1","version":4,"ref":"c1"}`) || ev["version"] != float64(4) {
			t.Fatalf("ack %v, event %v", ack, ev)
		}
	})

	t.Run("command without ref and idempotent id", func(t *testing.T) {
		c := c.On(t)
		cmd := `{"op":"command","stream":"game:w","type":"UpdateScore","data":{"team":"home","score":1},"id":"same"}`
		c.Send(cmd)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"ack","stream":"game:w","version":1}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(cmd)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"ack","stream":"game:w","version":1}`) {
			t.Fatalf("repeat: got %v", f)
		}
	})

	t.Run("unsubscribe", func(t *testing.T) {
		c := c.On(t)
		c.Send(`{"op":"unsubscribe","stream":"room:r1","ref":"u1"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"unsubscribed","stream":"room:r1","ref":"u1"}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(`{"op":"command","stream":"room:r1","type":"PostMessage","data":{"user":"ann","text":"unseen"},"ref":"c2"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"ack","stream":"room:r1","version":5,"ref":"c2"}`) {
			t.Fatalf("got %v", f)
		}
		// Subscribed elsewhere, the next frames are that stream's only.
		c.Send(`{"op":"subscribe","stream":"room:r2","ref":"s2"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"subscribed","stream":"room:r2","version":0,"epoch":"`+h.Store.Epoch()+`","ref":"s2"}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(`{"op":"command","stream":"room:r2","type":"PostMessage","data":{"user":"ann","text":"first"}}`)
		for range 2 {
			f := c.NonPresence()
			if f["stream"] != "room:r2" {
				t.Fatalf("got %v after unsubscribing room:r1", f)
			}
		}
		// Unsubscribing a stream one is not subscribed to is fine.
		c.Send(`{"op":"unsubscribe","stream":"room:never"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"unsubscribed","stream":"room:never"}`) {
			t.Fatalf("got %v", f)
		}
	})

	t.Run("presence", func(t *testing.T) {
		c := c.On(t)
		c.Send(`{"op":"subscribe","stream":"room:p","user":"ann","ref":"s3"}`)
		c.FrameOp("subscribed")
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"presence","stream":"room:p","members":["ann"]}`) {
			t.Fatalf("got %v", f)
		}
		d := h.Dial(t, "/ws")
		d.Send(`{"op":"subscribe","stream":"room:p","user":"bob"}`)
		d.FrameOp("subscribed")
		if f := d.Frame(); !transporttest.JSONEq(t, f, `{"op":"presence","stream":"room:p","members":["ann","bob"]}`) {
			t.Fatalf("bob got %v", f)
		}
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"presence","stream":"room:p","members":["ann","bob"]}`) {
			t.Fatalf("ann got %v", f)
		}
		d.Send(`{"op":"unsubscribe","stream":"room:p"}`)
		d.FrameOp("unsubscribed")
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"presence","stream":"room:p","members":["ann"]}`) {
			t.Fatalf("ann got %v", f)
		}
	})

	t.Run("errors keep the connection open", func(t *testing.T) {
		c := c.On(t)
		other := h.Dial(t, "/ws")
		other.Send(`{"op":"subscribe","stream":"game:watch"}`)
		other.FrameOp("subscribed")
		long := strings.Repeat("r", 65)
		for _, e := range []struct {
			name, frame, ref, code string
			message                string // exact, what the client reads
		}{
			{"malformed JSON", `{"op":`, "", "bad_request", "malformed JSON: unexpected EOF"},
			{"not an object", `[1,2]`, "", "bad_request", "malformed frame: a JSON array is not allowed here"},
			{"ref not a string", `{"op":"ping","ref":7}`, "", "bad_request", "ref must be a string"},
			{"ref too long", `{"op":"ping","ref":"` + long + `"}`, "", "bad_request", "ref longer than 64 characters"},
			{"unknown op", `{"op":"dance","ref":"e1"}`, "e1", "bad_request", `unknown op "dance"`},
			{"missing op", `{"ref":"e2"}`, "e2", "bad_request", "op is required"},
			{"unknown field", `{"op":"ping","ref":"e3","color":"red"}`, "e3", "bad_request", `malformed frame: unknown field "color"`},
			{"bad from", `{"op":"subscribe","stream":"room:x","from":-1,"ref":"e4"}`, "e4", "bad_request", `malformed frame: field "from": a JSON number -1 is not allowed here`},
			{"unknown stream kind", `{"op":"subscribe","stream":"planet:x","ref":"e5"}`, "e5", "bad_request", `unknown stream kind "planet"`},
			{"bad stream id", `{"op":"subscribe","stream":"room:a b","ref":"e6"}`, "e6", "bad_request", `stream id "room:a b": the id may hold only A-Z a-z 0-9 _ . -`},
			{"missing stream", `{"op":"command","type":"PostMessage","ref":"e7"}`, "e7", "bad_request", "stream is required"},
			{"failed validation", `{"op":"command","stream":"room:x","type":"PostMessage","data":{"user":"ann","text":""},"ref":"e8"}`, "e8", "bad_request", "text must be 1-4096 characters, got 0"},
			{"unknown command", `{"op":"command","stream":"room:x","type":"Dance","ref":"e9"}`, "e9", "bad_request", `room streams have no command "Dance"`},
			{"data not an object", `{"op":"command","stream":"room:x","type":"PostMessage","data":"hi","ref":"e10"}`, "e10", "bad_request", "data must be a JSON object"},
			{"conflict", `{"op":"command","stream":"game:w","type":"EndGame","ref":"e11"}`, "", "", ""},
			{"conflict again", `{"op":"command","stream":"game:w","type":"EndGame","ref":"e12"}`, "e12", "conflict", "the game has ended already"},
		} {
			t.Run(e.name, func(t *testing.T) {
				c := c.On(t)
				c.Send(e.frame)
				f := c.Frame()
				if e.code == "" {
					if f["op"] != "ack" {
						t.Fatalf("got %v, want ack", f)
					}
					return
				}
				ref, hasRef := f["ref"]
				if f["op"] != "error" || f["code"] != e.code || f["message"] != e.message || hasRef != (e.ref != "") || (hasRef && ref != e.ref) {
					t.Fatalf("got %v, want error %s with ref %q", f, e.code, e.ref)
				}
			})
		}
		c.Send(`{"op":"ping","ref":"` + strings.Repeat("r", 64) + `"}`)
		if f := c.Frame(); f["op"] != "pong" || f["ref"] != strings.Repeat("r", 64) {
			t.Fatalf("64-character ref: got %v", f)
		}
		if err := c.C.Write(context.Background(), websocket.MessageBinary, []byte(`{"op":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if f := c.Frame(); f["op"] != "error" || f["code"] != "bad_request" {
			t.Fatalf("binary frame: got %v", f)
		}
		// The other client was served all along.
		h.Do("POST", "/streams/game:watch/commands", `{"type":"UpdateScore","data":{"team":"home","score":1}}`)
		if f := other.Frame(); f["op"] != "event" || f["stream"] != "game:watch" {
			t.Fatalf("other client got %v", f)
		}
	})
}

func TestCatchUpLongerThanQueue(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.SendQueueFrames = 8 })
	const n = 200
	for i := range n {
		if r := h.Do("POST", "/streams/room:long/commands", transporttest.PostMessage("ann", fmt.Sprint(i))); r.Status != 200 {
			t.Fatalf("command %d: %d", i, r.Status)
		}
	}
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"subscribe","stream":"room:long","from":0}`)
	if f := c.Frame(); f["op"] != "subscribed" || f["version"] != float64(n) {
		t.Fatalf("got %v", f)
	}
	// Live events appended during the catch-up come after it, once each.
	h.Do("POST", "/streams/room:long/commands", transporttest.PostMessage("ann", "live"))
	for v := 1; v <= n+1; v++ {
		if f := c.NonPresence(); f["op"] != "event" || f["version"] != float64(v) {
			t.Fatalf("frame %d: %v", v, f)
		}
	}
	if h.Metric("engine_slow_consumer_closes_total") != 0 {
		t.Fatal("a paced catch-up closed the connection")
	}
}

// A subscribe that replaces a catch-up in progress, and an unsubscribe:
// after the reply, nothing of the old subscription is written.
func TestResubscribeAndUnsubscribeDuringCatchUp(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.SendQueueFrames = 8 })
	const n = 200
	for i := range n {
		if r := h.Do("POST", "/streams/room:u/commands", transporttest.PostMessage("ann", fmt.Sprint(i))); r.Status != 200 {
			t.Fatalf("command %d: %d", i, r.Status)
		}
	}
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"subscribe","stream":"room:u","from":0}`)
	c.FrameOp("subscribed")
	next := 1
	// events reads frames up to the reply with op, checking that the events
	// before it continue in order.
	events := func(op string) map[string]any {
		t.Helper()
		for {
			f := c.NonPresence()
			if f["op"] == op {
				return f
			}
			if f["op"] != "event" || f["version"] != float64(next) {
				t.Fatalf("got %v, want event %d or %s", f, next, op)
			}
			next++
		}
	}
	for next <= 5 {
		if f := c.NonPresence(); f["op"] != "event" || f["version"] != float64(next) {
			t.Fatalf("got %v, want event %d", f, next)
		}
		next++
	}
	c.Send(`{"op":"subscribe","stream":"room:u","from":150,"ref":"again"}`)
	if f := events("subscribed"); f["ref"] != "again" || f["version"] != float64(n) {
		t.Fatalf("got %v", f)
	}
	for next = 151; next <= n; next++ {
		if f := c.NonPresence(); f["op"] != "event" || f["version"] != float64(next) {
			t.Fatalf("after the resubscribe: got %v, want event %d", f, next)
		}
	}

	c.Send(`{"op":"subscribe","stream":"room:u","from":0}`)
	c.FrameOp("subscribed", "presence")
	next = 1
	c.Send(`{"op":"unsubscribe","stream":"room:u","ref":"u"}`)
	events("unsubscribed")
	h.Do("POST", "/streams/room:u/commands", transporttest.PostMessage("ann", "after"))
	c.Send(`{"op":"ping","ref":"p"}`)
	if f := c.Frame(); f["op"] != "pong" {
		t.Fatalf("after unsubscribed: got %v", f)
	}
	if h.Metric("engine_slow_consumer_closes_total") != 0 {
		t.Fatal("a paced catch-up closed the connection")
	}
}

func TestReadLimit(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.ReadLimit = 1 << 10 })
	other := h.Dial(t, "/ws")
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"ping","data":"` + strings.Repeat("x", 2<<10) + `"}`)
	if code, _ := c.CloseStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close %v, want 1009", code)
	}
	other.Send(`{"op":"ping","ref":"still"}`)
	if f := other.Frame(); f["op"] != "pong" {
		t.Fatalf("other client got %v", f)
	}
}

func TestOrigins(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, h.WSBase+"/chat", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v %v", resp, err)
	}
	c := h.Dial(t, "/chat", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example"}}})
	c.Send("ok")
	if got := c.Text(); got != "You said: ok" {
		t.Fatalf("got %q", got)
	}
}
