package transport

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
)

// BenchmarkCommandPath measures the server's side of a /ws command
// without the socket: the frame is handed to the endpoint as the reader
// would (parse, lane, runtime call on an in-memory store, ack encode) and
// the ack is taken from the send queue as the writer would. 8 connections
// keep 16 commands each in flight over 16 rooms, like `enginebench
// commands`; allocs/op are the server's per command.
func BenchmarkCommandPath(b *testing.B) {
	const conns, inflight, streams = 8, 16, 16
	s, stop := benchServer(b)
	defer stop()
	per := (b.N + conns - 1) / conns
	frames := make([][][]byte, conns)
	for ci := range frames {
		frames[ci] = make([][]byte, per)
		for i := range per {
			var buf []byte
			buf = append(buf, `{"op":"command","stream":"room:bench-`...)
			buf = strconv.AppendInt(buf, int64((ci+i)%streams), 10)
			buf = append(buf, `","type":"PostMessage","data":{"user":"bench","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"id":"run-`...)
			buf = strconv.AppendInt(buf, int64(ci), 10)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, `","ref":"`...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, `"}`...)
			frames[ci][i] = buf
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for ci := range conns {
		c := benchConn(s)
		tokens := make(chan struct{}, inflight)
		for range inflight {
			tokens <- struct{}{}
		}
		done := make(chan struct{})
		// The writer: started by the queue as the server's is, it takes
		// the acks and gives their slots back.
		kick := make(chan struct{}, 1)
		c.q.start = func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		go func() {
			defer close(done)
			var prev []outItem
			got := 0
			for got < per {
				w := c.q.take(prev)
				prev = nil
				if w.exit {
					<-kick
					continue
				}
				for i := range w.items {
					if len(w.items[i].data) < 11 || string(w.items[i].data[:11]) != `{"op":"ack"` {
						b.Errorf("reply %s", w.items[i].data)
					}
					tokens <- struct{}{}
				}
				got += len(w.items)
				prev = w.items
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range frames[ci] {
				<-tokens
				engineFrame(c, websocket.TextMessage, f)
			}
			<-done
			c.cancel()
			c.wg.Wait()
		}()
	}
	wg.Wait()
}

// benchServer is a Server in front of the runtime on an in-memory store,
// without a listener.
func benchServer(b *testing.B) (*Server, func()) {
	b.Helper()
	ctx := context.Background()
	store := memstore.New()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := actors.New(actors.Config{
		Store:    store,
		Kinds:    kinds.All(kinds.Config{CookTime: time.Millisecond}),
		Observer: m,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{API: rt, Log: store, Logger: slog.New(slog.DiscardHandler), Metrics: m, Registerer: reg, Gatherer: reg})
	if err != nil {
		b.Fatal(err)
	}
	return s, func() {
		_ = rt.Stop(ctx)
		_ = store.Close()
	}
}

// benchConn is a /ws connection of s with no socket: its queue is read
// by the benchmark.
func benchConn(s *Server) *Conn {
	ctx, cancel := context.WithCancel(s.base)
	c := &Conn{
		s:      s,
		ep:     &Endpoint{Path: "/ws", Frame: engineFrame, Render: renderEvent},
		req:    &Upgrade{},
		ctx:    ctx,
		cancel: cancel,
		lanes:  make(map[string]*lane),
		slots:  make(chan struct{}, s.cfg.MaxInflight),
		subs:   make(map[string]*wsSub),
	}
	c.q = newSendQueue(s.cfg.SendQueueFrames, s.cfg.SendQueueBytes, func() {})
	c.auth.p.Store(&principal{anonymous: true})
	return c
}

// BenchmarkCommandReply: the body of a command's HTTP reply (one event),
// built by hand and, for comparison, by json.Marshal (what c.JSON did).
func BenchmarkCommandReply(b *testing.B) {
	evs := []events.Event{{Stream: "room:lobby", Version: 7, Position: 70, ID: "room:lobby/k1/0", Type: "MessagePosted",
		Time: time.Now(), Data: []byte(`{"user":"ann","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`), Meta: events.Meta{Correlation: "k1", Causation: "k1"}}}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			appendCommandReply(nil, "room:lobby", 7, evs)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = json.Marshal(commandReply{Stream: "room:lobby", Version: 7, Events: evs})
		}
	})
}
