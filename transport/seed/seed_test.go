package seed_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/transport/transporttest"
	"github.com/coder/websocket"
)

func TestChatEcho(t *testing.T) {
	h := transporttest.New(t)
	c := h.Dial(t, "/chat")
	c.Send("hello")
	if got := c.Text(); got != "You said: hello" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	if err := c.C.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	typ, b, err := c.Read()
	if err != nil || typ != websocket.MessageBinary || string(b) != string([]byte{0, 1, 2, 255}) {
		t.Fatalf("binary echo: %v %v %v", typ, b, err)
	}
	// The writer counts a frame after writing it, so the count may trail
	// the echo the client has read.
	transporttest.Eventually(t, "both frames counted each way", func() bool {
		return h.Metric("engine_ws_frames_total", "direction", "in") >= 2 && h.Metric("engine_ws_frames_total", "direction", "out") >= 2
	})
	if h.Metric("engine_connections") != 1 {
		t.Fatalf("engine_connections %v, want 1", h.Metric("engine_connections"))
	}
}

func TestChatRoom(t *testing.T) {
	h := transporttest.New(t)
	ann := h.Dial(t, "/chat-room?user=ann")
	// A client's own message proves its subscription is live: the server
	// subscribes before it reads the first frame.
	ann.Send("hi, I am ann")
	if got := ann.Text(); got != "ann: hi, I am ann" {
		t.Fatalf("ann got %q", got)
	}
	anon := h.Dial(t, "/chat-room")
	anon.Send("who am I")
	if got := anon.Text(); got != "anonymous: who am I" {
		t.Fatalf("anonymous got %q", got)
	}
	if got := ann.Text(); got != "anonymous: who am I" {
		t.Fatalf("ann got %q", got)
	}
	ann.Send("welcome")
	for _, c := range []*transporttest.WSClient{ann, anon} {
		if got := c.Text(); got != "ann: welcome" {
			t.Fatalf("got %q", got)
		}
	}
	// A message the room refuses is reported to its sender only.
	anon.Send("")
	if got := anon.Text(); got != "error: bad_request: text must be 1-4096 characters, got 0" {
		t.Fatalf("empty message: %q", got)
	}
	st := h.Do("GET", "/streams/room:lobby", "").JSON(t)
	if len(st["messages"].([]any)) != 3 || !transporttest.JSONEq(t, st["members"], `["ann","anonymous"]`) {
		t.Fatalf("lobby state %v", st)
	}
}

func TestLiveScore(t *testing.T) {
	h := transporttest.New(t)
	h.Do("POST", "/update-score?game=before&team=home&score=9", "") // before connecting: not sent
	c := h.Dial(t, "/live-score")
	if r := h.Do("POST", "/update-score?game=g7&team=home&score=2", ""); r.Status != 200 {
		t.Fatalf("update-score: %d %s", r.Status, r.Body)
	}
	h.Do("POST", "/streams/room:noise/commands", transporttest.PostMessage("ann", "not a score"))
	if r := h.Do("POST", "/streams/game:final/commands", `{"type":"UpdateScore","data":{"team":"away","score":5}}`); r.Status != 200 {
		t.Fatalf("command: %d %s", r.Status, r.Body)
	}
	for _, want := range []string{`{"game":"g7","team":"home","score":2}`, `{"game":"final","team":"away","score":5}`} {
		if got := c.Frame(); !transporttest.JSONEq(t, got, want) {
			t.Fatalf("got %v, want %s", got, want)
		}
	}
}

func TestSeedRoutes(t *testing.T) {
	h := transporttest.New(t)
	t.Run("signup", func(t *testing.T) {
		r := h.Do("POST", "/signup", `{"email":"Ann@Example.com","name":"Ann"}`)
		id, _ := user.IDForEmail("ann@example.com")
		if r.Status != 202 || !transporttest.JSONEq(t, r.JSON(t), `{"message":"Welcome!","user":"user:`+id+`"}`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		transporttest.WantProblem(t, h.Do("POST", "/signup", `{"email":" ann@example.COM ","name":"Ann again"}`), 409, "conflict")
	})
	t.Run("orders", func(t *testing.T) {
		r := h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":2}],"email":"bob@example.com"}`)
		if r.Status != 202 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		m := r.JSON(t)
		stream, _ := m["order"].(string)
		if !strings.HasPrefix(stream, "order:") || m["status"] != "placed" || m["version"] != float64(1) {
			t.Fatalf("transporttest.Reply %s", r.Body)
		}
		transporttest.Eventually(t, "the order to be ready", func() bool {
			st := h.Do("GET", "/streams/"+stream, "")
			return st.Status == 200 && st.JSON(t)["status"] == "ready"
		})
		// The same Idempotency-Key places one order.
		a := h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":1}]}`, "Idempotency-Key", "order-7")
		b := h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":1}]}`, "Idempotency-Key", "order-7")
		if a.Status != 202 || string(a.Body) != string(b.Body) {
			t.Fatalf("retry: %s then %s", a.Body, b.Body)
		}
	})
	t.Run("order item waits until ready", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		replies := make([]transporttest.Reply, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", h.Base+fmt.Sprintf("/order/fish%%20%d", i), nil)
				resp, err := h.HTTP.Do(req)
				if err != nil {
					replies[i] = transporttest.Reply{Status: -1, Body: []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				replies[i] = transporttest.Reply{Status: resp.StatusCode, Body: b}
			}()
		}
		wg.Wait()
		for i, r := range replies {
			if r.Status != 200 || !transporttest.JSONEq(t, r.JSON(t), fmt.Sprintf(`{"order":"fish %d","status":"ready!"}`, i)) {
				t.Fatalf("order %d: %d %s", i, r.Status, r.Body)
			}
		}
	})
	t.Run("order item that fails", func(t *testing.T) {
		transporttest.WantProblem(t, h.Do("POST", "/order/"+strings.Repeat("x", 65), ""), 400, "bad_request")
	})
	t.Run("update-score", func(t *testing.T) {
		r := h.Do("POST", "/update-score?game=g1&team=home&score=3", "")
		if r.Status != 200 || !transporttest.JSONEq(t, r.JSON(t), `{"updated":true}`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/update-score?team=away&score=1", ""); r.Status != 200 {
			t.Fatalf("default game: %d %s", r.Status, r.Body)
		}
		st := h.Do("GET", "/streams/game:g1", "").JSON(t)
		main := h.Do("GET", "/streams/game:main", "").JSON(t)
		if !transporttest.JSONEq(t, st["scores"], `{"home":3}`) || !transporttest.JSONEq(t, main["scores"], `{"away":1}`) {
			t.Fatalf("g1 %v, main %v", st, main)
		}
	})
}
