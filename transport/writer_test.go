package transport_test

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// frameSizes cross every boundary of the writer: the 7/16/64-bit lengths,
// a full batch buffer, the largest batched frame and larger ones, which
// go out alone.
var frameSizes = []int{0, 1, 125, 126, 4000, 65525, 65526, 65527, 65535, 65536, 200000, 3, 70000, 17}

func framePayload(round, i, n int) []byte {
	return bytes.Repeat([]byte{byte('a' + (round*7+i)%26)}, n)
}

// framesExt adds /frames, an endpoint that answers each client frame (a
// round's digit) with frameSizes frames at once, text and binary in turn,
// so that the writer takes them together.
func framesExt(r *transport.Routes) {
	r.WebSocket(&transport.Endpoint{Path: "/frames", Frame: func(c *transport.Conn, _ int, data []byte) {
		round := int(data[0] - '0')
		for i, n := range frameSizes {
			if i%2 == 0 {
				c.Send(framePayload(round, i, n))
			} else {
				c.SendBinary(framePayload(round, i, n))
			}
		}
	}})
}

// Frames the writer batches are read whole and in order by a client,
// whatever compression it asks for (the server negotiates none: the
// writer frames the bytes itself), and over several runs of the writer.
func TestWriterFrames(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) {
		c.Extensions = append(c.Extensions, framesExt)
	})
	for name, mode := range map[string]websocket.CompressionMode{
		"no compression":      websocket.CompressionDisabled,
		"context takeover":    websocket.CompressionContextTakeover,
		"no context takeover": websocket.CompressionNoContextTakeover,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, h.WSBase+"/frames", &websocket.DialOptions{CompressionMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
				t.Fatalf("the server negotiated %q", ext)
			}
			c.SetReadLimit(1 << 20)
			for round := range 3 {
				if err := c.Write(ctx, websocket.MessageText, []byte{byte('0' + round)}); err != nil {
					t.Fatal(err)
				}
				for i, n := range frameSizes {
					typ, got, err := c.Read(ctx)
					if err != nil {
						t.Fatalf("round %d, frame %d (%d bytes): %v", round, i, n, err)
					}
					want := websocket.MessageText
					if i%2 == 1 {
						want = websocket.MessageBinary
					}
					if typ != want || !bytes.Equal(got, framePayload(round, i, n)) {
						t.Fatalf("round %d, frame %d: got %v of %d bytes, want %v of %d", round, i, typ, len(got), want, n)
					}
				}
			}
			// A ping is answered (by the writer) between the frames.
			errs := make(chan error, 1)
			go func() {
				_, _, err := c.Read(ctx) // reads the pong and waits
				errs <- err
			}()
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
			<-errs
		})
	}
}

// writers counts the server's writer goroutines (the tests' server runs
// in this process).
func writers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "transport.(*Conn).writeLoop(")
}

// An idle connection has no writer goroutine: one runs while there is
// something to write and ends once it is written.
func TestIdleConnectionsHaveNoWriter(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.PingInterval = 50 * time.Millisecond })
	var clients []*transporttest.WSClient
	for range 20 {
		c := h.Dial(t, "/ws")
		c.Send(`{"op":"subscribe","stream":"room:idle"}`)
		c.FrameOp("subscribed", "presence")
		clients = append(clients, c)
	}
	for range 3 {
		transporttest.Eventually(t, "the writers end", func() bool { return writers() == 0 })
		if r := h.Do("POST", "/streams/room:idle/commands", transporttest.PostMessage("ann", "hi")); r.Status != 200 {
			t.Fatalf("post: %d", r.Status)
		}
		for _, c := range clients {
			c.FrameOp("event", "presence")
		}
	}
	// Pings every PingInterval start a writer each time, which ends too;
	// the connections stay open.
	transporttest.Eventually(t, "the writers end", func() bool { return writers() == 0 })
	for _, c := range clients {
		c.Send(`{"op":"ping"}`)
		c.FrameOp("pong", "presence")
	}
}

// A panic in an endpoint's handler is logged and ends its connection
// only; the writer is gone before the handler returns.
func TestPanicInHandler(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) {
		c.Extensions = append(c.Extensions, func(r *transport.Routes) {
			r.WebSocket(&transport.Endpoint{Path: "/panic", Frame: func(c *transport.Conn, _ int, data []byte) {
				c.Send([]byte("before"))
				if string(data) == "panic" {
					panic("boom")
				}
			}})
		})
	})
	c := h.Dial(t, "/panic")
	c.Send("hi")
	if got := c.Text(); got != "before" {
		t.Fatalf("got %q", got)
	}
	c.Send("panic")
	c.CloseStatus() // the connection ends
	transporttest.Eventually(t, "the panic is logged", func() bool {
		return h.Logs.Find(func(r map[string]any) bool { return r["msg"] == "panic in websocket handler" && r["panic"] == "boom" }) != nil
	})
	transporttest.Eventually(t, "the writers end", func() bool { return writers() == 0 })
	// The server still serves.
	c = h.Dial(t, "/panic")
	c.Send("hi")
	if got := c.Text(); got != "before" {
		t.Fatalf("after the panic: got %q", got)
	}
}
