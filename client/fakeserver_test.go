package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/events"
)

// fakeServer speaks just enough of the /ws protocol to exercise the client:
// subscribe with catch-up from an in-memory log, unsubscribe, command →
// append + event broadcast + ack with idempotency by id, ping, presence for
// rooms, plus hooks to drop connections, lose an ack or skip an event.
//
// Everything that produces frames for a connection runs under mu and
// enqueues on the connection's bounded queue, so each connection sees
// subscribed, catch-up and live events in one total order, as the real
// server promises. A full queue closes the connection with 1008, like the
// real server's slow-consumer rule.
type fakeServer struct {
	t   testing.TB
	srv *httptest.Server

	// Set by newFakeServer's configure functions, read-only afterwards.
	token     string // required bearer token when set (see also SetTokens)
	readLimit int64
	// sloppy makes the server break its promises the way a buggy or
	// racing server might: catch-up starts a few versions early, and
	// some live event frames are sent twice or not at all.
	sloppy bool
	// blocking makes a full queue wait for the writer instead of closing
	// the connection (benchmarks measure delivery, not slow-consumer drops).
	blocking bool

	// refuse answers upgrades with 503 while set; mute leaves WebSocket
	// pings unanswered while set.
	refuse, mute atomic.Bool
	refused      atomic.Int64

	wg        sync.WaitGroup // handlers and the closers started by hooks
	closeOnce sync.Once

	mu         sync.Mutex
	epoch      string // the store's epoch; Wipe changes it
	wipes      int
	subReqs    []fakeReq // every subscribe request, in arrival order
	logs       map[string][]events.Event
	pos        uint64
	byID       map[string]events.Event // command id → the event it appended
	conns      map[*fakeConn]struct{}
	members    map[string][]string // room → users
	accepts    int
	subscribes int
	loseAck    map[string]int // command type (or "refresh") → how many replies to lose (connection dropped instead)
	skip       map[string]int // stream → how many live event frames to leave out
	liveN      int            // live events sent so far, for sloppy
	closed     bool
	tokens     map[string]int64 // when set, the valid tokens (instead of token) and their exp
	upgrades   []string         // the bearer token of every upgrade, in order
}

type fakeConn struct {
	ws   *websocket.Conn
	out  chan []byte
	gone chan struct{} // closed when the connection ends: the writer stops
	wrot chan struct{} // closed when the writer has stopped
	subs map[string]string
	dead bool // under fakeServer.mu: no more frames
}

type fakeReq struct {
	Op     string          `json:"op"`
	Ref    string          `json:"ref"`
	Stream string          `json:"stream"`
	From   *uint64         `json:"from"`
	User   string          `json:"user"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	ID     string          `json:"id"`
	Epoch  string          `json:"epoch"`
	Token  string          `json:"token"`
}

// newFakeServer starts a server; configure sets fields such as token,
// readLimit, sloppy or blocking before it accepts anything.
func newFakeServer(t testing.TB, configure ...func(*fakeServer)) *fakeServer {
	f := &fakeServer{
		t:         t,
		readLimit: 64 << 10,
		epoch:     "epoch-0",
		logs:      map[string][]events.Event{},
		byID:      map[string]events.Event{},
		conns:     map[*fakeConn]struct{}{},
		members:   map[string][]string{},
		loseAck:   map[string]int{},
		skip:      map[string]int{},
	}
	for _, c := range configure {
		c(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) URL() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws" }

// Close stops the server: every connection is dropped and every goroutine
// of the server has returned when it does.
func (f *fakeServer) Close() {
	f.closeOnce.Do(func() {
		f.srv.Close() // no new requests; upgraded ones are on their own
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.DropAll(0)
		f.wg.Wait()
	})
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	f.upgrades = append(f.upgrades, bearer)
	_, valid := f.tokens[bearer]
	if f.tokens == nil {
		valid = f.token == "" || bearer == f.token
	}
	f.mu.Unlock()
	if !valid {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if f.refuse.Load() {
		f.refused.Add(1)
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool { return !f.mute.Load() },
	})
	if err != nil {
		return
	}
	ws.SetReadLimit(f.readLimit)
	fc := &fakeConn{ws: ws, out: make(chan []byte, 1024), gone: make(chan struct{}), wrot: make(chan struct{}), subs: map[string]string{}}
	f.mu.Lock()
	f.conns[fc] = struct{}{}
	f.accepts++
	if f.closed {
		f.drop(fc, 0)
	}
	f.mu.Unlock()

	go func() {
		defer close(fc.wrot)
		for {
			select {
			case b := <-fc.out:
				if ws.Write(context.Background(), websocket.MessageText, b) != nil {
					return
				}
			case <-fc.gone:
				return
			}
		}
	}()
	for {
		_, b, err := ws.Read(context.Background())
		if err != nil {
			break
		}
		f.handle(fc, b)
	}
	f.mu.Lock()
	fc.dead = true
	delete(f.conns, fc)
	for stream, user := range fc.subs {
		f.leave(stream, user)
	}
	f.mu.Unlock()
	close(fc.gone)
	<-fc.wrot
	_ = ws.CloseNow()
}

func (f *fakeServer) handle(fc *fakeConn, b []byte) {
	var req fakeReq
	if err := json.Unmarshal(b, &req); err != nil {
		f.mu.Lock()
		f.send(fc, map[string]any{"op": "error", "code": "bad_request", "message": "bad json"})
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(m map[string]any) {
		if req.Ref != "" {
			m["ref"] = req.Ref
		}
		f.send(fc, m)
	}
	fail := func(code, msg string) { reply(map[string]any{"op": "error", "code": code, "message": msg}) }
	switch req.Op {
	case "ping":
		reply(map[string]any{"op": "pong"})
	case "refresh":
		switch exp, ok := f.tokens[req.Token]; {
		case req.Token == "":
			fail("bad_request", "token is required")
		case !ok:
			fail("unauthorized", "invalid token: bad signature")
		case f.loseAck["refresh"] > 0:
			f.loseAck["refresh"]--
			f.drop(fc, 0)
		default:
			reply(map[string]any{"op": "refreshed", "exp": exp})
		}
	case "subscribe":
		if !events.ValidStreamID(req.Stream) {
			fail("bad_request", "bad stream id")
			return
		}
		if _, dup := fc.subs[req.Stream]; dup {
			fail("bad_request", "already subscribed")
			return
		}
		f.subReqs = append(f.subReqs, req)
		if req.From != nil && req.Epoch != "" && req.Epoch != f.epoch {
			fail("epoch_changed", "the store was replaced; subscribe again from 0 without epoch")
			return
		}
		f.subscribes++
		fc.subs[req.Stream] = req.User
		log := f.logs[req.Stream]
		reply(map[string]any{"op": "subscribed", "stream": req.Stream, "version": len(log), "epoch": f.epoch})
		if req.From != nil {
			from := min(*req.From, uint64(len(log)))
			if f.sloppy {
				from -= min(from, 5)
			}
			for _, e := range log[from:] {
				f.send(fc, eventFrame(e))
			}
		}
		if req.User != "" && strings.HasPrefix(req.Stream, "room:") {
			f.members[req.Stream] = append(f.members[req.Stream], req.User)
			f.broadcastPresence(req.Stream)
		}
	case "unsubscribe":
		if user, ok := fc.subs[req.Stream]; ok {
			delete(fc.subs, req.Stream)
			f.leave(req.Stream, user)
		}
		reply(map[string]any{"op": "unsubscribed", "stream": req.Stream})
	case "command":
		if !events.ValidStreamID(req.Stream) {
			fail("bad_request", "bad stream id")
			return
		}
		if req.Type == "Reject" {
			fail("conflict", "rejected as asked")
			return
		}
		if e, ok := f.byID[req.ID]; ok && req.ID != "" {
			reply(map[string]any{"op": "ack", "stream": e.Stream, "version": e.Version})
			return
		}
		e := f.appendLocked(req.Stream, req.Type, req.Data, req.ID)
		if req.ID != "" {
			f.byID[req.ID] = e
		}
		if f.loseAck[req.Type] > 0 {
			f.loseAck[req.Type]--
			f.drop(fc, 0)
			return
		}
		reply(map[string]any{"op": "ack", "stream": e.Stream, "version": e.Version})
	default:
		fail("bad_request", "unknown op")
	}
}

// send enqueues a frame; called with mu held.
func (f *fakeServer) send(fc *fakeConn, m any) {
	if fc.dead {
		return
	}
	b, ok := m.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(m); err != nil {
			panic(err)
		}
	}
	if f.blocking {
		select {
		case fc.out <- b:
		case <-fc.wrot:
		}
		return
	}
	select {
	case fc.out <- b:
	default:
		f.drop(fc, websocket.StatusPolicyViolation)
	}
}

// drop ends a connection: code 0 abruptly, otherwise with a close
// handshake. Called with mu held, so the handshake runs on its own
// goroutine, owned by f.wg.
func (f *fakeServer) drop(fc *fakeConn, code websocket.StatusCode) {
	if fc.dead {
		return
	}
	fc.dead = true
	if code == 0 {
		_ = fc.ws.CloseNow()
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = fc.ws.Close(code, "fake server says "+code.String())
	}()
}

func eventFrame(e events.Event) []byte {
	env, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return append([]byte(`{"op":"event",`), env[1:]...)
}

func (f *fakeServer) appendLocked(stream, typ string, data json.RawMessage, id string) events.Event {
	f.pos++
	if id == "" {
		id = fmt.Sprintf("ev-%d", f.pos)
	}
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	e := events.Event{
		Stream: stream, Version: uint64(len(f.logs[stream]) + 1), Position: f.pos,
		ID: id, Type: typ, Time: time.Unix(0, 0).UTC(), Data: data,
	}
	f.logs[stream] = append(f.logs[stream], e)
	if f.skip[stream] > 0 {
		f.skip[stream]--
		return e
	}
	frame := eventFrame(e)
	copies := 1
	if f.sloppy {
		f.liveN++
		switch {
		case f.liveN%97 == 0:
			copies = 0
		case f.liveN%7 == 0:
			copies = 2
		}
	}
	for fc := range f.conns {
		if _, ok := fc.subs[stream]; ok {
			for range copies {
				f.send(fc, frame)
			}
		}
	}
	return e
}

func (f *fakeServer) leave(stream, user string) {
	if user == "" || !strings.HasPrefix(stream, "room:") {
		return
	}
	m := f.members[stream]
	for i, u := range m {
		if u == user {
			f.members[stream] = append(m[:i:i], m[i+1:]...)
			break
		}
	}
	f.broadcastPresence(stream)
}

func (f *fakeServer) broadcastPresence(stream string) {
	frame := map[string]any{"op": "presence", "stream": stream, "members": append([]string{}, f.members[stream]...)}
	for fc := range f.conns {
		if _, ok := fc.subs[stream]; ok {
			f.send(fc, frame)
		}
	}
}

// Append appends an event as if a command had been handled elsewhere.
func (f *fakeServer) Append(stream string) events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appendLocked(stream, "Appended", json.RawMessage(`{"n":1}`), "")
}

// Wipe replaces the store by an empty one with a new epoch, as a restart
// on a wiped data directory would, dropping every connection at the same
// moment (a real server's epoch never changes under a live connection).
func (f *fakeServer) Wipe() (epoch string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		f.drop(fc, websocket.StatusGoingAway)
	}
	f.wipes++
	f.epoch = fmt.Sprintf("epoch-%d", f.wipes)
	f.logs = map[string][]events.Event{}
	f.byID = map[string]events.Event{}
	f.pos = 0
	return f.epoch
}

// Epoch is the store's current epoch.
func (f *fakeServer) Epoch() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}

// SubscribeRequests returns every subscribe request received so far.
func (f *fakeServer) SubscribeRequests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.subReqs...)
}

// DropAll ends every connection: code 0 abruptly, else with that close code.
func (f *fakeServer) DropAll(code websocket.StatusCode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		f.drop(fc, code)
	}
}

func (f *fakeServer) LoseAck(typ string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseAck[typ] = n
}

func (f *fakeServer) SkipEvents(stream string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.skip[stream] = n
}

func (f *fakeServer) Log(stream string) []events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]events.Event(nil), f.logs[stream]...)
}

// Stats reports connections accepted so far, subscribe requests handled,
// and subscriptions held by live connections.
func (f *fakeServer) Stats() (accepts, subscribes, subscribers int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if !fc.dead {
			subscribers += len(fc.subs)
		}
	}
	return f.accepts, f.subscribes, subscribers
}

// SetTokens makes tokens (with their exp, for refreshed) the only valid
// ones, for upgrades and refresh alike.
func (f *fakeServer) SetTokens(tokens map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = tokens
}

// Upgrades returns the bearer token of every upgrade request so far.
func (f *fakeServer) Upgrades() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.upgrades...)
}
