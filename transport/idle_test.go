package transport_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// idleClient is a WebSocket client without a goroutine or a library: a
// socket, the handshake written and read by hand, and frames framed here,
// so that the process's stacks and heap grow only by the server's side of
// a connection.
type idleClient struct {
	nc net.Conn
	br *bufio.Reader
}

func dialIdle(t testing.TB, addr string) *idleClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, transporttest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(transporttest.Timeout))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &idleClient{nc: nc, br: br}
}

// send writes one masked text frame (payload under 126 bytes).
func (c *idleClient) send(t testing.TB, payload string) {
	t.Helper()
	mask := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(payload) {
		f = append(f, payload[i]^mask[i%4])
	}
	if _, err := c.nc.Write(f); err != nil {
		t.Fatal(err)
	}
}

// readText reads one unmasked text frame.
func (c *idleClient) readText(t testing.TB) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(l[0])<<8 | int(l[1])
	case 127:
		t.Fatal("frame too large")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readOp reads frames until one of op.
func (c *idleClient) readOp(t testing.TB, op string) {
	t.Helper()
	for {
		if f := c.readText(t); strings.Contains(f, `"op":"`+op+`"`) {
			return
		}
	}
}

// idleMem is the process's stacks and heap in use after three collections
// (a collection also shrinks the stacks that use under a quarter of
// themselves).
func idleMem() (stack, heap uint64, goroutines int) {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.StackInuse, m.HeapInuse, runtime.NumGoroutine()
}

// TestIdleConnMemory measures what an idle /ws connection with one
// subscription costs the server: goroutines, stack and heap per
// connection (issue 12). The goroutines and the stack are checked: the
// reader's goroutine must keep its 4 KiB stack once a subscribe, a
// command, a ping and a refused op have been handled.
func TestIdleConnMemory(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector changes stacks and heap")
	}
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	const conns = 400
	h := transporttest.New(t, func(c *transport.Config) {
		c.MaxConnectionsPerIP = conns + 10
		c.MaxConnections = conns + 10
	})
	addr := strings.TrimPrefix(h.Base, "http://")
	// Warm up: one connection, so that the runtime's and the server's
	// one-time allocations are not counted.
	w := dialIdle(t, addr)
	w.send(t, `{"op":"subscribe","stream":"room:idle-warm"}`)
	if f := w.readText(t); !strings.Contains(f, `"subscribed"`) {
		t.Fatalf("warm-up: %s", f)
	}
	w.send(t, `{"op":"command","stream":"game:idle","type":"UpdateScore","data":{"team":"home","score":1}}`)
	w.readOp(t, "ack")
	stack0, heap0, g0 := idleMem()
	clients := make([]*idleClient, conns)
	for i := range clients {
		c := dialIdle(t, addr)
		c.send(t, fmt.Sprintf(`{"op":"subscribe","stream":"room:idle-%d"}`, i%10))
		if f := c.readText(t); !strings.Contains(f, `"subscribed"`) {
			t.Fatalf("conn %d: %s", i, f)
		}
		// A command, a ping and a refused op are handled on the reader,
		// which must not grow its stack for them either.
		c.send(t, `{"op":"command","stream":"game:idle","type":"UpdateScore","data":{"team":"home","score":1}}`)
		c.readOp(t, "ack")
		c.send(t, `{"op":"ping"}`)
		c.readOp(t, "pong")
		c.send(t, `{"op":"nope"}`)
		c.readOp(t, "error")
		_ = c.nc.SetDeadline(time.Time{})
		clients[i] = c
	}
	// The writers that sent the replies end once the queue is empty: wait
	// (at most 10 s) until no more than the readers are left.
	for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > g0+conns && time.Now().Before(end); time.Sleep(time.Millisecond) {
	}
	stack1, heap1, g1 := idleMem()
	// Signed: goroutines of earlier tests that end meanwhile free their
	// stacks, which can outweigh the readers' (a run then proves nothing
	// about the stack, and says so in its log).
	perStack := (float64(stack1) - float64(stack0)) / conns
	perHeap := (float64(heap1) - float64(heap0)) / conns
	perG := float64(g1-g0) / conns
	t.Logf("per idle connection: %.2f goroutines, stack %.0f B, heap %.0f B (stacks %d → %d KiB, heap %d → %d KiB)",
		perG, perStack, perHeap, stack0>>10, stack1>>10, heap0>>10, heap1>>10)
	if perG > 1.05 {
		t.Errorf("%.2f goroutines per idle connection, want 1 (the reader)", perG)
	}
	// The reader's stack is 4 KiB (what its parked read needs) and must not
	// keep a larger one because of a subscribe (or the upgrade).
	if perStack > 4.5*1024 {
		t.Errorf("stack per idle connection %.0f B, want ≤ 4.5 KiB", perStack)
	}
	for _, c := range clients {
		_ = c.nc.Close()
	}
}

// TestUpgradeEarlyData: a client that sends a frame with its upgrade
// request, before the 101 (RFC 6455 4.1 forbids it), is closed without
// one, as the library's own upgrader does, and its place under the
// connection limits is given back.
func TestUpgradeEarlyData(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.MaxConnectionsPerIP = 2 })
	addr := strings.TrimPrefix(h.Base, "http://")
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
		"\x81\x80\x01\x02\x03\x04" // an empty masked text frame
	for range 3 {
		nc, err := net.DialTimeout("tcp", addr, transporttest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(transporttest.Timeout))
		if _, err := io.WriteString(nc, req); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(nc)
		_ = nc.Close()
		if len(got) > 0 || err != nil && !isReset(err) {
			t.Fatalf("early data: got %q, %v; want the connection closed without a reply", got, err)
		}
	}
	// Both places are free again (given back before the socket closes).
	for range 2 {
		c := dialIdle(t, addr)
		c.send(t, `{"op":"ping"}`)
		c.readOp(t, "pong")
		defer c.nc.Close()
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }
