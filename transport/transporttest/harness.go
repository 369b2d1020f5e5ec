// Package transporttest runs a real transport.Server, with the seed routes,
// in front of the real actor runtime on an in-memory store, and gives tests
// HTTP and WebSocket clients that fail the test on errors. The transport's
// and the seed routes' tests share it.
package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/mail"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/seed"
)

// Timeout bounds every wait of a test: a deadline, never a sleep.
const Timeout = 20 * time.Second

// Harness is a real Server on 127.0.0.1:0 in front of the real actor
// runtime with every kind and an in-memory store, with a FaultAPI in
// between to Hold or fail chosen calls.
type Harness struct {
	Srv     *transport.Server
	RT      *actors.Runtime
	Store   *memstore.Store
	API     *FaultAPI
	Reg     *prometheus.Registry
	Metrics *transport.Metrics
	Base    string // http://host:port
	WSBase  string // ws://host:port
	HTTP    *http.Client
	Logs    *LogSink

	t        testing.TB
	serveErr chan error
	closed   bool
}

// Option changes the server's configuration before New builds it.
type Option func(*transport.Config)

// New starts a Harness with the seed routes; it is shut down at the
// test's cleanup.
func New(t testing.TB, opts ...Option) *Harness {
	t.Helper()
	return NewLn(t, nil, opts...)
}

// NewLn is New with the listener wrapped by wrap.
func NewLn(t testing.TB, wrap func(net.Listener) net.Listener, opts ...Option) *Harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	store := memstore.New()
	reg := prometheus.NewRegistry()
	m, err := transport.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := actors.New(actors.Config{
		Store:       store,
		Kinds:       kinds.All(kinds.Config{CookTime: 5 * time.Millisecond}),
		StepBackoff: time.Millisecond,
		Executors: map[string]actors.Executor{
			decider.StepWait:  actors.Wait,
			decider.StepEmail: mail.Executor(mail.NewOutbox(t.TempDir())),
		},
		Observer: m,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := &Harness{t: t, RT: rt, Store: store, API: &FaultAPI{API: rt}, Reg: reg, Metrics: m, Logs: &LogSink{}, serveErr: make(chan error, 1)}
	cfg := transport.Config{
		API:        h.API,
		Log:        store,
		Extensions: []transport.Extension{seed.Routes(seed.Config{Log: store})},
		Logger:     slog.New(h.Logs),
		Metrics:    m,
		Registerer: reg,
		Gatherer:   reg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.Srv, err = transport.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Srv.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	h.Base = "http://" + ln.Addr().String()
	h.WSBase = "ws://" + ln.Addr().String()
	h.HTTP = &http.Client{Timeout: Timeout, Transport: &http.Transport{}}
	go func() { h.serveErr <- h.Srv.Serve(ln) }()
	t.Cleanup(h.Close)
	return h
}

// Close shuts everything down in the engine's order; it fails the test if
// the server does not stop cleanly.
func (h *Harness) Close() {
	if h.closed {
		return
	}
	h.closed = true
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	h.HTTP.CloseIdleConnections()
	if err := h.Srv.Shutdown(ctx); err != nil {
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
	h.API.ReleaseAll()
	if err := h.RT.Stop(ctx); err != nil {
		h.t.Errorf("runtime Stop: %v", err)
	}
	_ = h.Store.Close()
}

// FaultAPI passes calls to the runtime, except that a test can make an
// Execute wait for a release, or fail.
type FaultAPI struct {
	actors.API
	mu    sync.Mutex
	holds map[string]*Hold // by command type
	fail  map[string]error // by command type
}

type Hold struct {
	Entered chan decider.Command // one value per held call
	release chan struct{}
	once    sync.Once
}

func (f *FaultAPI) HoldType(typ string) *Hold {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holds == nil {
		f.holds = make(map[string]*Hold)
	}
	h := &Hold{Entered: make(chan decider.Command, 64), release: make(chan struct{})}
	f.holds[typ] = h
	return h
}

func (h *Hold) Open() { h.once.Do(func() { close(h.release) }) }

func (f *FaultAPI) FailType(typ string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = make(map[string]error)
	}
	f.fail[typ] = err
}

func (f *FaultAPI) ReleaseAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.holds {
		h.Open()
	}
}

func (f *FaultAPI) Execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (actors.Result, error) {
	f.mu.Lock()
	h, err := f.holds[cmd.Type], f.fail[cmd.Type]
	f.mu.Unlock()
	if err != nil {
		return actors.Result{}, err
	}
	if h != nil {
		h.Entered <- cmd
		select {
		case <-h.release:
		case <-ctx.Done():
			return actors.Result{}, ctx.Err()
		}
	}
	return f.API.Execute(ctx, cmd, expected)
}

// ExecuteFunc is Execute for a caller that does not wait (see
// actors.Runtime.ExecuteFunc), which the transport uses when the API has
// it: straight to the runtime, unless the command's type is held or
// failed, when Execute runs on a goroutine of its own.
func (f *FaultAPI) ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(actors.Result, error)) {
	f.mu.Lock()
	h, err := f.holds[cmd.Type], f.fail[cmd.Type]
	f.mu.Unlock()
	if fe, ok := f.API.(funcExecutor); ok && h == nil && err == nil {
		fe.ExecuteFunc(ctx, cmd, expected, deadline, done)
		return
	}
	go func() {
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		done(f.Execute(ctx, cmd, expected))
	}()
}

type funcExecutor interface {
	ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(actors.Result, error))
}

// LogSink is a slog.Handler that keeps records for assertions.
type LogSink struct {
	mu      sync.Mutex
	records []map[string]any
}

func (l *LogSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *LogSink) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *LogSink) WithGroup(string) slog.Handler            { return l }
func (l *LogSink) Handle(_ context.Context, r slog.Record) error {
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

func (l *LogSink) Find(match func(map[string]any) bool) map[string]any {
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

// Reply is an HTTP response read whole.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r Reply) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("Reply %d is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

// Do sends a request. It never fails the test itself (it may run on a
// subtest's goroutine): a transport error is status -1 with the error as
// body.
func (h *Harness) Do(method, path, body string, headers ...string) Reply {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.Base+path, rd)
	if err != nil {
		return Reply{Status: -1, Body: []byte(err.Error())}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.HTTP.Do(req)
	if err != nil {
		return Reply{Status: -1, Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{Status: -1, Body: []byte(err.Error())}
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// WantProblem checks a problem+json Reply with the given status and code.
func WantProblem(t *testing.T, r Reply, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	m := r.JSON(t)
	if m["code"] != code || m["type"] != "about:blank" || m["status"] != float64(status) || m["title"] != http.StatusText(status) {
		t.Fatalf("problem %v, want code %s status %d", m, code, status)
	}
	return m
}

// WebSocket helpers.

// WSClient is a WebSocket client that fails its test on errors.
type WSClient struct {
	t testing.TB
	C *websocket.Conn
}

func (h *Harness) Dial(t testing.TB, path string, opts ...*websocket.DialOptions) *WSClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var o *websocket.DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	c, _, err := websocket.Dial(ctx, h.WSBase+path, o)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(1 << 22)
	w := &WSClient{t: t, C: c}
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

// On returns the client bound to a subtest's t.
func (w *WSClient) On(t testing.TB) *WSClient { return &WSClient{t: t, C: w.C} }

func (w *WSClient) Send(v any) {
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
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := w.C.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

func (w *WSClient) Read() (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return w.C.Read(ctx)
}

func (w *WSClient) Text() string {
	w.t.Helper()
	typ, b, err := w.Read()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		w.t.Fatalf("got a %v frame, want text", typ)
	}
	return string(b)
}

func (w *WSClient) Frame() map[string]any {
	w.t.Helper()
	s := w.Text()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		w.t.Fatalf("frame is not a JSON object: %v: %s", err, s)
	}
	return m
}

// NonPresence reads the next frame that is not a presence frame (a
// room's newcomer is told who is there).
func (w *WSClient) NonPresence() map[string]any {
	w.t.Helper()
	for {
		if f := w.Frame(); f["op"] != "presence" {
			return f
		}
	}
}

// FrameOp reads frames until one with op, failing on any other op except
// those in skip.
func (w *WSClient) FrameOp(op string, skip ...string) map[string]any {
	w.t.Helper()
	for {
		f := w.Frame()
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

// CloseStatus reads until the connection ends and returns its close code
// (-1 without a close frame) and reason.
func (w *WSClient) CloseStatus() (websocket.StatusCode, string) {
	w.t.Helper()
	return w.readToClose()
}

// CloseAsync reads on its own goroutine until the connection ends and
// reports the close code (-1 without a close frame); the connection is
// then released.
func (w *WSClient) CloseAsync() <-chan websocket.StatusCode {
	ch := make(chan websocket.StatusCode, 1)
	go func() {
		defer w.C.CloseNow()
		code, _ := w.readToClose()
		ch <- code
	}()
	return ch
}

func (w *WSClient) readToClose() (websocket.StatusCode, string) {
	for {
		_, _, err := w.Read()
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

// Metrics helpers.

func (h *Harness) Metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.Reg.Gather()
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

// Eventually polls cond until it holds or the test deadline passes.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// JSONEq reports whether a JSON value equals want after a round trip.
func JSONEq(t *testing.T, got any, want string) bool {
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

// PostMessage is the body of a command that posts text to a room as user.
func PostMessage(user, text string) string {
	return fmt.Sprintf(`{"type":"PostMessage","data":{"user":%q,"text":%q}}`, user, text)
}

// Sign makes an HS256 token with the claims, signed with secret.
func Sign(t testing.TB, secret []byte, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
