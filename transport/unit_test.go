package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

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
			c.Registerer == nil || c.Gatherer == nil {
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
	for _, c := range []struct {
		err      error
		status   int
		code     string
		detail   string // substring; "" = any
		internal bool
	}{
		{fmt.Errorf("x: %w", &events.WrongExpectedVersionError{Stream: "room:a", Expected: 1, Current: 2}), 409, "wrong_expected_version", "stream is at 2", false},
		{fmt.Errorf("x: %w", events.ErrInvalidStream), 400, "bad_request", "", false},
		{fmt.Errorf("x: %w: text too long", decider.ErrInvalid), 400, "bad_request", "text too long", false},
		{decider.ErrUnknownCommand, 400, "bad_request", "", false},
		{events.ErrInvalidEvent, 400, "bad_request", "", false},
		{actors.ErrUnknownKind, 400, "bad_request", "", false},
		{badRequest("bad %s", "thing"), 400, "bad_request", "bad thing", false},
		{newClientError(errUnauthorized, "no token"), 401, "unauthorized", "no token", false},
		{decider.ErrForbidden, 403, "forbidden", "", false},
		{events.ErrNotFound, 404, "not_found", "", false},
		{decider.ErrConflict, 409, "conflict", "", false},
		{events.ErrDuplicateID, 409, "conflict", "", false},
		{events.ErrTooLarge, 413, "too_large", "", false},
		{newClientError(errUnsupportedMedia, "xml"), 415, "unsupported_media_type", "xml", false},
		{&rateLimitError{}, 429, "rate_limited", "", false},
		{fmt.Errorf("%w: room:a: %w", actors.ErrUnavailable, context.DeadlineExceeded), 503, "unavailable", "in time", false},
		{fmt.Errorf("%w: internal runtime state", actors.ErrUnavailable), 503, "unavailable", "retry later", false},
		{errDraining, 503, "unavailable", "shutting down", false},
		{events.ErrClosed, 503, "unavailable", "", false},
		{fiber.ErrNotFound, 404, "not_found", "", false},
		{fiber.ErrMethodNotAllowed, 404, "not_found", "", false},
		{fiber.ErrRequestEntityTooLarge, 413, "too_large", "", false},
		{fiber.ErrUpgradeRequired, 400, "bad_request", "", false},
		{errors.New("password=hunter2"), 500, "internal", "internal server error", true},
		{fiber.ErrInternalServerError, 500, "internal", "internal server error", true},
	} {
		t.Run(c.err.Error(), func(t *testing.T) {
			p, internal := classify(c.err)
			if p.Status != c.status || p.Code != c.code || internal != c.internal || p.Type != "about:blank" || p.Title == "" ||
				!strings.Contains(p.Detail, c.detail) {
				t.Fatalf("got %+v internal=%v", p, internal)
			}
			if strings.Contains(p.Detail, "hunter2") || strings.Contains(p.Detail, "internal runtime state") {
				t.Fatalf("detail leaks: %q", p.Detail)
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
		{nil, "room:a", true},
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
		batch, code, text, exit := q.take(nil)
		if len(batch) != 0 || code != websocket.ClosePolicyViolation || text != "slow consumer" || exit {
			t.Fatalf("after overflow: %d items, close %d %q, exit %v", len(batch), code, text, exit)
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
		batch, _, _, _ := q.take(nil)
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
		batch, _, _, _ := c.q.take(nil)
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
			batch, code, _, _ := q.take(nil)
			if code != websocket.CloseGoingAway || (len(batch) == 1) != flush {
				t.Fatalf("flush %v: %d items, code %d", flush, len(batch), code)
			}
		}
		q := newSendQueue(100, 1<<20, func() {})
		q.stopNow()
		if _, _, _, exit := q.take(nil); !exit {
			t.Fatal("stopNow does not make the writer exit")
		}
	})
	t.Run("waitRoom waits for the writer", func(t *testing.T) {
		q := newSendQueue(4, 1<<20, func() {})
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
			<-q.wake
			batch, _, _, _ := q.take(nil)
			if len(batch) > 2 {
				t.Fatalf("%d items queued past waitRoom with a cap of 4", len(batch))
			}
			got = append(got, versions(batch)...)
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
