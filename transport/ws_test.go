package transport

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestChatEcho(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "/chat")
	c.send("hello")
	if got := c.text(); got != "You said: hello" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	typ, b, err := c.read()
	if err != nil || typ != websocket.MessageBinary || string(b) != string([]byte{0, 1, 2, 255}) {
		t.Fatalf("binary echo: %v %v %v", typ, b, err)
	}
	if h.metric("engine_ws_frames_total", "direction", "in") < 2 || h.metric("engine_ws_frames_total", "direction", "out") < 2 {
		t.Fatal("frames not counted")
	}
	if h.metric("engine_connections") != 1 {
		t.Fatalf("engine_connections %v, want 1", h.metric("engine_connections"))
	}
}

func TestChatRoom(t *testing.T) {
	h := newHarness(t)
	ann := h.dial(t, "/chat-room?user=ann")
	// A client's own message proves its subscription is live: the server
	// subscribes before it reads the first frame.
	ann.send("hi, I am ann")
	if got := ann.text(); got != "ann: hi, I am ann" {
		t.Fatalf("ann got %q", got)
	}
	anon := h.dial(t, "/chat-room")
	anon.send("who am I")
	if got := anon.text(); got != "anonymous: who am I" {
		t.Fatalf("anonymous got %q", got)
	}
	if got := ann.text(); got != "anonymous: who am I" {
		t.Fatalf("ann got %q", got)
	}
	ann.send("welcome")
	for _, c := range []*wsClient{ann, anon} {
		if got := c.text(); got != "ann: welcome" {
			t.Fatalf("got %q", got)
		}
	}
	// A message the room refuses is reported to its sender only.
	anon.send("")
	if got := anon.text(); !strings.HasPrefix(got, "error: bad_request: ") {
		t.Fatalf("empty message: %q", got)
	}
	st := h.do("GET", "/streams/room:lobby", "").json(t)
	if len(st["messages"].([]any)) != 3 || !jsonEq(t, st["members"], `["ann","anonymous"]`) {
		t.Fatalf("lobby state %v", st)
	}
}

func TestLiveScore(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/update-score?game=before&team=home&score=9", "") // before connecting: not sent
	c := h.dial(t, "/live-score")
	if r := h.do("POST", "/update-score?game=g7&team=home&score=2", ""); r.status != 200 {
		t.Fatalf("update-score: %d %s", r.status, r.body)
	}
	h.do("POST", "/streams/room:noise/commands", post("ann", "not a score"))
	if r := h.do("POST", "/streams/game:final/commands", `{"type":"UpdateScore","data":{"team":"away","score":5}}`); r.status != 200 {
		t.Fatalf("command: %d %s", r.status, r.body)
	}
	for _, want := range []string{`{"game":"g7","team":"home","score":2}`, `{"game":"final","team":"away","score":5}`} {
		if got := c.frame(); !jsonEq(t, got, want) {
			t.Fatalf("got %v, want %s", got, want)
		}
	}
}

func TestEngineProtocol(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		h.do("POST", "/streams/room:r1/commands", post("ann", fmt.Sprint("m", i+1)))
	}
	c := h.dial(t, "/ws")

	t.Run("ping", func(t *testing.T) {
		c := c.on(t)
		c.send(`{"op":"ping","ref":"p1"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"pong","ref":"p1"}`) {
			t.Fatalf("got %v", f)
		}
		c.send(`{"op":"ping"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"pong"}`) {
			t.Fatalf("got %v", f)
		}
		c.send(`{"op":"ping","ref":""}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"pong","ref":""}`) {
			t.Fatalf("got %v", f)
		}
	})

	t.Run("subscribe with from catches up then goes live", func(t *testing.T) {
		c := c.on(t)
		c.send(`{"op":"subscribe","stream":"room:r1","from":1,"ref":"s1"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"subscribed","stream":"room:r1","version":3,"epoch":"`+h.store.Epoch()+`","ref":"s1"}`) {
			t.Fatalf("got %v", f)
		}
		for _, v := range []float64{2, 3} {
			f := c.nonPresence()
			if f["op"] != "event" || f["stream"] != "room:r1" || f["version"] != v || f["type"] != "MessagePosted" ||
				!jsonEq(t, f["data"], fmt.Sprintf(`{"user":"ann","text":"m%d"}`, int(v))) || f["id"] == nil || f["position"] == nil || len(f["time"].(string)) != len("2026-11-25T16:37:55.123Z") {
				t.Fatalf("got %v, want event %v", f, v)
			}
			if _, ok := f["ref"]; ok {
				t.Fatalf("event frame with a ref: %v", f)
			}
		}
		c.send(`{"op":"command","stream":"room:r1","type":"PostMessage","data":{"user":"ann","text":"m4"},"ref":"c1"}`)
		var ack, ev map[string]any
		for ack == nil || ev == nil {
			f := c.nonPresence()
			switch f["op"] {
			case "ack":
				ack = f
			case "event":
				ev = f
			default:
				t.Fatalf("unexpected %v", f)
			}
		}
		if !jsonEq(t, ack, `{"op":"ack","stream":"room:r1","version":4,"ref":"c1"}`) || ev["version"] != float64(4) {
			t.Fatalf("ack %v, event %v", ack, ev)
		}
	})

	t.Run("command without ref and idempotent id", func(t *testing.T) {
		c := c.on(t)
		cmd := `{"op":"command","stream":"game:w","type":"UpdateScore","data":{"team":"home","score":1},"id":"same"}`
		c.send(cmd)
		if f := c.frame(); !jsonEq(t, f, `{"op":"ack","stream":"game:w","version":1}`) {
			t.Fatalf("got %v", f)
		}
		c.send(cmd)
		if f := c.frame(); !jsonEq(t, f, `{"op":"ack","stream":"game:w","version":1}`) {
			t.Fatalf("repeat: got %v", f)
		}
	})

	t.Run("unsubscribe", func(t *testing.T) {
		c := c.on(t)
		c.send(`{"op":"unsubscribe","stream":"room:r1","ref":"u1"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"unsubscribed","stream":"room:r1","ref":"u1"}`) {
			t.Fatalf("got %v", f)
		}
		c.send(`{"op":"command","stream":"room:r1","type":"PostMessage","data":{"user":"ann","text":"unseen"},"ref":"c2"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"ack","stream":"room:r1","version":5,"ref":"c2"}`) {
			t.Fatalf("got %v", f)
		}
		// Subscribed elsewhere, the next frames are that stream's only.
		c.send(`{"op":"subscribe","stream":"room:r2","ref":"s2"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"subscribed","stream":"room:r2","version":0,"epoch":"`+h.store.Epoch()+`","ref":"s2"}`) {
			t.Fatalf("got %v", f)
		}
		c.send(`{"op":"command","stream":"room:r2","type":"PostMessage","data":{"user":"ann","text":"first"}}`)
		for range 2 {
			f := c.nonPresence()
			if f["stream"] != "room:r2" {
				t.Fatalf("got %v after unsubscribing room:r1", f)
			}
		}
		// Unsubscribing a stream one is not subscribed to is fine.
		c.send(`{"op":"unsubscribe","stream":"room:never"}`)
		if f := c.frame(); !jsonEq(t, f, `{"op":"unsubscribed","stream":"room:never"}`) {
			t.Fatalf("got %v", f)
		}
	})

	t.Run("presence", func(t *testing.T) {
		c := c.on(t)
		c.send(`{"op":"subscribe","stream":"room:p","user":"ann","ref":"s3"}`)
		c.frameOp("subscribed")
		if f := c.frame(); !jsonEq(t, f, `{"op":"presence","stream":"room:p","members":["ann"]}`) {
			t.Fatalf("got %v", f)
		}
		d := h.dial(t, "/ws")
		d.send(`{"op":"subscribe","stream":"room:p","user":"bob"}`)
		d.frameOp("subscribed")
		if f := d.frame(); !jsonEq(t, f, `{"op":"presence","stream":"room:p","members":["ann","bob"]}`) {
			t.Fatalf("bob got %v", f)
		}
		if f := c.frame(); !jsonEq(t, f, `{"op":"presence","stream":"room:p","members":["ann","bob"]}`) {
			t.Fatalf("ann got %v", f)
		}
		d.send(`{"op":"unsubscribe","stream":"room:p"}`)
		d.frameOp("unsubscribed")
		if f := c.frame(); !jsonEq(t, f, `{"op":"presence","stream":"room:p","members":["ann"]}`) {
			t.Fatalf("ann got %v", f)
		}
	})

	t.Run("errors keep the connection open", func(t *testing.T) {
		c := c.on(t)
		other := h.dial(t, "/ws")
		other.send(`{"op":"subscribe","stream":"game:watch"}`)
		other.frameOp("subscribed")
		long := strings.Repeat("r", 65)
		for _, e := range []struct {
			name, frame, ref, code string
		}{
			{"malformed JSON", `{"op":`, "", "bad_request"},
			{"not an object", `[1,2]`, "", "bad_request"},
			{"ref not a string", `{"op":"ping","ref":7}`, "", "bad_request"},
			{"ref too long", `{"op":"ping","ref":"` + long + `"}`, "", "bad_request"},
			{"unknown op", `{"op":"dance","ref":"e1"}`, "e1", "bad_request"},
			{"missing op", `{"ref":"e2"}`, "e2", "bad_request"},
			{"unknown field", `{"op":"ping","ref":"e3","color":"red"}`, "e3", "bad_request"},
			{"bad from", `{"op":"subscribe","stream":"room:x","from":-1,"ref":"e4"}`, "e4", "bad_request"},
			{"unknown stream kind", `{"op":"subscribe","stream":"planet:x","ref":"e5"}`, "e5", "bad_request"},
			{"bad stream id", `{"op":"subscribe","stream":"room:a b","ref":"e6"}`, "e6", "bad_request"},
			{"missing stream", `{"op":"command","type":"PostMessage","ref":"e7"}`, "e7", "bad_request"},
			{"failed validation", `{"op":"command","stream":"room:x","type":"PostMessage","data":{"user":"ann","text":""},"ref":"e8"}`, "e8", "bad_request"},
			{"unknown command", `{"op":"command","stream":"room:x","type":"Dance","ref":"e9"}`, "e9", "bad_request"},
			{"data not an object", `{"op":"command","stream":"room:x","type":"PostMessage","data":"hi","ref":"e10"}`, "e10", "bad_request"},
			{"conflict", `{"op":"command","stream":"game:w","type":"EndGame","ref":"e11"}`, "", ""},
			{"conflict again", `{"op":"command","stream":"game:w","type":"EndGame","ref":"e12"}`, "e12", "conflict"},
		} {
			t.Run(e.name, func(t *testing.T) {
				c := c.on(t)
				c.send(e.frame)
				f := c.frame()
				if e.code == "" {
					if f["op"] != "ack" {
						t.Fatalf("got %v, want ack", f)
					}
					return
				}
				ref, hasRef := f["ref"]
				if f["op"] != "error" || f["code"] != e.code || f["message"] == "" || hasRef != (e.ref != "") || (hasRef && ref != e.ref) {
					t.Fatalf("got %v, want error %s with ref %q", f, e.code, e.ref)
				}
			})
		}
		c.send(`{"op":"ping","ref":"` + strings.Repeat("r", 64) + `"}`)
		if f := c.frame(); f["op"] != "pong" || f["ref"] != strings.Repeat("r", 64) {
			t.Fatalf("64-character ref: got %v", f)
		}
		if err := c.c.Write(context.Background(), websocket.MessageBinary, []byte(`{"op":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if f := c.frame(); f["op"] != "error" || f["code"] != "bad_request" {
			t.Fatalf("binary frame: got %v", f)
		}
		// The other client was served all along.
		h.do("POST", "/streams/game:watch/commands", `{"type":"UpdateScore","data":{"team":"home","score":1}}`)
		if f := other.frame(); f["op"] != "event" || f["stream"] != "game:watch" {
			t.Fatalf("other client got %v", f)
		}
	})
}

func TestCatchUpLongerThanQueue(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SendQueueFrames = 8 })
	const n = 200
	for i := range n {
		if r := h.do("POST", "/streams/room:long/commands", post("ann", fmt.Sprint(i))); r.status != 200 {
			t.Fatalf("command %d: %d", i, r.status)
		}
	}
	c := h.dial(t, "/ws")
	c.send(`{"op":"subscribe","stream":"room:long","from":0}`)
	if f := c.frame(); f["op"] != "subscribed" || f["version"] != float64(n) {
		t.Fatalf("got %v", f)
	}
	// Live events appended during the catch-up come after it, once each.
	h.do("POST", "/streams/room:long/commands", post("ann", "live"))
	for v := 1; v <= n+1; v++ {
		if f := c.nonPresence(); f["op"] != "event" || f["version"] != float64(v) {
			t.Fatalf("frame %d: %v", v, f)
		}
	}
	if h.metric("engine_slow_consumer_closes_total") != 0 {
		t.Fatal("a paced catch-up closed the connection")
	}
}

func TestReadLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReadLimit = 1 << 10 })
	other := h.dial(t, "/ws")
	c := h.dial(t, "/ws")
	c.send(`{"op":"ping","data":"` + strings.Repeat("x", 2<<10) + `"}`)
	if code, _ := c.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close %v, want 1009", code)
	}
	other.send(`{"op":"ping","ref":"still"}`)
	if f := other.frame(); f["op"] != "pong" {
		t.Fatalf("other client got %v", f)
	}
}

func TestOrigins(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedOrigins = []string{"https://app.example"} })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, h.wsBase+"/chat", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v %v", resp, err)
	}
	c := h.dial(t, "/chat", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example"}}})
	c.send("ok")
	if got := c.text(); got != "You said: ok" {
		t.Fatalf("got %q", got)
	}
}
