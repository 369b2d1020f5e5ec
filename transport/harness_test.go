package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/mail"
)

// testTimeout bounds every wait of a test: a deadline, never a sleep.
const testTimeout = 20 * time.Second

// harness is a real Server on 127.0.0.1:0 in front of the real actor
// runtime with every kind and an in-memory store, with a faultAPI in
// between to hold or fail chosen calls.
type harness struct {
	t        testing.TB
	srv      *Server
	rt       *actors.Runtime
	store    *memstore.Store
	api      *faultAPI
	reg      *prometheus.Registry
	metrics  *Metrics
	base     string // http://host:port
	wsBase   string // ws://host:port
	http     *http.Client
	serveErr chan error
	logs     *logSink
	closed   bool
}

type option func(*Config)

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	return newHarnessLn(t, nil, opts...)
}

// newHarnessLn is newHarness with the listener wrapped by wrap.
func newHarnessLn(t testing.TB, wrap func(net.Listener) net.Listener, opts ...option) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	store := memstore.New()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := actors.New(actors.Config{
		Store:       store,
		Kinds:       kinds.All(),
		CookTime:    5 * time.Millisecond,
		StepBackoff: time.Millisecond,
		Mailer:      mail.NewOutbox(t.TempDir()),
		Observer:    m,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, rt: rt, store: store, api: &faultAPI{API: rt}, reg: reg, metrics: m, logs: &logSink{}, serveErr: make(chan error, 1)}
	cfg := Config{
		API:        h.api,
		Log:        store,
		Logger:     slog.New(h.logs),
		Metrics:    m,
		Registerer: reg,
		Gatherer:   reg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	h.base = "http://" + ln.Addr().String()
	h.wsBase = "ws://" + ln.Addr().String()
	h.http = &http.Client{Timeout: testTimeout, Transport: &http.Transport{}}
	go func() { h.serveErr <- h.srv.Serve(ln) }()
	t.Cleanup(h.close)
	return h
}

// close shuts everything down in the engine's order; it fails the test if
// the server does not stop cleanly.
func (h *harness) close() {
	if h.closed {
		return
	}
	h.closed = true
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	h.http.CloseIdleConnections()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-h.serveErr:
		if err != nil {
			h.t.Errorf("Serve: %v", err)
		}
	case <-ctx.Done():
		h.t.Errorf("Serve did not return after Shutdown")
	}
	h.api.releaseAll()
	if err := h.rt.Stop(ctx); err != nil {
		h.t.Errorf("runtime Stop: %v", err)
	}
	_ = h.store.Close()
}

// faultAPI passes calls to the runtime, except that a test can make an
// Execute wait for a release, or fail.
type faultAPI struct {
	actors.API
	mu    sync.Mutex
	holds map[string]*hold // by command type
	fail  map[string]error // by command type
}

type hold struct {
	entered chan events.Command // one value per held call
	release chan struct{}
	once    sync.Once
}

func (f *faultAPI) holdType(typ string) *hold {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holds == nil {
		f.holds = make(map[string]*hold)
	}
	h := &hold{entered: make(chan events.Command, 64), release: make(chan struct{})}
	f.holds[typ] = h
	return h
}

func (h *hold) open() { h.once.Do(func() { close(h.release) }) }

func (f *faultAPI) failType(typ string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = make(map[string]error)
	}
	f.fail[typ] = err
}

func (f *faultAPI) releaseAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.holds {
		h.open()
	}
}

func (f *faultAPI) Execute(ctx context.Context, cmd events.Command, expected events.ExpectedVersion) (actors.Result, error) {
	f.mu.Lock()
	h, err := f.holds[cmd.Type], f.fail[cmd.Type]
	f.mu.Unlock()
	if err != nil {
		return actors.Result{}, err
	}
	if h != nil {
		h.entered <- cmd
		select {
		case <-h.release:
		case <-ctx.Done():
			return actors.Result{}, ctx.Err()
		}
	}
	return f.API.Execute(ctx, cmd, expected)
}

// logSink is a slog.Handler that keeps records for assertions.
type logSink struct {
	mu      sync.Mutex
	records []map[string]any
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logSink) WithGroup(string) slog.Handler            { return l }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Resolve().Any()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, m)
	l.mu.Unlock()
	return nil
}

func (l *logSink) find(match func(map[string]any) bool) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if match(r) {
			return r
		}
	}
	return nil
}

// HTTP helpers.

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("reply %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// do sends a request. It never fails the test itself (it may run on a
// subtest's goroutine): a transport error is status -1 with the error as
// body.
func (h *harness) do(method, path, body string, headers ...string) reply {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		return reply{status: -1, body: []byte(err.Error())}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return reply{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{status: -1, body: []byte(err.Error())}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantProblem checks a problem+json reply with the given status and code.
func wantProblem(t *testing.T, r reply, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	m := r.json(t)
	if m["code"] != code || m["type"] != "about:blank" || m["status"] != float64(status) || m["title"] != http.StatusText(status) {
		t.Fatalf("problem %v, want code %s status %d", m, code, status)
	}
	return m
}

// WebSocket helpers.

type wsClient struct {
	t testing.TB
	c *websocket.Conn
}

func (h *harness) dial(t testing.TB, path string, opts ...*websocket.DialOptions) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var o *websocket.DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	c, _, err := websocket.Dial(ctx, h.wsBase+path, o)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(1 << 22)
	w := &wsClient{t: t, c: c}
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

// on returns the client bound to a subtest's t.
func (w *wsClient) on(t testing.TB) *wsClient { return &wsClient{t: t, c: w.c} }

func (w *wsClient) send(v any) {
	w.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			w.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

func (w *wsClient) read() (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return w.c.Read(ctx)
}

func (w *wsClient) text() string {
	w.t.Helper()
	typ, b, err := w.read()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("got a %v frame, want text", typ)
	}
	return string(b)
}

func (w *wsClient) frame() map[string]any {
	w.t.Helper()
	s := w.text()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		w.t.Fatalf("frame is not a JSON object: %v: %s", err, s)
	}
	return m
}

// nonPresence reads the next frame that is not a presence frame (a
// room's newcomer is told who is there).
func (w *wsClient) nonPresence() map[string]any {
	w.t.Helper()
	for {
		if f := w.frame(); f["op"] != "presence" {
			return f
		}
	}
}

// frameOp reads frames until one with op, failing on any other op except
// those in skip.
func (w *wsClient) frameOp(op string, skip ...string) map[string]any {
	w.t.Helper()
	for {
		f := w.frame()
		if f["op"] == op {
			return f
		}
		ok := false
		for _, s := range skip {
			ok = ok || f["op"] == s
		}
		if !ok {
			w.t.Fatalf("got %v, want op %s", f, op)
		}
	}
}

// closeStatus reads until the connection ends and returns its close code.
func (w *wsClient) closeStatus() (websocket.StatusCode, string) {
	w.t.Helper()
	for {
		_, _, err := w.read()
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

// closeAsync reads on its own goroutine until the connection ends and
// reports the close code (-1 without a close frame); the connection is
// then released.
func (w *wsClient) closeAsync() <-chan websocket.StatusCode {
	ch := make(chan websocket.StatusCode, 1)
	go func() {
		defer w.c.CloseNow()
		for {
			_, _, err := w.read()
			if err == nil {
				continue
			}
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				ch <- ce.Code
			} else {
				ch <- -1
			}
			return
		}
	}()
	return ch
}

// Metrics helpers.

func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				match = match && found
			}
			if match {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

// eventually polls cond until it holds or the test deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// jsonEq reports whether a JSON value equals want after a round trip.
func jsonEq(t *testing.T, got any, want string) bool {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(g, &a)
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatal(err)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	return bytes.Equal(ga, gb)
}
