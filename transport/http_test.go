package transport_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

func TestProbes(t *testing.T) {
	h := transporttest.New(t)
	t.Run("healthz", func(t *testing.T) {
		r := h.Do("GET", "/healthz", "")
		if r.Status != 200 || !transporttest.JSONEq(t, r.JSON(t), `{"status":"ok"}`) {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		if r := h.Do("GET", "/readyz", ""); r.Status != 200 {
			t.Fatalf("ready: %d %s", r.Status, r.Body)
		}
		h.Srv.SetReady(false)
		transporttest.WantProblem(t, h.Do("GET", "/readyz", ""), 503, "unavailable")
		h.Srv.SetReady(true)
	})
	t.Run("readyz asks Config.Ready", func(t *testing.T) {
		var notReady atomic.Bool
		h := transporttest.New(t, func(c *transport.Config) {
			c.Ready = func() error {
				if notReady.Load() {
					return errors.New("this node sees 1 of 3 cluster members")
				}
				return nil
			}
		})
		if r := h.Do("GET", "/readyz", ""); r.Status != 200 {
			t.Fatalf("ready: %d %s", r.Status, r.Body)
		}
		notReady.Store(true)
		r := h.Do("GET", "/readyz", "")
		transporttest.WantProblem(t, r, 503, "unavailable")
		if !strings.Contains(string(r.Body), "1 of 3") {
			t.Fatalf("readyz does not say why: %s", r.Body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		if r := h.Do("POST", "/streams/room:m/commands", transporttest.PostMessage("ann", "hi")); r.Status != 200 {
			t.Fatalf("command: %d %s", r.Status, r.Body)
		}
		want := []string{
			"engine_connections ",
			`engine_ws_frames_total{direction="in"}`,
			`engine_ws_frames_total{direction="out"}`,
			`engine_commands_total{kind="room",result="ok"} 1`,
			"engine_append_seconds_bucket",
			"engine_slow_consumer_closes_total ",
			`engine_active_actors{kind="room"} 1`,
			"go_goroutines ",
		}
		// The runtime reports a command as it finishes, which may be just
		// after the transporttest.Reply.
		var missing []string
		transporttest.Eventually(t, "every metric", func() bool {
			r := h.Do("GET", "/metrics", "")
			missing = missing[:0]
			for _, name := range want {
				if r.Status != 200 || !strings.Contains(string(r.Body), name) {
					missing = append(missing, name)
				}
			}
			return len(missing) == 0
		})
	})
}

func TestStreamRoutes(t *testing.T) {
	h := transporttest.New(t)

	r := h.Do("POST", "/streams/room:lobby/commands", transporttest.PostMessage("ann", "hi"))
	if r.Status != 200 {
		t.Fatalf("command: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if m["stream"] != "room:lobby" || m["version"] != float64(1) || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("transporttest.Reply %s, ETag %s", r.Body, r.Header.Get("ETag"))
	}
	evs := m["events"].([]any)
	ev := evs[0].(map[string]any)
	if len(evs) != 1 || ev["type"] != "MessagePosted" || ev["version"] != float64(1) || ev["stream"] != "room:lobby" ||
		!transporttest.JSONEq(t, ev["data"], `{"user":"ann","text":"hi"}`) || ev["id"] == "" || ev["position"] == nil || ev["time"] == nil {
		t.Fatalf("events %v", evs)
	}

	// A percent-encoded stream id is the same stream.
	r = h.Do("POST", "/streams/room%3Alobby/commands", transporttest.PostMessage("bob", "yo"))
	if r.Status != 200 || r.JSON(t)["version"] != float64(2) {
		t.Fatalf("encoded: %d %s", r.Status, r.Body)
	}

	t.Run("state", func(t *testing.T) {
		r := h.Do("GET", "/streams/room%3Alobby", "")
		if r.Status != 200 || r.Header.Get("ETag") != `"2"` {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		st := r.JSON(t)
		if st["stream"] != "room:lobby" || st["version"] != float64(2) || len(st["messages"].([]any)) != 2 {
			t.Fatalf("state %s", r.Body)
		}
		transporttest.WantProblem(t, h.Do("GET", "/streams/room:empty", ""), 404, "not_found")
	})

	t.Run("events", func(t *testing.T) {
		for _, c := range []struct {
			query    string
			versions []float64
			next     float64
		}{
			{"", []float64{1, 2}, 2},
			{"?from=0&limit=1", []float64{1}, 1},
			{"?from=1", []float64{2}, 2},
			{"?from=2", nil, 2},
			{"?limit=5000", []float64{1, 2}, 2},
		} {
			t.Run(c.query, func(t *testing.T) {
				r := h.Do("GET", "/streams/room:lobby/events"+c.query, "")
				if r.Status != 200 {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				m := r.JSON(t)
				got := m["events"].([]any)
				if len(got) != len(c.versions) || m["next"] != c.next {
					t.Fatalf("got %s", r.Body)
				}
				for i, e := range got {
					if e.(map[string]any)["version"] != c.versions[i] {
						t.Fatalf("got %s", r.Body)
					}
				}
			})
		}
		r := h.Do("GET", "/streams/game:none/events", "")
		if r.Status != 200 || !transporttest.JSONEq(t, r.JSON(t), `{"events":[],"next":0,"epoch":"`+h.Store.Epoch()+`"}`) {
			t.Fatalf("empty stream: %d %s", r.Status, r.Body)
		}
	})

	t.Run("if-match", func(t *testing.T) {
		transporttest.WantProblem(t, h.Do("POST", "/streams/room:lobby/commands", transporttest.PostMessage("ann", "x"), "If-Match", "1"), 409, "wrong_expected_version")
		r := h.Do("POST", "/streams/room:lobby/commands", transporttest.PostMessage("ann", "x"), "If-Match", `"2"`)
		if r.Status != 200 || r.JSON(t)["version"] != float64(3) {
			t.Fatalf("quoted If-Match: %d %s", r.Status, r.Body)
		}
		r = h.Do("POST", "/streams/room:lobby/commands", transporttest.PostMessage("ann", "y"), "If-Match", "3")
		if r.Status != 200 || r.JSON(t)["version"] != float64(4) {
			t.Fatalf("bare If-Match: %d %s", r.Status, r.Body)
		}
	})

	t.Run("idempotency-key", func(t *testing.T) {
		first := h.Do("POST", "/streams/room:idem/commands", transporttest.PostMessage("ann", "once"), "Idempotency-Key", "k-1")
		again := h.Do("POST", "/streams/room:idem/commands", transporttest.PostMessage("ann", "once"), "Idempotency-Key", "k-1")
		if first.Status != 200 || again.Status != 200 || string(first.Body) != string(again.Body) {
			t.Fatalf("first %d %s, again %d %s", first.Status, first.Body, again.Status, again.Body)
		}
		r := h.Do("GET", "/streams/room:idem/events", "")
		if n := len(r.JSON(t)["events"].([]any)); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	h := transporttest.New(t)
	h.Do("POST", "/streams/game:over/commands", `{"type":"EndGame"}`)
	for _, c := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code, detail             string // detail: exact, what the client reads
	}{
		{"malformed JSON", "POST", "/streams/room:a/commands", `{"type":`, nil, 400, "bad_request", "malformed JSON: unexpected EOF"},
		{"unknown field", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{},"extra":1}`, nil, 400, "bad_request", `malformed JSON: unknown field "extra"`},
		{"trailing data", "POST", "/streams/room:a/commands", `{"type":"PostMessage"} {}`, nil, 400, "bad_request", "malformed JSON: trailing data after the JSON value"},
		{"data not an object", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":[1]}`, nil, 400, "bad_request", "data must be a JSON object"},
		{"missing type", "POST", "/streams/room:a/commands", `{"data":{}}`, nil, 400, "bad_request", "type is required"},
		{"empty body", "POST", "/streams/room:a/commands", ``, nil, 400, "bad_request", "a JSON body is required"},
		{"unknown stream kind", "POST", "/streams/planet:mars/commands", transporttest.PostMessage("ann", "hi"), nil, 400, "bad_request", `unknown stream kind "planet"`},
		{"bad stream id", "POST", "/streams/room:a%20b/commands", transporttest.PostMessage("ann", "hi"), nil, 400, "bad_request", `stream id "room:a b": the id may hold only A-Z a-z 0-9 _ . -`},
		{"stream without kind", "GET", "/streams/lobby", "", nil, 400, "bad_request", `stream id "lobby" is not <kind>:<id>`},
		{"failed validation", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", ""), nil, 400, "bad_request", "text must be 1-4096 characters, got 0"},
		{"unknown command", "POST", "/streams/room:a/commands", `{"type":"Shout","data":{}}`, nil, 400, "bad_request", `room streams have no command "Shout"`},
		{"unknown data field", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{"user":"ann","text":"hi","mood":1}}`, nil, 400, "bad_request", `data: unknown field "mood"`},
		{"wrong data type", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{"user":"ann","text":7}}`, nil, 400, "bad_request", `data: field "text": a JSON number is not allowed here`},
		{"wrong expected version", "POST", "/streams/game:over/commands", `{"type":"EndGame"}`, []string{"If-Match", "5"}, 409, "wrong_expected_version", "expected version 5, the stream is at 1"},
		{"no state", "GET", "/streams/room:empty", "", nil, 404, "not_found", "stream room:empty has no events"},
		{"conflict", "POST", "/streams/game:over/commands", `{"type":"EndGame"}`, nil, 409, "conflict", "the game has ended already"},
		{"bad If-Match", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), []string{"If-Match", "abc"}, 400, "bad_request", `If-Match must be a stream version, got "abc"`},
		{"bad Idempotency-Key", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), []string{"Idempotency-Key", strings.Repeat("k", 129)}, 400, "bad_request", "idempotency key longer than 128 bytes"},
		{"not JSON", "POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", `the body must be application/json, not "text/plain"`},
		{"too large", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{"user":"ann","text":"` + strings.Repeat("x", 70<<10) + `"}}`, nil, 413, "too_large", "the body has 71734 bytes, the limit is 65536"},
		{"bad from", "GET", "/streams/room:a/events?from=-1", "", nil, 400, "bad_request", `from must be a version (0 or more), got "-1"`},
		{"bad limit", "GET", "/streams/room:a/events?limit=0", "", nil, 400, "bad_request", `limit must be 1-1000, got "0"`},
		{"unknown route", "GET", "/nope", "", nil, 404, "not_found", "no route for this method and path"},
		{"unknown method", "DELETE", "/healthz", "", nil, 404, "not_found", "no route for this method and path"},
		{"websocket path without upgrade", "GET", "/ws", "", nil, 400, "bad_request", "/ws is a WebSocket endpoint: send an upgrade request"},
		{"signup bad email", "POST", "/signup", `{"email":"nope","name":"x"}`, nil, 400, "bad_request", `email "nope" is not a valid address`},
		{"signup unknown field", "POST", "/signup", `{"email":"a@b.co","name":"x","age":3}`, nil, 400, "bad_request", `malformed JSON: unknown field "age"`},
		{"orders no items", "POST", "/orders", `{"items":[]}`, nil, 400, "bad_request", "an order has 1-50 items, got 0"},
		{"orders wrong type", "POST", "/orders", `{"items":[{"name":"tea","qty":"2"}]}`, nil, 400, "bad_request", `malformed JSON: field "items.qty": a JSON string is not allowed here`},
		{"orders not JSON", "POST", "/orders", `{"items":[]}`, []string{"Content-Type", "application/xml"}, 415, "unsupported_media_type", `the body must be application/json, not "application/xml"`},
		{"update-score bad score", "POST", "/update-score?team=home&score=lots", "", nil, 400, "bad_request", `score must be a whole number, got "lots"`},
		{"update-score negative", "POST", "/update-score?team=home&score=-1", "", nil, 400, "bad_request", "score must be 0 or more, got -1"},
		{"update-score bad game", "POST", "/update-score?game=a%20b&team=home&score=1", "", nil, 400, "bad_request", `stream id "game:a b": the id may hold only A-Z a-z 0-9 _ . -`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := transporttest.WantProblem(t, h.Do(c.method, c.path, c.body, c.headers...), c.status, c.code)
			if m["detail"] != c.detail {
				t.Fatalf("detail %q, want %q", m["detail"], c.detail)
			}
		})
	}
	// Bad input does not disturb the server.
	if r := h.Do("POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "still here")); r.Status != 200 {
		t.Fatalf("after errors: %d %s", r.Status, r.Body)
	}
}

func TestHTTPFaults(t *testing.T) {
	t.Run("internal error leaks nothing", func(t *testing.T) {
		h := transporttest.New(t)
		h.API.FailType("PostMessage", errors.New("disk on fire at /var/secret"))
		m := transporttest.WantProblem(t, h.Do("POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi")), 500, "internal")
		if strings.Contains(fmt.Sprint(m), "secret") || strings.Contains(fmt.Sprint(m), "fire") {
			t.Fatalf("internal detail leaked: %v", m)
		}
	})
	t.Run("runtime unavailable", func(t *testing.T) {
		h := transporttest.New(t)
		h.API.FailType("PostMessage", fmt.Errorf("%w: stopping", actors.ErrUnavailable))
		r := h.Do("POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi"))
		transporttest.WantProblem(t, r, 503, "unavailable")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
	})
	t.Run("actor answers too late", func(t *testing.T) {
		h := transporttest.New(t, func(c *transport.Config) { c.CommandTimeout = 50 * time.Millisecond })
		hold := h.API.HoldType("PostMessage")
		defer hold.Open()
		m := transporttest.WantProblem(t, h.Do("POST", "/streams/room:a/commands", transporttest.PostMessage("ann", "hi")), 503, "unavailable")
		if !strings.Contains(m["detail"].(string), "in time") {
			t.Fatalf("detail %v", m["detail"])
		}
	})
}

func TestServeRequestIDAndLog(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.RequestLogEvery = 1 })
	r := h.Do("GET", "/healthz", "", "X-Request-Id", "req-42")
	if got := r.Header.Get("X-Request-Id"); got != "req-42" {
		t.Fatalf("X-Request-Id %q, want req-42", got)
	}
	r = h.Do("GET", "/nope", "")
	gen := r.Header.Get("X-Request-Id")
	if gen == "" {
		t.Fatal("no generated X-Request-Id")
	}
	for _, c := range []struct {
		id, path string
		status   int64
	}{{"req-42", "/healthz", 200}, {gen, "/nope", 404}} {
		rec := h.Logs.Find(func(m map[string]any) bool { return m["msg"] == "http request" && m["request_id"] == c.id })
		if rec == nil {
			t.Fatalf("no log line for %s", c.id)
		}
		if rec["method"] != "GET" || rec["path"] != c.path || rec["status"] != c.status || rec["duration"] == nil {
			t.Fatalf("log line %v", rec)
		}
	}
}

// TestRequestLogSampling: a quick success is logged one time in
// RequestLogEvery, marked "sampled"; an error always.
func TestRequestLogSampling(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.RequestLogEvery = 3 })
	var ids []string
	for range 6 {
		ids = append(ids, h.Do("GET", "/healthz", "").Header.Get("X-Request-Id"))
	}
	var logged []string
	for _, id := range ids {
		if rec := h.Logs.Find(func(m map[string]any) bool { return m["msg"] == "http request" && m["request_id"] == id }); rec != nil {
			if rec["sampled"] != int64(3) {
				t.Fatalf("a sampled line without its rate: %v", rec)
			}
			logged = append(logged, id)
		}
	}
	if len(logged) != 2 {
		t.Fatalf("%d of 6 quick successes logged, want 2 (one in 3)", len(logged))
	}
	for range 3 {
		id := h.Do("GET", "/nope", "").Header.Get("X-Request-Id")
		rec := h.Logs.Find(func(m map[string]any) bool { return m["msg"] == "http request" && m["request_id"] == id })
		if rec == nil || rec["status"] != int64(404) || rec["sampled"] != nil {
			t.Fatalf("an error request's log line: %v", rec)
		}
	}
}

func TestReadyzWhileDraining(t *testing.T) {
	h := transporttest.New(t)
	transport.Draining(h.Srv).Store(true)
	defer transport.Draining(h.Srv).Store(false)
	resp, err := transport.ServeRequest(h.Srv, httptest.NewRequest("GET", "/readyz", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("readyz while draining: %d", resp.StatusCode)
	}
	resp, err = transport.ServeRequest(h.Srv, httptest.NewRequest("POST", "/streams/room:a/commands", strings.NewReader(transporttest.PostMessage("ann", "hi"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("command while draining: %d", resp.StatusCode)
	}
}
