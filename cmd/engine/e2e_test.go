package main

// End-to-end tests: the real Main (embedded Pebble store in a temp dir, the
// actor runtime, the Fiber server on 127.0.0.1:0) driven by real HTTP and
// WebSocket clients. This file holds the harness and the seed application's
// routes; e2e_ws_test.go the /ws protocol and restarts, e2e_errors_test.go
// bad input, e2e_lifecycle_test.go shutdown and the start-up line,
// e2e_export_test.go `engine export` and `engine import`, e2e_epoch_test.go
// a client resuming against a wiped store.
//
// Every wait is on a channel or a poll with a deadline (e2eTimeout); t.Fatal
// is only called on the test goroutine, helper goroutines hand their errors
// back through channels.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/mail"
)

// e2eTimeout bounds every wait of a test. It is generous on purpose: the
// tests run with -race on a loaded machine, and a deadline only fires when
// something is broken.
const e2eTimeout = 30 * time.Second

// syncBuffer is a bytes.Buffer that loggers on many goroutines may write to
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// engine is one running Main and the clients' view of it.
type engine struct {
	t      *testing.T
	m      *Main
	dir    string
	addr   string // host:port
	base   string // http://host:port
	ws     string // ws://host:port
	http   *http.Client
	logs   *syncBuffer
	closed bool
}

// engineOption adjusts a Main's configuration before Open.
type engineOption func(*Main)

// newMain is a Main for tests: port 0, data in dir, a 200 ms cook time,
// fast step retries, logs into a buffer that is shown when the test fails.
func newMain(dir string, logs io.Writer, opts ...engineOption) *Main {
	m := NewMain()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.DataDir = dir
	m.Config.CookTime = 200 * time.Millisecond
	m.Config.StepBackoff = 10 * time.Millisecond
	m.Config.ShutdownGrace = e2eTimeout
	m.Logger = slog.New(slog.NewTextHandler(logs, nil))
	for _, o := range opts {
		o(m)
	}
	return m
}

// startEngine opens a Main on dir and closes it when the test ends.
func startEngine(t *testing.T, dir string, opts ...engineOption) *engine {
	t.Helper()
	logs := &syncBuffer{}
	m := newMain(dir, logs, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := m.Open(ctx); err != nil {
		t.Fatalf("Open: %v\n%s", err, logs.String())
	}
	return newEngine(t, m, logs)
}

func newEngine(t *testing.T, m *Main, logs *syncBuffer) *engine {
	e := &engine{
		t:    t,
		m:    m,
		dir:  m.Config.DataDir,
		addr: m.Addr(),
		base: "http://" + m.Addr(),
		ws:   "ws://" + m.Addr(),
		// Its own transport, so that closing idle connections at the end
		// leaves no keep-alive goroutine behind.
		http: &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{}},
		logs: logs,
	}
	t.Cleanup(func() {
		if !e.closed {
			if err := e.close(); err != nil {
				t.Errorf("close engine: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("engine log (%s):\n%s", e.addr, e.logs.String())
		}
	})
	return e
}

// close shuts the engine down (Main.Close) and drops the client's idle
// connections.
func (e *engine) close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	err := e.m.Close(ctx)
	e.http.CloseIdleConnections()
	return err
}

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// problem is the body of an error reply.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// request sends one HTTP request. A body is sent as application/json
// unless hdr sets Content-Type. Safe on any goroutine.
func (e *engine) request(method, path string, body []byte, hdr map[string]string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// do is request for the test goroutine: a transport error fails the test.
func (e *engine) do(method, path string, body []byte, hdr map[string]string) reply {
	e.t.Helper()
	r, err := e.request(method, path, body, hdr)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// command posts a command to a stream and expects 200.
func (e *engine) command(stream, typ string, data any) {
	e.t.Helper()
	body := mustJSON(e.t, map[string]any{"type": typ, "data": data})
	if r := e.do("POST", "/streams/"+stream+"/commands", body, nil); r.status != http.StatusOK {
		e.t.Fatalf("%s on %s: %s", typ, stream, r)
	}
}

// state reads a stream's state and expects 200.
func (e *engine) state(stream string) json.RawMessage {
	e.t.Helper()
	r := e.do("GET", "/streams/"+stream, nil, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /streams/%s: %s", stream, r)
	}
	return r.body
}

// stateField reads one top-level field of a stream's state ("" when the
// stream has no events yet).
func (e *engine) stateField(stream, field string) (string, error) {
	r, err := e.request("GET", "/streams/"+stream, nil, nil)
	if err != nil {
		return "", err
	}
	if r.status == http.StatusNotFound {
		return "", nil
	}
	if r.status != http.StatusOK {
		return "", fmt.Errorf("GET /streams/%s: %s", stream, r)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(m[field], &s); err != nil {
		return string(m[field]), nil
	}
	return s, nil
}

// allEvents reads the whole log from the running engine's store.
func (e *engine) allEvents() []events.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	evs, err := e.m.Store().ReadAll(ctx, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectProblem checks an error reply: status, problem+json, and code.
func expectProblem(t *testing.T, r reply, status int, code string) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %s, want %d %s", r, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Code != code || p.Status != status {
		t.Fatalf("problem: got %+v, want status %d code %s", p, status, code)
	}
	return p
}

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// collector gathers values that callbacks on other goroutines report,
// without ever blocking them, and lets the test goroutine wait for a
// condition on what has arrived.
type collector[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{} // cap 1: something arrived since the last look
}

func newCollector[T any]() *collector[T] {
	return &collector[T]{changed: make(chan struct{}, 1)}
}

func (c *collector[T]) add(v T) {
	c.mu.Lock()
	c.items = append(c.items, v)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector[T]) snapshot() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.items)
}

// waitFor waits until ok holds for everything collected so far and returns
// that. Test goroutine only.
func (c *collector[T]) waitFor(t *testing.T, what string, ok func([]T) bool) []T {
	t.Helper()
	deadline := time.NewTimer(e2eTimeout)
	defer deadline.Stop()
	for {
		items := c.snapshot()
		if ok(items) {
			return items
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; have %d items: %v", what, len(items), items)
		}
	}
}

// rawMsg is one WebSocket message as it arrived.
type rawMsg struct {
	typ  websocket.MessageType
	data []byte
}

// rawConn is a plain coder/websocket connection with a reader goroutine
// that reads every message (so control frames are answered) into a
// channel, and records why reading ended.
type rawConn struct {
	c      *websocket.Conn
	msgs   chan rawMsg // closed when reading ends; err is then set
	err    error
	cancel context.CancelFunc
}

// dialRaw opens a WebSocket to the engine. Test goroutine only.
func (e *engine) dialRaw(t *testing.T, path string, hdr http.Header) *rawConn {
	t.Helper()
	rc, resp, err := e.tryDialRaw(path, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { rc.c.CloseNow(); rc.cancel() })
	return rc
}

// tryDialRaw dials; on a refused upgrade it returns the HTTP response.
func (e *engine) tryDialRaw(path string, hdr http.Header) (*rawConn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.ws+path, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: e.http})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(4 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	rc := &rawConn{c: c, msgs: make(chan rawMsg, 4096), cancel: rcancel}
	go func() {
		defer close(rc.msgs)
		for {
			typ, data, err := c.Read(rctx)
			if err != nil {
				rc.err = err
				return
			}
			rc.msgs <- rawMsg{typ, data}
		}
	}()
	return rc, resp, nil
}

func (rc *rawConn) writeText(t *testing.T, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := rc.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write %.80q: %v", s, err)
	}
}

func (rc *rawConn) writeJSON(t *testing.T, v any) {
	t.Helper()
	rc.writeText(t, string(mustJSON(t, v)))
}

// next returns the next message; it fails the test if the connection ends
// or nothing comes in time.
func (rc *rawConn) next(t *testing.T) rawMsg {
	t.Helper()
	select {
	case m, ok := <-rc.msgs:
		if !ok {
			t.Fatalf("connection ended: %v", rc.err)
		}
		return m
	case <-time.After(e2eTimeout):
		t.Fatal("no message in time")
	}
	panic("unreachable")
}

// nextText is next, expecting a text message.
func (rc *rawConn) nextText(t *testing.T) string {
	t.Helper()
	m := rc.next(t)
	if m.typ != websocket.MessageText {
		t.Fatalf("got a %v message %q, want text", m.typ, m.data)
	}
	return string(m.data)
}

// wsFrame is any server frame of /ws: an event frame's envelope fields
// land in the embedded Event.
type wsFrame struct {
	Op      string   `json:"op"`
	Ref     *string  `json:"ref"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Members []string `json:"members"`
	events.Event
}

func (rc *rawConn) nextFrame(t *testing.T) wsFrame {
	t.Helper()
	s := rc.nextText(t)
	var f wsFrame
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatalf("frame %q: %v", s, err)
	}
	return f
}

// nextReply skips event and presence frames and returns the next reply.
func (rc *rawConn) nextReply(t *testing.T) wsFrame {
	t.Helper()
	for {
		f := rc.nextFrame(t)
		if f.Op != "event" && f.Op != "presence" {
			return f
		}
	}
}

// closeStatus drains the connection until it ends and returns the close
// code the server sent (-1 for none).
func (rc *rawConn) closeStatus(t *testing.T) (websocket.StatusCode, []rawMsg) {
	t.Helper()
	var rest []rawMsg
	timeout := time.After(e2eTimeout)
	for {
		select {
		case m, ok := <-rc.msgs:
			if !ok {
				return websocket.CloseStatus(rc.err), rest
			}
			rest = append(rest, m)
		case <-timeout:
			t.Fatal("the connection did not end in time")
		}
	}
}

func ref(s string) *string { return &s }

func refString(p *string) string {
	if p == nil {
		return "<none>"
	}
	return *p
}

// --- the seed application ------------------------------------------------

func TestE2EChatEchoes(t *testing.T) {
	e := startEngine(t, t.TempDir())
	c := e.dialRaw(t, "/chat", nil)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	tests := []struct {
		name string
		typ  websocket.MessageType
		in   []byte
		want []byte
	}{
		{"text", websocket.MessageText, []byte("hello"), []byte("You said: hello")},
		{"empty text", websocket.MessageText, []byte(""), []byte("You said: ")},
		{"unicode text", websocket.MessageText, []byte("héllo, wörld ✓"), []byte("You said: héllo, wörld ✓")},
		{"binary", websocket.MessageBinary, []byte{0, 1, 2, 0xff, 0xfe}, []byte{0, 1, 2, 0xff, 0xfe}},
		{"large binary", websocket.MessageBinary, bytes.Repeat([]byte{7, 0}, 16<<10), bytes.Repeat([]byte{7, 0}, 16<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.c.Write(ctx, tc.typ, tc.in); err != nil {
				t.Fatal(err)
			}
			m := c.next(t)
			if m.typ != tc.typ || !bytes.Equal(m.data, tc.want) {
				t.Fatalf("got %v %.60q, want %v %.60q", m.typ, m.data, tc.typ, tc.want)
			}
		})
	}
}

func TestE2EChatRoomDeliversToEveryMember(t *testing.T) {
	e := startEngine(t, t.TempDir())
	users := []string{"ann", "bob", "cy"}
	conns := make([]*rawConn, len(users))
	for i, u := range users {
		conns[i] = e.dialRaw(t, "/chat-room?user="+u, nil)
	}
	// A member's own message comes back to it only once its subscription
	// runs (the transport subscribes before reading the first frame), so
	// an echoed hello proves each member is listening before the real
	// messages go out.
	for i, u := range users {
		conns[i].writeText(t, "hello from "+u)
		want := u + ": hello from " + u
		for got := ""; got != want; {
			got = conns[i].nextText(t)
		}
	}
	for i, u := range users {
		conns[i].writeText(t, "message "+u)
	}
	var orders [][]string
	for i, u := range users {
		var got []string
		for len(got) < len(users) {
			s := conns[i].nextText(t)
			if strings.Contains(s, ": hello from ") {
				continue // another member's hello, sent before this one joined or after
			}
			got = append(got, s)
		}
		want := []string{"ann: message ann", "bob: message bob", "cy: message cy"}
		if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, want) {
			t.Errorf("%s received %q, want each of %q once", u, got, want)
		}
		orders = append(orders, got)
	}
	// Every member sees the room's order, which is the log's.
	for i := range orders {
		if !slices.Equal(orders[i], orders[0]) {
			t.Errorf("%s saw %q, %s saw %q: members disagree on the order", users[i], orders[i], users[0], orders[0])
		}
	}
	var logged []string
	for _, ev := range e.allEvents() {
		if ev.Stream != "room:lobby" {
			continue
		}
		var d struct{ User, Text string }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.Text, "message ") {
			logged = append(logged, d.User+": "+d.Text)
		}
	}
	if !slices.Equal(logged, orders[0]) {
		t.Errorf("room:lobby holds %q, members received %q", logged, orders[0])
	}
}

func TestE2ELiveScoreBroadcastsEveryUpdate(t *testing.T) {
	e := startEngine(t, t.TempDir())
	var conns []*rawConn
	for range 3 {
		conns = append(conns, e.dialRaw(t, "/live-score", nil))
	}
	updates := []struct {
		game, team string
		score      int
	}{
		{"main", "home", 1}, {"main", "away", 1}, {"cup", "reds", 3}, {"main", "home", 2}, {"", "away", 4},
	}
	var want []string
	for _, u := range updates {
		q := fmt.Sprintf("/update-score?team=%s&score=%d", u.team, u.score)
		game := u.game
		if game != "" {
			q += "&game=" + game
		} else {
			game = "main" // the default
		}
		r := e.do("POST", q, nil, nil)
		if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"updated":true}` {
			t.Fatalf("POST %s: %s", q, r)
		}
		want = append(want, string(mustJSON(t, map[string]any{"game": game, "team": u.team, "score": u.score})))
	}
	for i, c := range conns {
		for j, w := range want {
			got := c.nextText(t)
			if !jsonEqual(t, got, w) {
				t.Fatalf("client %d, update %d: got %s, want %s", i, j, got, w)
			}
		}
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return fmt.Sprint(va) == fmt.Sprint(vb)
}

// heldMailer is a Mailer that holds every Send until the test releases it,
// then hands it to the real outbox.
type heldMailer struct {
	inner   mail.Sender
	entered chan string // one key per Send that started
	release chan struct{}
	once    sync.Once
}

func (h *heldMailer) Send(ctx context.Context, key string, msg decider.Email) error {
	select {
	case h.entered <- key:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.inner.Send(ctx, key, msg)
}

func (h *heldMailer) open() { h.once.Do(func() { close(h.release) }) }

func TestE2ESignupAnswersBeforeTheMailer(t *testing.T) {
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox")
	mailer := &heldMailer{
		inner:   mail.NewOutbox(outbox),
		entered: make(chan string, 8),
		release: make(chan struct{}),
	}
	e := startEngine(t, dir, func(m *Main) { m.Mailer = mailer })
	t.Cleanup(mailer.open) // runs before the engine's close: a held Send must not stall it

	emls := func() []string {
		files, err := filepath.Glob(filepath.Join(outbox, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		return files
	}

	r := e.do("POST", "/signup", []byte(`{"email":"Ann@Example.com","name":"Ann"}`), nil)
	// The mailer is still held: the 202 cannot have waited for the email.
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /signup: %s", r)
	}
	var body struct{ Message, User string }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Message != "Welcome!" || !strings.HasPrefix(body.User, "user:") {
		t.Fatalf("POST /signup body: %s", r.body)
	}

	select {
	case <-mailer.entered:
	case <-time.After(e2eTimeout):
		t.Fatal("the welcome email was never sent")
	}
	if f := emls(); len(f) != 0 {
		t.Fatalf("outbox holds %v before the mailer was released", f)
	}
	if s, err := e.stateField(body.User, "welcome_email"); err != nil || s != "pending" {
		t.Fatalf("welcome_email before release: %q, %v; want pending", s, err)
	}

	mailer.open()
	eventually(t, "the welcome email in the outbox", func() (bool, error) { return len(emls()) == 1, nil })
	eventually(t, "welcome_email done", func() (bool, error) {
		s, err := e.stateField(body.User, "welcome_email")
		return s == "done", err
	})
	msg, err := os.ReadFile(emls()[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.ToLower(msg), []byte("ann@example.com")) {
		t.Errorf("the email is not addressed to ann@example.com:\n%s", msg)
	}
}

func TestE2EOrdersCookConcurrently(t *testing.T) {
	// The cook time is long next to what placing 20 orders takes, so that
	// every order is in the kitchen before the first is ready, however
	// slow the machine. The assertion is on the log's order, not a clock.
	const (
		n    = 20
		cook = time.Second
	)
	e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.CookTime = cook })
	type result struct {
		item string
		r    reply
		err  error
	}
	results := make(chan result, n)
	start := time.Now()
	for i := range n {
		item := fmt.Sprintf("dish-%02d", i)
		go func() {
			r, err := e.request("POST", "/order/"+item, nil, nil)
			results <- result{item, r, err}
		}()
	}
	for range n {
		var res result
		select {
		case res = <-results:
		case <-time.After(e2eTimeout):
			t.Fatal("an order did not finish in time")
		}
		if res.err != nil {
			t.Fatal(res.err)
		}
		want := fmt.Sprintf(`{"order":%q,"status":"ready!"}`, res.item)
		if res.r.status != http.StatusOK || !jsonEqual(t, string(res.r.body), want) {
			t.Fatalf("POST /order/%s: %s, want 200 %s", res.item, res.r, want)
		}
	}
	elapsed := time.Since(start)

	notified := map[string]events.Event{}
	ready := map[string]events.Event{}
	items := map[string]string{}
	for _, ev := range e.allEvents() {
		switch ev.Type {
		case "OrderPlaced":
			var d struct {
				Items []struct{ Name string }
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil || len(d.Items) != 1 {
				t.Fatalf("OrderPlaced %s: %s (%v)", ev.Stream, ev.Data, err)
			}
			items[ev.Stream] = d.Items[0].Name
		case "KitchenNotified":
			notified[ev.Stream] = ev
		case "OrderReady":
			ready[ev.Stream] = ev
		}
	}
	if len(items) != n || len(notified) != n || len(ready) != n {
		t.Fatalf("%d orders placed, %d notified, %d ready; want %d each", len(items), len(notified), len(ready), n)
	}
	var lastNotified, firstReady events.Event
	for s, nv := range notified {
		rv, ok := ready[s]
		if !ok {
			t.Fatalf("%s never ready", s)
		}
		// The cook step really waited for the cook time (times are ms).
		if d := rv.Time.Sub(nv.Time); d < cook-time.Millisecond {
			t.Errorf("%s: ready %s after the kitchen was notified, want ≥ %s", s, d, cook)
		}
		if nv.Position > lastNotified.Position {
			lastNotified = nv
		}
		if firstReady.Position == 0 || rv.Position < firstReady.Position {
			firstReady = rv
		}
	}
	// Each order's cook starts once its KitchenNotified is durable and
	// ends with its OrderReady: every cook had started before the first
	// one finished, so all 20 cooked at the same time.
	if lastNotified.Position > firstReady.Position {
		t.Errorf("%s reached the kitchen (position %d) after %s was ready (position %d): the orders did not cook concurrently",
			lastNotified.Stream, lastNotified.Position, firstReady.Stream, firstReady.Position)
	}
	// A very generous check of the same property on the clock: a kitchen
	// cooking one order at a time would need n × cook.
	if elapsed >= n*cook/2 {
		t.Errorf("%d orders of %s each took %s in all", n, cook, elapsed)
	}
	t.Logf("%d orders with a %s cook time answered in %s", n, cook, elapsed)
	for s, item := range items {
		if st, err := e.stateField(s, "status"); err != nil || st != "ready" {
			t.Errorf("%s (%s): status %q, %v; want ready", s, item, st, err)
		}
	}
}

func TestE2EHTTPStreamRoutes(t *testing.T) {
	e := startEngine(t, t.TempDir())
	post := func(text string, hdr map[string]string) reply {
		t.Helper()
		body := mustJSON(t, map[string]any{"type": "PostMessage", "data": map[string]string{"user": "ann", "text": text}})
		return e.do("POST", "/streams/room%3Alobby/commands", body, hdr)
	}
	type commandReply struct {
		Stream  string
		Version uint64
		Events  []events.Event
	}
	decode := func(r reply) commandReply {
		t.Helper()
		var c commandReply
		if r.status != http.StatusOK {
			t.Fatalf("command: %s", r)
		}
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	first := decode(post("one", map[string]string{"Idempotency-Key": "k-1"}))
	if first.Stream != "room:lobby" || first.Version != 1 || len(first.Events) != 1 || first.Events[0].Type != "MessagePosted" {
		t.Fatalf("first command: %+v", first)
	}
	t.Run("a repeated Idempotency-Key returns the first reply", func(t *testing.T) {
		again := decode(post("one", map[string]string{"Idempotency-Key": "k-1"}))
		if again.Version != 1 || len(again.Events) != 1 || again.Events[0].ID != first.Events[0].ID {
			t.Fatalf("repeat: %+v, want %+v", again, first)
		}
	})
	t.Run("a matching If-Match", func(t *testing.T) {
		r := post("two", map[string]string{"If-Match": `"1"`})
		if c := decode(r); c.Version != 2 || r.header.Get("ETag") != `"2"` {
			t.Fatalf("If-Match 1: %s (ETag %s)", r, r.header.Get("ETag"))
		}
	})
	for i := 3; i <= 5; i++ {
		decode(post(fmt.Sprint(i), nil))
	}
	t.Run("events, paged", func(t *testing.T) {
		var all []uint64
		for from := uint64(0); ; {
			r := e.do("GET", fmt.Sprintf("/streams/room:lobby/events?from=%d&limit=2", from), nil, nil)
			var page struct {
				Events []events.Event
				Next   uint64
			}
			if r.status != http.StatusOK {
				t.Fatalf("events: %s", r)
			}
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Events) == 0 {
				if page.Next != from {
					t.Fatalf("empty page: next %d, want %d", page.Next, from)
				}
				break
			}
			all = append(all, versionsOf(page.Events)...)
			from = page.Next
		}
		if !slices.Equal(all, []uint64{1, 2, 3, 4, 5}) {
			t.Fatalf("paged versions %v, want 1..5 (the repeat appended nothing)", all)
		}
	})
	t.Run("state", func(t *testing.T) {
		var st struct {
			Stream   string
			Version  uint64
			Messages []struct{ Text string }
		}
		if err := json.Unmarshal(e.state("room%3Alobby"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Stream != "room:lobby" || st.Version != 5 || len(st.Messages) != 5 || st.Messages[0].Text != "one" {
			t.Fatalf("state: %+v", st)
		}
	})
	t.Run("probes and metrics", func(t *testing.T) {
		c := e.dialRaw(t, "/chat", nil) // one open WebSocket for the gauge
		c.writeText(t, "x")
		c.nextText(t)
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := e.do("GET", p, nil, nil); r.status != http.StatusOK {
				t.Errorf("%s: %s", p, r)
			}
		}
		r := e.do("GET", "/metrics", nil, nil)
		for _, want := range []string{"engine_connections 1", "engine_ws_frames_total", `engine_commands_total{kind="room"`, "engine_append_seconds", "engine_slow_consumer_closes_total", "engine_active_actors", "go_goroutines"} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}
