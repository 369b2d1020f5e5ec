package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

func TestSubscriptionLimit(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.MaxSubscriptions = 2 })
	for _, s := range []string{"room:a", "room:b", "room:c"} {
		if r := h.Do("POST", "/streams/"+s+"/commands", transporttest.PostMessage("bob", "hi")); r.Status != 200 {
			t.Fatalf("%s: %d %s", s, r.Status, r.Body)
		}
	}
	members := func(stream string) string {
		t.Helper()
		r := h.Do("GET", "/streams/"+stream, "")
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", stream, r.Status, r.Body)
		}
		return fmt.Sprint(r.JSON(t)["members"])
	}
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"subscribe","stream":"room:a","user":"ann","ref":"a"}`)
	c.FrameOp("subscribed", "presence")
	c.Send(`{"op":"subscribe","stream":"room:b","user":"ann","ref":"b"}`)
	c.FrameOp("subscribed", "presence")

	// The third stream is refused, and nothing is subscribed: ann does
	// not join its presence.
	c.Send(`{"op":"subscribe","stream":"room:c","user":"ann","ref":"c"}`)
	f := c.FrameOp("error", "presence")
	if f["code"] != "limit_exceeded" || f["ref"] != "c" || !strings.Contains(f["message"].(string), "2 subscriptions") {
		t.Fatalf("third subscribe: %v", f)
	}
	if got := members("room:c"); got != "[]" {
		t.Fatalf("room:c members %s after a refused subscribe", got)
	}

	// A subscribe to a stream the connection has replaces it: not counted
	// twice.
	c.Send(`{"op":"subscribe","stream":"room:a","from":0,"user":"ann","ref":"again"}`)
	if f := c.FrameOp("subscribed", "presence", "event"); f["ref"] != "again" {
		t.Fatalf("resubscribe: %v", f)
	}
	// Unsubscribing makes room.
	c.Send(`{"op":"unsubscribe","stream":"room:b","ref":"u"}`)
	c.FrameOp("unsubscribed", "presence", "event")
	c.Send(`{"op":"subscribe","stream":"room:c","user":"ann","ref":"c2"}`)
	if f := c.FrameOp("subscribed", "presence", "event"); f["ref"] != "c2" {
		t.Fatalf("subscribe after unsubscribe: %v", f)
	}
	transporttest.Eventually(t, "ann in room:c", func() bool { return members("room:c") == "[ann]" })
}

// dialFrom dials /ws from a local address (127.0.0.x: one client address
// each).
func dialFrom(h *transporttest.Harness, local string) (*websocket.Conn, *http.Response, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	return websocket.Dial(ctx, h.WSBase+"/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
	})
}

func TestConnectionLimits(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) {
		c.MaxConnections = 3
		c.MaxConnectionsPerIP = 2
	})
	dial := func(local string) *websocket.Conn {
		t.Helper()
		c, _, err := dialFrom(h, local)
		if err != nil {
			t.Fatalf("dial from %s: %v", local, err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	// upgradeFrom sends an upgrade request from local and returns the
	// reply to a refused one.
	upgradeFrom := func(local string) transporttest.Reply {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		hc := &http.Client{Timeout: transporttest.Timeout, Transport: &http.Transport{DialContext: d.DialContext}}
		req, _ := http.NewRequest("GET", h.Base+"/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return transporttest.Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}

	a1 := dial("127.0.0.1")
	dial("127.0.0.1")
	// The address is at its limit: 429 before the upgrade.
	r := upgradeFrom("127.0.0.1")
	transporttest.WantProblem(t, r, 429, "limit_exceeded")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Another address may connect, up to the server's limit: then 503.
	dial("127.0.0.2")
	transporttest.WantProblem(t, upgradeFrom("127.0.0.2"), 503, "unavailable")

	// A connection counts until its handler has ended.
	_ = a1.Close(websocket.StatusNormalClosure, "")
	transporttest.Eventually(t, "a place after a close", func() bool {
		c, _, err := dialFrom(h, "127.0.0.2")
		if err != nil {
			return false
		}
		_ = c.CloseNow()
		return true
	})

	// Upgrades that fail after their place was reserved give it back.
	// The gauge drops when a connection unregisters; its place is given
	// back a little later, when its handler has ended: wait for the place.
	transporttest.Eventually(t, "the places to be free", func() bool { return transport.WebSocketPlaces(h.Srv) == 2 })
	for range 5 {
		req, _ := http.NewRequest("GET", h.Base+"/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket") // no key: the upgrader refuses it
		resp, err := h.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("bad upgrade: %d", resp.StatusCode)
		}
	}
	dial("127.0.0.3")
}

// rawRequest opens a TCP connection and sends part of a request.
func rawRequest(t *testing.T, h *transporttest.Harness, part string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, part); err != nil {
		t.Fatal(err)
	}
	return c
}

// halfRequests are requests cut short: in the headers, in the body.
var halfRequests = []string{
	"GET /healthz HTTP/1.1\r\nHost: engine\r\nX-Slow: ",
	"POST /streams/room:slow/commands HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"type\":",
}

// statusLine reads the first line of the reply on c, or the error.
func statusLine(c net.Conn) string {
	_ = c.SetReadDeadline(time.Now().Add(transporttest.Timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(line)
}

func TestHTTPReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := transporttest.New(t, func(c *transport.Config) { c.HTTPReadTimeout = timeout })
	for _, part := range halfRequests {
		start := time.Now()
		c := rawRequest(t, h, part)
		if got := statusLine(c); got != "HTTP/1.1 400 Bad Request" {
			t.Fatalf("%.20q: got %q", part, got)
		}
		if d := time.Since(start); d < timeout || d > timeout+2*time.Second {
			t.Fatalf("%.20q answered after %v, the read timeout is %v", part, d, timeout)
		}
		if _, err := c.Read(make([]byte, 1<<10)); err == nil {
			// the rest of the problem; then the connection must close
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("after the 400: %v", err)
			}
		}
	}
	// An idle keep-alive connection is not bound by the read timeout.
	c := rawRequest(t, h, "GET /healthz HTTP/1.1\r\nHost: engine\r\n\r\n")
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if i == 0 {
			time.Sleep(2 * timeout) // idle for longer than the read timeout
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: engine\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h.Logs.Find(func(r map[string]any) bool { return r["level"] == "ERROR" }) != nil {
		t.Fatal("a read timeout was logged as an error")
	}
}

// TestShutdownHalfSentRequests: requests that were never fully sent do not
// hold a shutdown up, however long the read timeout.
func TestShutdownHalfSentRequests(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.HTTPReadTimeout = time.Minute })
	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = rawRequest(t, h, halfRequests[i%len(halfRequests)])
	}
	transporttest.Eventually(t, "the server to read them all", func() bool { return transport.ReadingRequests(h.Srv) >= n })
	// A request being handled is still answered.
	held := h.API.HoldType("UpdateScore")
	inflight := make(chan transporttest.Reply, 1)
	go func() {
		inflight <- h.Do("POST", "/streams/game:sd/commands", `{"type":"UpdateScore","data":{"team":"home","score":1}}`)
	}()
	<-held.Entered

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Srv.Shutdown(ctx) }()
	transporttest.Eventually(t, "draining", transport.Draining(h.Srv).Load)
	held.Open()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	t.Logf("Shutdown with %d half-sent requests: %v", n, took)
	if took > 2*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
	if r := <-inflight; r.Status != 200 {
		t.Fatalf("in-flight command: %d %s", r.Status, r.Body)
	}
	var wg sync.WaitGroup
	lines := make([]string, n)
	for i, c := range conns {
		wg.Go(func() { lines[i] = statusLine(c) })
	}
	wg.Wait()
	for i, l := range lines {
		if l != "HTTP/1.1 400 Bad Request" {
			t.Fatalf("half-sent request %d got %q", i, l)
		}
	}
	if r := h.Logs.Find(func(r map[string]any) bool { return r["level"] == "ERROR" }); r != nil {
		t.Fatalf("logged %v", r)
	}
}
