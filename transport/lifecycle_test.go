package transport_test

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// smallBuffers shrinks a dialled socket's receive buffer, so that a client
// that does not read backs the server up after a few frames.
func smallBuffers() *websocket.DialOptions {
	d := &net.Dialer{Control: smallRcvBuf}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

// smallRcvBuf is a net.Dialer's Control that shrinks the receive buffer.
func smallRcvBuf(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// smallSendBuffers is a listener whose connections have a small send
// buffer, for the same purpose on the server's side.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestSlowConsumer(t *testing.T) {
	h := transporttest.NewLn(t, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} }, func(c *transport.Config) { c.SendQueueFrames = 16 })
	slow := h.Dial(t, "/ws", smallBuffers())
	slow.Send(`{"op":"subscribe","stream":"room:flood","ref":"s"}`)
	if f := slow.Frame(); f["op"] != "subscribed" {
		t.Fatalf("got %v", f)
	}
	fine := h.Dial(t, "/ws")
	fine.Send(`{"op":"subscribe","stream":"room:flood"}`)
	fine.FrameOp("subscribed")

	// Flood with large messages until the server gives up on the client
	// that does not read (its socket buffers fill, then its send queue).
	text := strings.Repeat("x", 4000)
	for i := 0; h.Metric("engine_slow_consumer_closes_total") == 0; i++ {
		if i > 20000 {
			t.Fatal("no slow consumer close after 20000 events")
		}
		if r := h.Do("POST", "/streams/room:flood/commands", transporttest.PostMessage("ann", text)); r.Status != 200 {
			t.Fatalf("command %d: %d %s", i, r.Status, r.Body)
		}
		// The client that reads keeps up.
		if f := fine.NonPresence(); f["op"] != "event" || f["version"] != float64(i+1) {
			t.Fatalf("fine client got %v at %d", f, i)
		}
	}
	if code, reason := slow.CloseStatus(); code != websocket.StatusPolicyViolation || reason != "slow consumer" {
		t.Fatalf("close %v %q, want 1008 slow consumer", code, reason)
	}
	transporttest.Eventually(t, "the slow connection to be gone", func() bool { return h.Metric("engine_connections") == 1 })
	fine.Send(`{"op":"ping","ref":"alive"}`)
	fine.FrameOp("pong", "event")
}

func TestPongTimeout(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PongTimeout = time.Second
	})
	// A client that never reads never answers pings: it is dropped.
	silent := h.Dial(t, "/chat")
	transporttest.Eventually(t, "the silent peer to be dropped", func() bool { return h.Metric("engine_connections") == 0 })
	if _, _, err := silent.Read(); err == nil {
		t.Fatal("the dropped connection still reads")
	}
	// A client that reads answers pings, and stays while silent for longer
	// than PongTimeout.
	alive := h.Dial(t, "/chat")
	type frame struct {
		data string
		err  error
	}
	frames := make(chan frame, 1)
	go func() {
		for {
			_, b, err := alive.C.Read(context.Background())
			frames <- frame{string(b), err}
			if err != nil {
				return
			}
		}
	}()
	silence := time.NewTimer(2 * time.Second) // twice PongTimeout
	defer silence.Stop()
	select {
	case f := <-frames:
		t.Fatalf("the silent but answering client got %q %v", f.data, f.err)
	case <-silence.C:
	}
	alive.Send("still here")
	if f := <-frames; f.err != nil || f.data != "You said: still here" {
		t.Fatalf("got %q %v", f.data, f.err)
	}
	alive.C.CloseNow()
	<-frames // the reader's error
}

func TestShutdown(t *testing.T) {
	h := transporttest.New(t)
	held := h.API.HoldType("UpdateScore")

	ws := h.Dial(t, "/ws")
	ws.Send(`{"op":"subscribe","stream":"room:sd","ref":"s"}`)
	ws.FrameOp("subscribed")
	ws.Send(`{"op":"command","stream":"game:sd","type":"UpdateScore","data":{"team":"home","score":1},"ref":"in-flight"}`)
	<-held.Entered

	httpDone := make(chan transporttest.Reply, 1)
	go func() {
		httpDone <- h.Do("POST", "/streams/game:sd2/commands", `{"type":"UpdateScore","data":{"team":"home","score":7}}`)
	}()
	<-held.Entered

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
		defer cancel()
		shutdownDone <- h.Srv.Shutdown(ctx)
	}()
	transporttest.Eventually(t, "draining", transport.Draining(h.Srv).Load)

	// transporttest.New commands are refused while draining; the connection stays.
	ws.Send(`{"op":"command","stream":"room:sd","type":"PostMessage","data":{"user":"ann","text":"late"},"ref":"late"}`)
	if f := ws.NonPresence(); f["op"] != "error" || f["code"] != "unavailable" || f["ref"] != "late" {
		t.Fatalf("late command: %v", f)
	}
	// transporttest.New connections are refused.
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	if c, _, err := websocket.Dial(ctx, h.WSBase+"/ws", nil); err == nil {
		c.CloseNow()
		t.Fatal("a new connection was accepted while draining")
	}
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with commands in flight", err)
	default:
	}

	held.Open()
	if f := ws.Frame(); !transporttest.JSONEq(t, f, `{"op":"ack","stream":"game:sd","version":1,"ref":"in-flight"}`) {
		t.Fatalf("in-flight command: %v", f)
	}
	if code, reason := ws.CloseStatus(); code != websocket.StatusGoingAway || reason != "going away" {
		t.Fatalf("close %v %q, want 1001 going away", code, reason)
	}
	if r := <-httpDone; r.Status != 200 || r.JSON(t)["version"] != float64(1) {
		t.Fatalf("in-flight HTTP command: %d %s", r.Status, r.Body)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Both commands are durable.
	for _, s := range []string{"game:sd", "game:sd2"} {
		evs, err := h.Store.ReadStream(context.Background(), s, 0, 0)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", s, evs, err)
		}
	}
}

func TestShutdownTimeout(t *testing.T) {
	h := transporttest.New(t)
	held := h.API.HoldType("UpdateScore")
	ws := h.Dial(t, "/ws")
	ws.Send(`{"op":"command","stream":"game:stuck","type":"UpdateScore","data":{"team":"home","score":1}}`)
	<-held.Entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil with a command stuck past its deadline")
	}
	// Everything was torn down anyway.
	if n := h.Metric("engine_connections"); n != 0 {
		t.Fatalf("%v connections left", n)
	}
	if code, _ := ws.CloseStatus(); code == websocket.StatusGoingAway {
		t.Fatal("a forced close claims a graceful one")
	}
}

// goroutines counts this process's goroutines, leaving out fasthttp's
// clock, which the first server starts once for the whole process.
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "fasthttp.updateServerDate") {
			n++
		}
	}
	return n, all
}

func TestGoroutinesAfterShutdown(t *testing.T) {
	before, _ := goroutines()
	h := transporttest.New(t)
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"subscribe","stream":"room:g","from":0,"user":"ann"}`)
	c.FrameOp("subscribed")
	c.Send(`{"op":"command","stream":"room:g","type":"PostMessage","data":{"user":"ann","text":"hi"}}`)
	c.FrameOp("ack", "event", "presence")
	ls := h.Dial(t, "/live-score")
	cr := h.Dial(t, "/chat-room?user=bob")
	cr.Send("hello")
	if got := cr.Text(); got != "bob: hello" {
		t.Fatalf("got %q", got)
	}
	if r := h.Do("POST", "/order/tea", ""); r.Status != 200 {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}
	// The clients read while the server shuts down, so that they answer
	// its close frames.
	var closes []<-chan websocket.StatusCode
	for _, w := range []*transporttest.WSClient{c, ls, cr} {
		closes = append(closes, w.CloseAsync())
	}
	h.Close()
	for _, ch := range closes {
		if code := <-ch; code != websocket.StatusGoingAway {
			t.Fatalf("close %v, want 1001", code)
		}
	}
	deadline := time.Now().Add(transporttest.Timeout)
	for {
		n, stacks := goroutines()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, stacks)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func TestAuth(t *testing.T) {
	secret := []byte("test-secret")
	h := transporttest.New(t, func(c *transport.Config) { c.Auth.JWTSecret = secret })
	token := func(sub string, streams []string, exp time.Duration) string {
		claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix()}
		if streams != nil {
			claims["streams"] = streams
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ann := token("ann", nil, time.Hour)
	gamesOnly := token("ann", []string{"game:*"}, time.Hour)
	expired := token("ann", nil, -time.Hour)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann"}).SignedString([]byte("other"))

	for _, c := range []struct {
		name, method, path, body, token string
		status                          int
		code                            string
	}{
		{"no token", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), "", 401, "unauthorized"},
		{"garbage token", "GET", "/streams/room:a", "", "garbage", 401, "unauthorized"},
		{"forged token", "GET", "/streams/room:a", "", forged, 401, "unauthorized"},
		{"expired token", "GET", "/streams/room:a", "", expired, 401, "unauthorized"},
		{"stream not allowed", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), gamesOnly, 403, "forbidden"},
		{"other user in data", "POST", "/streams/room:a/commands", transporttest.PostMessage("bob", "hi"), ann, 403, "forbidden"},
		{"seed route not allowed", "POST", "/signup", `{"email":"a@b.co","name":"A"}`, gamesOnly, 403, "forbidden"},
		{"seed route without token", "POST", "/update-score?team=home&score=1", "", "", 401, "unauthorized"},
		{"allowed", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), ann, 200, ""},
		{"user taken from the token", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{"text":"me"}}`, ann, 200, ""},
		{"allowed by pattern", "POST", "/update-score?team=home&score=1", "", gamesOnly, 200, ""},
		{"probes need no token", "GET", "/healthz", "", "", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.token != "" {
				hdr = []string{"Authorization", "Bearer " + c.token}
			}
			r := h.Do(c.method, c.path, c.body, hdr...)
			if c.code == "" {
				if r.Status != c.status {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				return
			}
			transporttest.WantProblem(t, r, c.status, c.code)
			if c.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	st := h.Do("GET", "/streams/room:a", "", "Authorization", "Bearer "+ann).JSON(t)
	if !transporttest.JSONEq(t, st["messages"].([]any)[1].(map[string]any)["user"], `"ann"`) {
		t.Fatalf("state %v", st)
	}

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
		defer cancel()
		if _, resp, err := websocket.Dial(ctx, h.WSBase+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("no token: %v %v", resp, err)
		}
		if _, resp, err := websocket.Dial(ctx, h.WSBase+"/chat-room?user=bob&token="+ann, nil); err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("chat-room as someone else: %v %v", resp, err)
		}
		w := h.Dial(t, "/ws?token="+gamesOnly)
		w.Send(`{"op":"subscribe","stream":"room:a","ref":"r"}`)
		if f := w.Frame(); f["op"] != "error" || f["code"] != "forbidden" || f["ref"] != "r" {
			t.Fatalf("got %v", f)
		}
		w.Send(`{"op":"subscribe","stream":"game:a","user":"bob","ref":"r2"}`)
		if f := w.Frame(); f["op"] != "error" || f["code"] != "forbidden" {
			t.Fatalf("joining as someone else: %v", f)
		}
		hw := h.Dial(t, "/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + ann}}})
		hw.Send(`{"op":"command","stream":"room:a","type":"PostMessage","data":{"text":"via ws"},"ref":"c"}`)
		if f := hw.Frame(); f["op"] != "ack" {
			t.Fatalf("got %v", f)
		}
		cr := h.Dial(t, "/chat-room?token="+ann)
		cr.Send("as ann")
		if got := cr.Text(); got != "ann: as ann" {
			t.Fatalf("got %q", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := transporttest.New(t, func(c *transport.Config) {
		c.RateLimit = transport.RateLimit{PerSecond: 1, Burst: 2}
		c.Now = func() time.Time { return now } // no refill: deterministic
	})
	for i := range 2 {
		if r := h.Do("POST", "/update-score?team=home&score=1", ""); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := h.Do("POST", "/update-score?team=home&score=1", "")
	transporttest.WantProblem(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if r := h.Do("GET", "/healthz", ""); r.Status != 200 {
		t.Fatalf("probes are not throttled: %d", r.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, h.WSBase+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("upgrade over the limit: %v %v", resp, err)
	}
}
