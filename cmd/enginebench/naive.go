package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// The naive server is the baseline of the comparison: what a beginner's
// lesson on WebSocket chat with Fiber builds. One mutex-protected set of
// connections; every frame any connection sends is written, in a for-loop
// under the mutex, to every connection (its sender included). Nothing is
// stored, nothing is numbered: a message is the sender's bytes.
//
// The contrib/websocket rules it keeps: the for-loop under the mutex is
// the only writer of every *Conn (the welcome frame is written under it
// too); the handler stays in its read loop for the connection's life and
// leaves the set, under the mutex, before returning (the *Conn is pooled
// and reused once the handler returns); reads are limited to -read-limit.
// It has no write deadline: one stuck reader stalls every broadcast, as
// in the lesson.
type naiveServer struct {
	readLimit int64

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

// naiveWelcome tells a client that it is in the set, in the engine's
// reply shape so that the tool waits for it as for the engine's.
var naiveWelcome = []byte(`{"op":"subscribed","version":0}`)

func newNaiveServer(readLimit int64) *naiveServer {
	return &naiveServer{readLimit: readLimit, conns: map[*websocket.Conn]struct{}{}}
}

// app is the Fiber app: /ws, /metrics (go_goroutines and
// go_memstats_heap_inuse_bytes, as the idle scenario reads them), /readyz.
func (s *naiveServer) app() *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use("/ws", func(c *fiber.Ctx) error {
		if websocket.IsWebSocketUpgrade(c) {
			return c.Next()
		}
		return fiber.ErrUpgradeRequired
	})
	app.Get("/ws", websocket.New(s.handle))
	app.Get("/metrics", func(c *fiber.Ctx) error {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return c.SendString(fmt.Sprintf("go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\nnaive_connections %d\n",
			runtime.NumGoroutine(), ms.HeapInuse, s.count()))
	})
	app.Get("/readyz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	return app
}

func (s *naiveServer) handle(c *websocket.Conn) {
	c.SetReadLimit(s.readLimit)
	if !s.join(c) {
		return
	}
	defer s.leave(c)
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		s.broadcast(msg)
	}
}

func (s *naiveServer) join(c *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := c.WriteMessage(websocket.TextMessage, naiveWelcome); err != nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *naiveServer) leave(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// broadcast writes msg to every connection; one that fails is dropped
// (its handler's read then fails too, and it returns).
func (s *naiveServer) broadcast(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			delete(s.conns, c)
			_ = c.Close()
		}
	}
}

func (s *naiveServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// serveNaive serves on ln until ctx is done.
func serveNaive(ctx context.Context, ln net.Listener, readLimit int64) error {
	app := newNaiveServer(readLimit).app()
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Shutdown waits for open connections, which a WebSocket handler
	// keeps until its client leaves: give them a moment, then go.
	_ = app.ShutdownWithTimeout(2 * time.Second)
	return nil
}

func runNaiveCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9100", "address to listen on")
	readLimit := fs.Int64("read-limit", 65536, "largest frame read from a client (then the connection is closed)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench naive [flags]

Serves the naive broadcast server, the baseline of -server naive: Fiber and
gofiber/contrib/websocket, one mutex-protected set of connections, and every
frame a connection sends written in a for-loop, under the mutex, to every
connection (the sender's included). No rooms, no storage, no numbering, no
write deadline. Each connection first gets {"op":"subscribed","version":0}.
GET /metrics gives go_goroutines and go_memstats_heap_inuse_bytes; GET
/readyz answers ok. Runs until interrupted.

  enginebench naive -listen 127.0.0.1:9100 &
  enginebench fanout -server naive -targets http://127.0.0.1:9100 -cpu-pid $!

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "naive: listening on http://%s\n", ln.Addr())
	if err := serveNaive(ctx, ln, *readLimit); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
