package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/internal/counter"
)

// Endpoint is one WebSocket path's behaviour on top of the common
// connection machinery (one reader, one writer, a capped send queue).
type Endpoint struct {
	Path string
	// Check, when set, runs on the upgrade request, before the upgrade,
	// after the token and origin checks: a refusal is an HTTP problem.
	Check func(s *Server, req *Upgrade) error
	// Start, when set, runs once the connection is registered and its
	// writer runs; an error closes the connection.
	Start func(c *Conn) error
	// Frame handles one data frame from the client, on the reader
	// goroutine. Nil ignores what the client sends.
	Frame func(c *Conn, typ int, data []byte)
	// Render turns an event delivered to one of the connection's
	// subscriptions into its frame; ok false skips the event.
	Render func(ev *events.Event) (data []byte, ok bool)
	// Presence: forward presence changes of subscribed rooms.
	Presence bool
	// Expired, when set, is the last frame a connection gets when its
	// token expires, before close 1008 "token expired".
	Expired []byte

	// frames holds the frames Render made last: an event delivered to
	// many subscribers is one *events.Event, rendered once per endpoint
	// and its bytes shared by every connection's writer.
	frames frameCache
}

// frameCache remembers the last frameSlots events an endpoint rendered,
// by identity. Writers of many connections look an event up at once, so
// it takes no lock: two writers may both render an event the first time,
// which is only wasted work. Events read by a subscription's catch-up are
// its own copies and miss, as they should: nobody else sends them.
type frameCache struct {
	slots [frameSlots]atomic.Pointer[rendered]
	next  atomic.Uint32
}

const frameSlots = 16

type rendered struct {
	ev   *events.Event
	data []byte
	ok   bool
}

func (f *frameCache) render(ev *events.Event, render func(*events.Event) ([]byte, bool)) ([]byte, bool) {
	for i := range f.slots {
		if r := f.slots[i].Load(); r != nil && r.ev == ev {
			return r.data, r.ok
		}
	}
	data, ok := render(ev)
	f.slots[f.next.Add(1)%frameSlots].Store(&rendered{ev: ev, data: data, ok: ok})
	return data, ok
}

// Upgrade is what the upgrade request tells a connection, copied out of
// the Fiber context before the upgrade.
type Upgrade struct {
	principal *principal
	user      string // ?user=
	requestID string
	ip        string
	slot      *wsSlot // this connection's place under the connection limits
	// Data is the endpoint's own, set by its Check for its Start.
	Data any
}

// upgrade checks a WebSocket upgrade request before contrib/websocket
// takes it over: that it is one, its Origin, its token, the rate limit
// (in guard) and the endpoint's own check. Refusals are HTTP problems.
func (s *Server) upgrade(ep *Endpoint) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return badRequest("%s is a WebSocket endpoint: send an upgrade request", ep.Path)
		}
		if origin := c.Get(fiber.HeaderOrigin); origin != "" && len(s.cfg.AllowedOrigins) > 0 && !slices.Contains(s.cfg.AllowedOrigins, origin) {
			return newClientError(decider.ErrForbidden, "origin %q is not allowed", clip(origin))
		}
		token := bearer(c.Get(fiber.HeaderAuthorization))
		if token == "" {
			token = c.Query("token")
		}
		p, err := s.authenticate(token)
		if err != nil {
			return err
		}
		req := &Upgrade{
			principal: p,
			user:      strings.Clone(c.Query("user")),
			requestID: requestID(c),
			ip:        c.IP(),
		}
		// The connection counts from here: concurrent upgrades cannot
		// take the server or an address past its limit.
		if req.slot, err = s.reserveWS(req.ip); err != nil {
			return err
		}
		nc := c.Context().Conn()
		upgraded := false
		defer func() {
			if !upgraded {
				s.tracked.attach(nc, nil)
				s.releaseWS(req.slot)
			}
		}()
		if ep.Check != nil {
			if err := ep.Check(s, req); err != nil {
				return err
			}
		}
		c.Locals(localWS, req)
		// Until fasthttp hands the connection to serveWS, which releases
		// the slot, a connection that closes releases it (connState).
		s.tracked.attach(nc, req.slot)
		err = c.Next()
		upgraded = err == nil && c.Response().StatusCode() == fiber.StatusSwitchingProtocols
		return err
	}
}

// wsRecover logs a panic of a connection handler. The handler's deferred
// teardown has already stopped the writer, so nothing writes here.
func (s *Server) wsRecover() {
	if e := recover(); e != nil {
		s.log.Error("panic in websocket handler", "panic", fmt.Sprint(e))
	}
}

// Conn is one WebSocket connection.
//
// Goroutines: the handler goroutine reads (readLoop) and, when the reader
// ends, tears the connection down; it hands a subscribe and a token
// refresh to a goroutine of their own and waits for it (apart), to keep
// its stack small; a writer goroutine (writeLoop) runs
// while the send queue has work (frames, a ping, a pong, the close
// frame), at most one at a time, tracked by writers, and owns every
// write but the close reply and the library's own protocol-error closes;
// command lanes, the commands the runtime runs for the connection
// (lanes.go) and the /live-score follower are tracked by wg; the ping
// timer and the token's expiry timer (connAuth) only queue, and teardown
// stops them. The handler returns only after all of them have ended,
// because the socket is then closed (hijacked). The runtime never sees the connection: it calls a
// wsSub or a command's done, which only touch q and the lanes.
type Conn struct {
	s   *Server
	ep  *Endpoint
	ws  *fws.Conn
	req *Upgrade
	q   *sendQueue

	ctx    context.Context // ends with the connection
	cancel context.CancelFunc

	writers sync.WaitGroup // the writer, while one runs
	// writeLoop as a func value, made once: "go c.writeLoop()" would
	// allocate a closure every time a writer starts.
	writeLoopFn func()
	wg          sync.WaitGroup
	pinger      *time.Timer // queues a ping every PingInterval; under q.mu
	// writeDeadline is the socket's write deadline as the writer last set
	// it (writers run one after the other, ordered by q's lock).
	writeDeadline time.Time

	// dlMu orders read-deadline changes and guards the close state. Once
	// closing is set (the server has decided to close: overflow, a close
	// frame sent, a failed write) the reader dispatches nothing more and
	// no longer extends its deadline, so a peer cannot keep a closing
	// connection open: it lingers, reading and discarding at most
	// lingerLeft more bytes, until the peer's close frame, EOF or its
	// deadline (see Config.CloseLinger).
	dlMu        sync.Mutex
	closing     bool
	lingerLeft  int64
	lingerUntil time.Time // the read deadline once set by lingerFor

	// mu guards the command lanes, the running commands and the drain
	// state (lanes.go).
	mu       sync.Mutex
	draining bool
	lanes    map[string]*lane // a stream's lane: present while something of it runs or waits
	slots    chan struct{}    // one per command in flight
	inflight counter.Counter
	cmds     cmdTracker

	subs map[string]*wsSub // the reader goroutine's only (or one it waits for: apart)

	// startNext is a command whose lane was free when the reader queued
	// it (the reader now owns that lane), for engineFrame to drive once
	// the frame's handling has returned: the runtime's call, made from the deep frames of the
	// frame's parsing and checks, would grow the reader's stack past the
	// 4 KiB its reading needs, to 8 KiB, which a parked reader keeps. The
	// reader's only.
	startNext laneStart

	auth connAuth // the token in force and its expiry timer
}

func (s *Server) serveWS(ws *fws.Conn, req *Upgrade, ep *Endpoint) {
	if req == nil {
		req = &Upgrade{}
	}
	ctx, cancel := context.WithCancel(s.base)
	c := &Conn{
		s:      s,
		ep:     ep,
		ws:     ws,
		req:    req,
		ctx:    ctx,
		cancel: cancel,
		lanes:  make(map[string]*lane),
		slots:  make(chan struct{}, s.cfg.MaxInflight),
		subs:   make(map[string]*wsSub),
	}
	c.q = newSendQueue(s.cfg.SendQueueFrames, s.cfg.SendQueueBytes, func() {
		s.metrics.slowCloses.Inc()
		// From the overflow on, the client's frames are read and
		// discarded, so that a client still sending does not block
		// before it reads its close frame. The writer sends that frame
		// once the write in progress is done (within WriteTimeout).
		c.startClosing()
	})
	c.writeLoopFn = c.writeLoop
	c.q.start = c.startWriter
	if !s.register(c) {
		cancel()
		s.releaseWS(req.slot)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "going away"), time.Now().Add(s.cfg.WriteTimeout))
		return
	}
	s.metrics.connections.Inc()
	defer s.unregister(c)
	defer s.metrics.connections.Dec()
	c.startPinger()
	c.controlHandlers()
	var readErr error
	// teardown runs even if a handler panics: the writer must be gone
	// before this function returns.
	defer func() { c.teardown(readErr) }()
	c.setPrincipal(req.principal)
	if ep.Start != nil {
		if err := ep.Start(c); err != nil {
			c.closeFor(err)
		}
	}
	readErr = c.readLoop()
}

// startWriter starts the writer; the queue calls it under its lock.
func (c *Conn) startWriter() {
	c.writers.Add(1)
	go c.writeLoopFn()
}

// startPinger queues a ping every PingInterval until the connection
// closes. A timer, not a goroutine waiting on a ticker: an idle
// connection has none.
func (c *Conn) startPinger() {
	interval := c.s.cfg.PingInterval
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	c.pinger = time.AfterFunc(interval, func() {
		if c.q.pingDue() {
			c.q.mu.Lock()
			if !c.q.stopped { // else stopPinger may have run
				c.pinger.Reset(interval)
			}
			c.q.mu.Unlock()
		}
	})
}

// stopPinger stops the ping timer, after stopNow: a ping running now
// queues nothing.
func (c *Conn) stopPinger() {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	if c.pinger != nil {
		c.pinger.Stop()
	}
}

// controlHandlers routes the reader's control writes through the writer:
// a ping's pong is queued for it, so that the reader never writes while
// the writer does (the library writes a pong at once, with a deadline of
// its own that would apply to a write in progress); the close reply
// waits until the writer has ended, so that no frame follows it. The
// reader wraps these handlers (readLoop).
func (c *Conn) controlHandlers() {
	c.ws.SetPingHandler(func(data string) error {
		c.q.pongDue(data)
		return nil
	})
	reply := c.ws.CloseHandler()
	c.ws.SetCloseHandler(func(code int, text string) error {
		c.q.stopNow()
		c.writers.Wait()
		return reply(code, text)
	})
}

// closeFor closes the connection because setting it up failed.
func (c *Conn) closeFor(err error) {
	p, internal := classify(err)
	if internal {
		c.s.log.Error("websocket setup failed", "path", c.ep.Path, "request_id", c.req.requestID, "err", err)
	}
	code := websocket.CloseInternalServerErr
	if p.Code == codeUnavailable {
		code = websocket.CloseTryAgainLater
	}
	c.q.closeWith(code, p.Code, true)
}

func (c *Conn) teardown(readErr error) {
	c.endAuth()
	c.cancel()
	for _, sub := range c.subs {
		c.dropSub(sub)
	}
	c.q.stopNow()
	c.stopPinger()
	c.writers.Wait()
	if errors.Is(readErr, websocket.ErrReadLimit) {
		c.lingerRaw()
	}
	c.wg.Wait()
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.s.log.Debug("websocket closed", "path", c.ep.Path, "request_id", c.req.requestID, "err", readErr)
	}
}

// lingerRaw reads and discards what the peer still sends after the
// library answered an oversized frame with close 1009 (the frame's rest
// cannot be parsed), until the peer closes, CloseLinger passes or the
// linger's bytes are read: closing a socket with unread data would reset
// the connection and could destroy the close frame before the peer reads
// it.
func (c *Conn) lingerRaw() {
	c.dlMu.Lock()
	c.startClosingLocked()
	if c.lingerUntil.IsZero() {
		c.lingerUntil = time.Now().Add(c.s.cfg.CloseLinger)
	}
	until, left := c.lingerUntil, c.lingerLeft
	c.dlMu.Unlock()
	if left <= 0 || !time.Now().Before(until) {
		return // the budget is spent, or the writer gave up (abort)
	}
	nc := c.ws.NetConn()
	_ = nc.SetReadDeadline(until)
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, left))
}

// extendRead pushes the read deadline PongTimeout ahead, unless closing.
func (c *Conn) extendRead() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if !c.closing {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongTimeout))
	}
}

// startClosingLocked enters the closing state, once: nothing more is
// dispatched and at most CloseLingerBytes more are read.
func (c *Conn) startClosingLocked() {
	if !c.closing {
		c.closing = true
		c.lingerLeft = c.s.cfg.CloseLingerBytes
	}
}

// startClosing enters the closing state without touching the read
// deadline: the writer sets it once the close frame is out (lingerFor),
// or ends the reading when it cannot write (abort). The send queue calls
// it on overflow, holding its lock: it must not block.
func (c *Conn) startClosing() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.startClosingLocked()
}

// lingerFor enters the closing state and gives the reader d more time
// (for the peer's close frame), and no more extensions.
func (c *Conn) lingerFor(d time.Duration) {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.startClosingLocked()
	c.lingerUntil = time.Now().Add(d)
	_ = c.ws.SetReadDeadline(c.lingerUntil)
}

// discard reports whether the connection is closing, counting n bytes
// read against the linger's budget; spent is set once the budget is
// exceeded.
func (c *Conn) discard(n int) (closing, spent bool) {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if !c.closing {
		return false, false
	}
	c.lingerLeft -= int64(n)
	return true, c.lingerLeft < 0
}

// forceClose unblocks the reader and the writer at once. The server calls
// it, holding its registry lock, when Shutdown runs out of time.
func (c *Conn) forceClose() {
	c.cancel()
	c.q.stopNow()
	c.lingerFor(0)
	_ = c.ws.NetConn().SetWriteDeadline(time.Now())
}

func (c *Conn) readLoop() error {
	c.ws.SetReadLimit(c.s.cfg.ReadLimit)
	c.extendRead()
	c.ws.SetPongHandler(func(string) error {
		c.extendRead()
		return nil
	})
	ping := c.ws.PingHandler()
	c.ws.SetPingHandler(func(data string) error {
		c.extendRead()
		return ping(data)
	})
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		c.s.metrics.framesIn.Inc()
		if closing, spent := c.discard(len(data)); closing {
			if spent {
				return errLingerSpent
			}
			continue // lingering until the peer's close frame
		}
		c.extendRead()
		// The client's requests are paced by their replies: while the
		// send queue is over half its caps the reader waits (and the
		// client's frames wait in TCP), so that a client sending many
		// requests while it reads is slowed down, never closed as a slow
		// consumer because of its own replies. Live events keep the other
		// half. A closing queue ends the wait; the frame is then dropped.
		if c.q.waitRoom(c.ctx) != nil {
			continue
		}
		if c.ep.Frame != nil {
			c.ep.Frame(c, typ, data)
		}
	}
}

// errLingerSpent ends a lingering read that has read CloseLingerBytes.
var errLingerSpent = errors.New("websocket: the peer kept sending while the connection closed")

// writeLoop is the connection's writer while it has work: started by the
// queue when something is queued and none runs, it ends when it finds the
// queue empty, so that an idle connection has no writer goroutine and
// holds no write buffer. Frames taken together are encoded into one
// buffer and written with one write (see flush).
func (c *Conn) writeLoop() {
	defer c.writers.Done()
	var (
		batch []outItem
		fw    frameWriter
	)
	defer fw.release()
	for {
		w := c.q.take(batch)
		if w.exit {
			return
		}
		if w.pong && c.control(websocket.PongMessage, w.pongData) != nil {
			c.abort()
			return
		}
		if w.ping && c.control(websocket.PingMessage, nil) != nil {
			c.abort()
			return
		}
		if err := c.writeFrames(&fw, w.items); err != nil {
			c.abort()
			return
		}
		batch = w.items
		if w.closeCode != 0 {
			_ = c.control(websocket.CloseMessage, websocket.FormatCloseMessage(w.closeCode, w.closeText))
			c.lingerFor(c.s.cfg.CloseLinger)
			return
		}
	}
}

// control writes a control frame, through the library, which records a
// close frame sent (it then writes nothing more, its close reply
// included).
func (c *Conn) control(typ int, data []byte) error {
	c.writeDeadline = time.Now().Add(c.s.cfg.WriteTimeout)
	return c.ws.WriteControl(typ, data, c.writeDeadline)
}

// extendWrite gives the next write WriteTimeout: it sets the socket's
// write deadline WriteTimeout ahead, unless the deadline already set is
// no more than an eighth of it short of that. Setting a deadline costs
// as much as a tenth of a small frame's write, and a connection that gets
// frames often keeps its deadline for many writes.
func (c *Conn) extendWrite() error {
	timeout := c.s.cfg.WriteTimeout
	next := time.Now().Add(timeout)
	if next.Sub(c.writeDeadline) <= timeout/8 {
		return nil
	}
	c.writeDeadline = next
	return c.ws.NetConn().SetWriteDeadline(next)
}

// abort ends a connection whose writes fail: the reader is unblocked now.
func (c *Conn) abort() {
	c.q.stopNow()
	c.lingerFor(0)
}

// writeFrames writes items, skipping those of ended subscriptions, and
// clears them. Their frames go into fw's buffer and out in as few writes
// as it takes.
func (c *Conn) writeFrames(fw *frameWriter, items []outItem) error {
	for i := range items {
		if c.q.discarding() {
			clear(items[i:])
			return nil
		}
		it := &items[i]
		if it.skipped() {
			*it = outItem{}
			continue
		}
		typ, data := it.typ, it.data
		if it.ev != nil {
			var ok bool
			data, ok = c.ep.frames.render(it.ev, c.ep.Render)
			if !ok {
				*it = outItem{}
				continue
			}
		}
		*it = outItem{}
		if len(data) > maxBatchedFrame {
			// A large frame goes out alone, through the library, which
			// writes it without copying it whole.
			if err := c.flush(fw); err != nil {
				return err
			}
			if err := c.writeLarge(typ, data); err != nil {
				return err
			}
			continue
		}
		if fw.len() > 0 && fw.len()+len(data)+maxHeader > flushAt {
			if err := c.flush(fw); err != nil {
				return err
			}
		}
		fw.frame(typ, data)
	}
	return c.flush(fw)
}

// flush writes the frames in fw with one write, unless the connection is
// closing without them.
func (c *Conn) flush(fw *frameWriter) error {
	if fw.len() == 0 {
		return nil
	}
	n := fw.frames
	buf := fw.take()
	if c.q.discarding() {
		return nil
	}
	if err := c.extendWrite(); err != nil {
		return err
	}
	if _, err := c.ws.NetConn().Write(buf); err != nil {
		return err
	}
	c.s.metrics.framesOut.Add(float64(n))
	return nil
}

func (c *Conn) writeLarge(typ int, data []byte) error {
	if c.q.discarding() {
		return nil
	}
	c.writeDeadline = time.Now().Add(c.s.cfg.WriteTimeout)
	if err := c.ws.SetWriteDeadline(c.writeDeadline); err != nil {
		return err
	}
	if err := c.ws.WriteMessage(typ, data); err != nil {
		return err
	}
	c.s.metrics.framesOut.Inc()
	return nil
}

// send queues an encoded text frame.
func (c *Conn) send(data []byte) bool {
	return c.q.push(outItem{typ: websocket.TextMessage, data: data, size: len(data)})
}

// sendJSON queues v as a text frame.
func (c *Conn) sendJSON(v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("encode websocket frame", "err", err)
		return false
	}
	return c.send(data)
}

// wsSub is one subscription of a connection: the actors.Sink the runtime
// delivers to, catch-up included. Its frames go into the connection's
// queue like any other; gone marks them all at once when the subscription
// ends, so that the writer skips those still queued.
type wsSub struct {
	c      *Conn
	stream string
	sub    actors.Subscription // set once Subscribe returned
	gone   atomic.Bool         // unsubscribed, replaced or the connection ended
}

// Enqueue implements actors.Sink. It never blocks.
func (s *wsSub) Enqueue(d actors.Delivery) bool {
	if s.gone.Load() {
		return true // ending: the runtime is being told
	}
	it := outItem{typ: websocket.TextMessage, skip: &s.gone}
	if d.Event == nil || d.Presence {
		if !s.c.ep.Presence {
			return true
		}
		members := d.Members
		if members == nil {
			members = []string{}
		}
		data, err := json.Marshal(presenceFrame{Op: "presence", Stream: s.stream, Members: members})
		if err != nil {
			return true
		}
		it.data, it.size = data, len(data)
	} else {
		it.ev, it.size = d.Event, eventSize(d.Event)
	}
	return s.c.q.push(it)
}

// WaitRoom implements actors.Sink: the runtime's catch-up waits until the
// connection's queue is below half its caps, so that it goes at the
// client's pace and leaves room for live frames.
func (s *wsSub) WaitRoom(ctx context.Context) error { return s.c.q.waitRoom(ctx) }

// Overflow implements actors.Sink: the runtime gave up on this
// subscriber, so the connection closes as a slow consumer (it resumes
// with "from").
func (s *wsSub) Overflow() { s.c.q.overflow() }

// subscribe starts a subscription: every event with version > from (from
// nil: after the stream's version), catch-up and live, from the runtime.
// onVersion runs once the runtime has answered, before any delivery is
// queued.
//
// It runs on a goroutine of its own (see apart): the runtime's subscribe,
// its catch-up read and a state computed for the reply go deeper than a
// reader's stack needs to be, and a stack once grown stays grown for as
// long as the connection is idle.
func (c *Conn) subscribe(stream, member string, from *uint64, onVersion func(v uint64)) (sub *wsSub, err error) {
	apart(func() { sub, err = c.subscribeHere(stream, member, from, onVersion) })
	return sub, err
}

func (c *Conn) subscribeHere(stream, member string, from *uint64, onVersion func(v uint64)) (*wsSub, error) {
	sub := &wsSub{c: c, stream: stream}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.CommandTimeout)
	defer cancel()
	as, err := c.s.cfg.API.Subscribe(ctx, actors.SubscribeRequest{
		Stream:     stream,
		Caller:     c.principal().caller(),
		From:       from,
		Member:     member,
		Sink:       sub,
		Subscribed: onVersion,
	})
	if err != nil {
		sub.gone.Store(true)
		return nil, fmt.Errorf("subscribe %s: %w", stream, err)
	}
	sub.sub = as
	return sub, nil
}

// dropSub ends a subscription: nothing more of it is written, also what
// is queued already.
func (c *Conn) dropSub(sub *wsSub) {
	sub.gone.Store(true)
	if sub.sub != nil {
		sub.sub.Cancel()
	}
}

type presenceFrame struct {
	Op      string   `json:"op"`
	Stream  string   `json:"stream"`
	Members []string `json:"members"`
}

// apart runs f on a short-lived goroutine and waits for it, so that the
// caller, a connection's reader, keeps its small stack: the runtime
// grows a goroutine's stack (doubling it) for a deep call and shrinks it
// only at a collection that finds under a quarter of it in use, which a
// reader parked in its read (some 2.5 KiB with the runtime's reserve)
// never is once its stack is 8 KiB. The caller waits, so the
// connection's requests are still handled in order. A panic of f is
// raised again on the caller's goroutine, where the connection's handler
// recovers it.
func apart(f func()) {
	var p any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { p = recover() }()
		f()
	}()
	<-done
	if p != nil {
		panic(p)
	}
}
