package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
)

func TestConfig(t *testing.T) {
	valid := func() Config { return Config{API: stubAPI{}, Log: memstore.New()} }
	t.Run("defaults", func(t *testing.T) {
		c := valid()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		c.setDefaults()
		if c.BodyLimit != 64<<10 || c.ReadLimit != 64<<10 || c.SendQueueFrames != 1024 || c.SendQueueBytes != 4<<20 ||
			c.PingInterval != 30*time.Second || c.PongTimeout != 60*time.Second || c.CommandTimeout <= 0 ||
			c.WriteTimeout <= 0 || c.MaxInflight <= 0 || c.Logger == nil || c.Now == nil ||
			c.Registerer == nil || c.Gatherer == nil ||
			c.MaxSubscriptions != 1000 || c.MaxConnections != 10000 || c.MaxConnectionsPerIP != 100 ||
			c.HTTPReadTimeout != 5*time.Second || c.CloseLinger != 5*time.Second || c.CloseLingerBytes != 1<<20 {
			t.Fatalf("defaults: %+v", c)
		}
		c = valid()
		c.RateLimit.PerSecond = 2.5
		c.setDefaults()
		if c.RateLimit.Burst != 3 {
			t.Fatalf("burst %d, want 3", c.RateLimit.Burst)
		}
	})
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no API", func(c *Config) { c.API = nil }, "API is required"},
		{"no Log", func(c *Config) { c.Log = nil }, "Log is required"},
		{"negative", func(c *Config) { c.SendQueueFrames = -1 }, "SendQueueFrames"},
		{"negative rate", func(c *Config) { c.RateLimit.PerSecond = -1 }, "PerSecond"},
		{"negative subscriptions", func(c *Config) { c.MaxSubscriptions = -1 }, "MaxSubscriptions"},
		{"negative connections", func(c *Config) { c.MaxConnectionsPerIP = -1 }, "MaxConnectionsPerIP"},
		{"negative read timeout", func(c *Config) { c.HTTPReadTimeout = -1 }, "HTTPReadTimeout"},
		{"negative linger", func(c *Config) { c.CloseLingerBytes = -1 }, "CloseLingerBytes"},
		{"pong before ping", func(c *Config) { c.PingInterval, c.PongTimeout = time.Second, time.Second }, "PongTimeout"},
		{"registerer without gatherer", func(c *Config) {
			c.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"a": "b"}, prometheus.NewRegistry())
		}, "Gatherer"},
		{"gatherer without registerer", func(c *Config) { c.Gatherer = prometheus.NewRegistry() }, "Registerer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want %q", err, c.want)
			}
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	// wrapped is how errors reach classify: with the transport's and the
	// runtime's context around them, for the log.
	wrapped := func(err error) error { return fmt.Errorf("room:a PostMessage: room PostMessage: %w", err) }
	for _, c := range []struct {
		err      error
		status   int
		code     string
		detail   string // exact
		internal bool
	}{
		{wrapped(&events.WrongExpectedVersionError{Stream: "room:a", Expected: 1, Current: 2}), 409, "wrong_expected_version", "expected version 1, the stream is at 2", false},
		{wrapped(events.Refuse(events.ErrInvalidStream, "stream id %q is not <kind>:<id>", "x")), 400, "bad_request", `stream id "x" is not <kind>:<id>`, false},
		{wrapped(decider.Invalid("text must be 1-%d characters, got %d", 4096, 0)), 400, "bad_request", "text must be 1-4096 characters, got 0", false},
		{wrapped(decider.UnknownCommand("room", "Shout")), 400, "bad_request", `room streams have no command "Shout"`, false},
		{wrapped(decider.Forbidden("user %q may not post as %q", "ann", "bob")), 403, "forbidden", `user "ann" may not post as "bob"`, false},
		{wrapped(decider.Conflict("the game has ended")), 409, "conflict", "the game has ended", false},
		{badRequest("bad %s", "thing"), 400, "bad_request", "bad thing", false},
		{newClientError(errUnauthorized, "no token"), 401, "unauthorized", "no token", false},
		{newClientError(errUnsupportedMedia, "xml"), 415, "unsupported_media_type", "xml", false},
		{&rateLimitError{}, 429, "rate_limited", "too many requests: slow down", false},
		{errDraining, 503, "unavailable", "the server is shutting down", false},
		{newClientError(errLimitExceeded, "this connection has %d subscriptions, the limit", 2), 429, "limit_exceeded", "this connection has 2 subscriptions, the limit", false},
		{errLimitExceeded, 429, "limit_exceeded", "a limit of this client was reached", false},
		{fiber.ErrRequestTimeout, 400, "bad_request", "the request was not received within the read timeout", false},
		// Without a message for the client, the row's fixed sentence: the
		// error's own text (hunter2) never reaches the client.
		{wrapped(fmt.Errorf("%w: hunter2", decider.ErrInvalid)), 400, "bad_request", "invalid command", false},
		{wrapped(fmt.Errorf("%w: hunter2", events.ErrInvalidStream)), 400, "bad_request", "invalid stream id", false},
		{decider.ErrUnknownCommand, 400, "bad_request", "unknown command type", false},
		{events.ErrInvalidEvent, 400, "bad_request", "the command's events are invalid", false},
		{actors.ErrUnknownKind, 400, "bad_request", "unknown stream kind", false},
		{decider.ErrForbidden, 403, "forbidden", "not allowed", false},
		{events.ErrNotFound, 404, "not_found", "not found", false},
		{decider.ErrConflict, 409, "conflict", "the command is not allowed in the stream's current state", false},
		{events.ErrDuplicateID, 409, "conflict", "an event id is used already", false},
		{events.ErrTooLarge, 413, "too_large", "an event is over the size limit", false},
		{fmt.Errorf("%w: room:a: %w", actors.ErrUnavailable, context.DeadlineExceeded), 503, "unavailable", "the stream's actor did not answer in time", false},
		{fmt.Errorf("%w: hunter2", actors.ErrUnavailable), 503, "unavailable", "the service is unavailable; retry later", false},
		{events.ErrClosed, 503, "unavailable", "the service is unavailable; retry later", false},
		// A message is shown only by an error that matches the row: a
		// conflict's message is the detail of a conflict that wraps the
		// store's duplicate id, not of a not-found that wraps it.
		{fmt.Errorf("%w: %w", decider.Conflict("command id %q was applied before with a different outcome", "k"), events.ErrDuplicateID), 409, "conflict", `command id "k" was applied before with a different outcome`, false},
		{fmt.Errorf("%w: %w", events.ErrNotFound, decider.Conflict("hunter2")), 404, "not_found", "not found", false},
		{fiber.ErrNotFound, 404, "not_found", "no route for this method and path", false},
		{fiber.ErrMethodNotAllowed, 404, "not_found", "no route for this method and path", false},
		{fiber.ErrRequestEntityTooLarge, 413, "too_large", "the request body is over the size limit", false},
		{fiber.ErrUpgradeRequired, 400, "bad_request", "this is a WebSocket endpoint: send an upgrade request", false},
		{fiber.ErrBadRequest, 400, "bad_request", "malformed request", false},
		{errors.New("password=hunter2"), 500, "internal", "internal server error", true},
		{fiber.ErrInternalServerError, 500, "internal", "internal server error", true},
		{fmt.Errorf("activate room:a: %w", &actors.LoadError{Stream: "room:a", Version: 3, Cause: events.Refuse(events.ErrInvalidEvent, "hunter2")}), 500, "internal", "internal server error", true},
		{fmt.Errorf("%w: but also %w", actors.ErrCorruptStream, decider.Invalid("hunter2")), 500, "internal", "internal server error", true},
	} {
		t.Run(c.err.Error(), func(t *testing.T) {
			p, internal := classify(c.err)
			if p.Status != c.status || p.Code != c.code || internal != c.internal || p.Type != "about:blank" || p.Title == "" ||
				p.Detail != c.detail {
				t.Fatalf("got %+v internal=%v, want detail %q", p, internal, c.detail)
			}
		})
	}
}

func TestParseIfMatch(t *testing.T) {
	for _, c := range []struct {
		in   string
		want events.ExpectedVersion
		ok   bool
	}{
		{"", events.AnyVersion, true},
		{"*", events.AnyVersion, true},
		{"3", events.Exactly(3), true},
		{`"3"`, events.Exactly(3), true},
		{` W/"0" `, events.NoStream, true},
		{"-1", 0, false},
		{`"x"`, 0, false},
		{"3,4", 0, false},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseIfMatch(c.in)
			if (err == nil) != c.ok || (c.ok && got != c.want) {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(2, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("another client is throttled")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("no refill")
	}
	now = now.Add(time.Hour)
	l.allow("c") // sweeps the idle buckets
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", len(l.buckets))
	}
}

func TestPrincipalAllow(t *testing.T) {
	for _, c := range []struct {
		p      *principal
		stream string
		ok     bool
	}{
		{anonymousPrincipal, "room:a", true},
		{&principal{user: "ann"}, "room:a", true},
		{&principal{user: "ann", streams: []string{}}, "room:a", false},
		{&principal{user: "ann", streams: []string{"room:*"}}, "room:a", true},
		{&principal{user: "ann", streams: []string{"room:*"}}, "game:a", false},
		{&principal{user: "ann", streams: []string{"game:main", "user:ann"}}, "user:ann", true},
		{&principal{user: "ann", streams: []string{"["}}, "room:a", false},
	} {
		if err := c.p.allow(c.stream); (err == nil) != c.ok || (err != nil && !errors.Is(err, decider.ErrForbidden)) {
			t.Errorf("%+v allow %s: %v", c.p, c.stream, err)
		}
	}
	// A request that was never authenticated has no principal: it fails
	// closed, whether auth is on or off.
	var none *principal
	if err := none.allow("room:a"); !errors.Is(err, errUnauthorized) {
		t.Errorf("nil principal allow: %v, want unauthorized", err)
	}
	if none.userName() != "" || anonymousPrincipal.userName() != "" || (&principal{user: "ann"}).userName() != "ann" {
		t.Error("userName")
	}
}

func TestAuthenticateAuthOff(t *testing.T) {
	s, err := New(Config{API: stubAPI{}, Log: memstore.New(), Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "garbage"} {
		if p, err := s.authenticate(token); err != nil || p == nil || !p.anonymous {
			t.Fatalf("authenticate(%q) with auth off = %+v, %v; want the anonymous principal", token, p, err)
		}
	}
}

// openAPI serves every stream and counts the commands it is given.
type openAPI struct {
	stubAPI
	executed atomic.Int32
}

func (a *openAPI) Check(string) error { return nil }
func (a *openAPI) Execute(context.Context, decider.Command, events.ExpectedVersion) (actors.Result, error) {
	a.executed.Add(1)
	return actors.Result{Version: 1}, nil
}
func (a *openAPI) State(_ context.Context, stream string, _ decider.Caller) (actors.StateView, error) {
	return actors.StateView{Stream: stream, Version: 1, JSON: []byte(`{}`)}, nil
}

// A handler registered around authHTTP finds no principal, and every
// stream check refuses it, even with auth off: nothing runs for a request
// that was never authenticated.
func TestUnauthenticatedRouteFailsClosed(t *testing.T) {
	api := &openAPI{}
	s, err := New(Config{API: api, Log: memstore.New(), Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	s.app.Get("/raw/state/:stream", s.getState)
	s.app.Post("/raw/command/:stream", func(c *fiber.Ctx) error {
		_, err := s.Command(c, "room:a", "PostMessage", []byte(`{"user":"ann","text":"hi"}`), "")
		return err
	})
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/raw/state/room:a", nil),
		httptest.NewRequest("POST", "/raw/command/room:a", nil),
	} {
		resp, err := s.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without authentication: %d, want 401", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
	if n := api.executed.Load(); n != 0 {
		t.Fatalf("%d commands ran for unauthenticated requests", n)
	}
	// The same handler behind authHTTP runs as the anonymous principal.
	resp, err := s.app.Test(httptest.NewRequest("GET", "/streams/room:a", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /streams/room:a as the anonymous principal: %d, want 200", resp.StatusCode)
	}
}

func TestParseFrame(t *testing.T) {
	for _, c := range []struct {
		in, ref string // ref "-" = none
		ok      bool
	}{
		{`{"op":"ping","ref":"a"}`, "a", true},
		{`{"op":"ping"}`, "-", true},
		{`{"op":"ping","ref":null}`, "-", true},
		{` {"op":"ping","ref":"` + strings.Repeat("é", 64) + `"} `, strings.Repeat("é", 64), true},
		{`{"op":"ping","ref":"` + strings.Repeat("é", 65) + `"}`, "-", false},
		{`{"op":"ping","ref":1}`, "-", false},
		{`{"op":"ping","ref":"a","x":1}`, "a", false},
		{`{"op":"subscribe","from":"1","ref":"a"}`, "a", false},
		{`{"op":"ping","ref":"a"} {}`, "a", false},
		{`{"op":`, "-", false},
		{``, "-", false},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, ref, err := parseFrame([]byte(c.in))
			got := "-"
			if ref != nil {
				got = *ref
			}
			if (err == nil) != c.ok || got != c.ref {
				t.Fatalf("ref %q err %v", got, err)
			}
			if err != nil && !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not bad_request", err)
			}
		})
	}
}

// Queue tests: the queue alone, with the test goroutine as its writer.

func evItem(v uint64) outItem {
	ev := &events.Event{Stream: "room:q", Version: v}
	return outItem{typ: websocket.TextMessage, ev: ev, size: 10}
}

func versions(items []outItem) []uint64 {
	var vs []uint64
	for _, it := range items {
		if it.ev != nil {
			vs = append(vs, it.ev.Version)
		} else {
			vs = append(vs, 0)
		}
	}
	return vs
}

func TestSendQueue(t *testing.T) {
	t.Run("frame cap overflows once", func(t *testing.T) {
		overflows := 0
		q := newSendQueue(2, 1<<20, func() { overflows++ })
		for i := range 2 {
			if !q.push(outItem{data: []byte("x"), size: 1}) {
				t.Fatalf("push %d refused", i)
			}
		}
		for range 2 { // the second overflow is not counted again
			if q.push(outItem{data: []byte("x"), size: 1}) {
				t.Fatal("push over the cap accepted")
			}
		}
		if overflows != 1 {
			t.Fatalf("overflows %d", overflows)
		}
		w := q.take(nil)
		if len(w.items) != 0 || w.closeCode != websocket.ClosePolicyViolation || w.closeText != "slow consumer" || w.exit {
			t.Fatalf("after overflow: %d items, close %d %q, exit %v", len(w.items), w.closeCode, w.closeText, w.exit)
		}
		if w := q.take(nil); !w.exit {
			t.Fatal("the writer goes on after the close frame")
		}
	})
	t.Run("byte cap", func(t *testing.T) {
		q := newSendQueue(100, 10, func() {})
		if !q.push(outItem{size: 10}) || q.push(outItem{size: 1}) {
			t.Fatal("byte cap not enforced")
		}
	})
	t.Run("a FIFO", func(t *testing.T) {
		q := newSendQueue(100, 1<<20, func() {})
		for _, v := range []uint64{3, 1, 2} {
			q.push(evItem(v))
		}
		batch := q.take(nil).items
		if got := versions(batch); fmt.Sprint(got) != "[3 1 2]" {
			t.Fatalf("got %v", got)
		}
		if len(q.items) != 0 || q.bytes != 0 {
			t.Fatalf("counts %d/%d after take", len(q.items), q.bytes)
		}
	})
	t.Run("a subscription's items are skipped once it ends", func(t *testing.T) {
		c := &Conn{ep: &Endpoint{}, q: newSendQueue(100, 1<<20, func() {})}
		old, cur := &wsSub{c: c, stream: "room:q"}, &wsSub{c: c, stream: "room:q"}
		for v := uint64(1); v <= 3; v++ {
			old.Enqueue(actors.Delivery{Stream: "room:q", Event: &events.Event{Version: v}})
		}
		c.dropSub(old) // unsubscribe, or replaced by cur
		c.send([]byte("unsubscribed"))
		old.Enqueue(actors.Delivery{Stream: "room:q", Event: &events.Event{Version: 4}})
		cur.Enqueue(actors.Delivery{Stream: "room:q", Event: &events.Event{Version: 1}})
		batch := c.q.take(nil).items
		var written []string
		for _, it := range batch {
			if it.skipped() {
				continue // the writer's check
			}
			if it.ev != nil {
				written = append(written, fmt.Sprint(it.ev.Version))
			} else {
				written = append(written, string(it.data))
			}
		}
		if got := strings.Join(written, " "); got != "unsubscribed 1" {
			t.Fatalf("written: %q", got)
		}
	})
	t.Run("close flushes or drops", func(t *testing.T) {
		for _, flush := range []bool{true, false} {
			q := newSendQueue(100, 1<<20, func() {})
			q.push(outItem{data: []byte("ack"), size: 1})
			q.closeWith(websocket.CloseGoingAway, "going away", flush)
			if q.push(outItem{data: []byte("late"), size: 1}) {
				t.Fatal("push after close accepted")
			}
			w := q.take(nil)
			if w.closeCode != websocket.CloseGoingAway || (len(w.items) == 1) != flush {
				t.Fatalf("flush %v: %d items, code %d", flush, len(w.items), w.closeCode)
			}
		}
		q := newSendQueue(100, 1<<20, func() {})
		q.push(outItem{data: []byte("ack"), size: 1})
		q.stopNow()
		if w := q.take(nil); !w.exit || len(w.items) != 0 {
			t.Fatal("stopNow does not make the writer exit")
		}
	})
	t.Run("waitRoom waits for the writer", func(t *testing.T) {
		q := newSendQueue(4, 1<<20, func() {})
		wake := make(chan struct{}, 1)
		q.start = func() { wake <- struct{}{} }
		done := make(chan error, 1)
		go func() {
			for v := uint64(1); v <= 10; v++ {
				if err := q.waitRoom(context.Background()); err != nil {
					done <- err
					return
				}
				if !q.push(evItem(v)) {
					done <- errors.New("push refused")
					return
				}
			}
			done <- nil
		}()
		var got []uint64
		for len(got) < 10 {
			<-wake // a writer starts
			for {
				w := q.take(nil)
				if w.exit {
					break // and ends once the queue is empty
				}
				if len(w.items) > 2 {
					t.Fatalf("%d items queued past waitRoom with a cap of 4", len(w.items))
				}
				got = append(got, versions(w.items)...)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10]" {
			t.Fatalf("got %v", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		q.push(outItem{size: 1})
		q.push(outItem{size: 1})
		if err := q.waitRoom(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
		q.closeWith(websocket.CloseGoingAway, "going away", true)
		if err := q.waitRoom(context.Background()); !errors.Is(err, errQueueClosed) {
			t.Fatalf("wait on a closing queue: %v", err)
		}
	})
}

// stubAPI is an actors.API for tests that build a Config and never call it.
type stubAPI struct{ actors.API }

func TestHTTPConns(t *testing.T) {
	var tr httpConns
	a, b := &net.TCPConn{}, &net.TCPConn{}
	slot := &wsSlot{ip: "x"}
	// An upgrade whose 101 could not be written: the connection closes
	// and its reservation comes back for release.
	tr.set(a, fasthttp.StateActive)
	tr.phase(a, reqHandling)
	tr.attach(a, slot)
	if got := tr.set(a, fasthttp.StateClosed); got != slot {
		t.Fatalf("closed: orphan %v, want the slot", got)
	}
	// A hijacked connection's slot belongs to its WebSocket handler.
	tr.set(b, fasthttp.StateActive)
	tr.attach(b, slot)
	if got := tr.set(b, fasthttp.StateHijacked); got != nil {
		t.Fatalf("hijacked: orphan %v", got)
	}
	if len(tr.conns) != 0 {
		t.Fatalf("%d connections left", len(tr.conns))
	}
	// A new request starts unread; one in a handler is not cut.
	tr.set(a, fasthttp.StateIdle)
	tr.set(a, fasthttp.StateActive)
	if tr.conns[a].phase != reqReading {
		t.Fatal("a new request does not start unread")
	}
}
