package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/user"
)

func post(user, text string) string {
	return fmt.Sprintf(`{"type":"PostMessage","data":{"user":%q,"text":%q}}`, user, text)
}

func TestProbes(t *testing.T) {
	h := newHarness(t)
	t.Run("healthz", func(t *testing.T) {
		r := h.do("GET", "/healthz", "")
		if r.status != 200 || !jsonEq(t, r.json(t), `{"status":"ok"}`) {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		if r := h.do("GET", "/readyz", ""); r.status != 200 {
			t.Fatalf("ready: %d %s", r.status, r.body)
		}
		h.srv.SetReady(false)
		wantProblem(t, h.do("GET", "/readyz", ""), 503, "unavailable")
		h.srv.SetReady(true)
	})
	t.Run("metrics", func(t *testing.T) {
		if r := h.do("POST", "/streams/room:m/commands", post("ann", "hi")); r.status != 200 {
			t.Fatalf("command: %d %s", r.status, r.body)
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
		// after the reply.
		var missing []string
		eventually(t, "every metric", func() bool {
			r := h.do("GET", "/metrics", "")
			missing = missing[:0]
			for _, name := range want {
				if r.status != 200 || !strings.Contains(string(r.body), name) {
					missing = append(missing, name)
				}
			}
			return len(missing) == 0
		})
	})
}

func TestStreamRoutes(t *testing.T) {
	h := newHarness(t)

	r := h.do("POST", "/streams/room:lobby/commands", post("ann", "hi"))
	if r.status != 200 {
		t.Fatalf("command: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["stream"] != "room:lobby" || m["version"] != float64(1) || r.header.Get("ETag") != `"1"` {
		t.Fatalf("reply %s, ETag %s", r.body, r.header.Get("ETag"))
	}
	evs := m["events"].([]any)
	ev := evs[0].(map[string]any)
	if len(evs) != 1 || ev["type"] != "MessagePosted" || ev["version"] != float64(1) || ev["stream"] != "room:lobby" ||
		!jsonEq(t, ev["data"], `{"user":"ann","text":"hi"}`) || ev["id"] == "" || ev["position"] == nil || ev["time"] == nil {
		t.Fatalf("events %v", evs)
	}

	// A percent-encoded stream id is the same stream.
	r = h.do("POST", "/streams/room%3Alobby/commands", post("bob", "yo"))
	if r.status != 200 || r.json(t)["version"] != float64(2) {
		t.Fatalf("encoded: %d %s", r.status, r.body)
	}

	t.Run("state", func(t *testing.T) {
		r := h.do("GET", "/streams/room%3Alobby", "")
		if r.status != 200 || r.header.Get("ETag") != `"2"` {
			t.Fatalf("%d %s", r.status, r.body)
		}
		st := r.json(t)
		if st["stream"] != "room:lobby" || st["version"] != float64(2) || len(st["messages"].([]any)) != 2 {
			t.Fatalf("state %s", r.body)
		}
		wantProblem(t, h.do("GET", "/streams/room:empty", ""), 404, "not_found")
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
				r := h.do("GET", "/streams/room:lobby/events"+c.query, "")
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				m := r.json(t)
				got := m["events"].([]any)
				if len(got) != len(c.versions) || m["next"] != c.next {
					t.Fatalf("got %s", r.body)
				}
				for i, e := range got {
					if e.(map[string]any)["version"] != c.versions[i] {
						t.Fatalf("got %s", r.body)
					}
				}
			})
		}
		r := h.do("GET", "/streams/game:none/events", "")
		if r.status != 200 || !jsonEq(t, r.json(t), `{"events":[],"next":0,"epoch":"`+h.store.Epoch()+`"}`) {
			t.Fatalf("empty stream: %d %s", r.status, r.body)
		}
	})

	t.Run("if-match", func(t *testing.T) {
		wantProblem(t, h.do("POST", "/streams/room:lobby/commands", post("ann", "x"), "If-Match", "1"), 409, "wrong_expected_version")
		r := h.do("POST", "/streams/room:lobby/commands", post("ann", "x"), "If-Match", `"2"`)
		if r.status != 200 || r.json(t)["version"] != float64(3) {
			t.Fatalf("quoted If-Match: %d %s", r.status, r.body)
		}
		r = h.do("POST", "/streams/room:lobby/commands", post("ann", "y"), "If-Match", "3")
		if r.status != 200 || r.json(t)["version"] != float64(4) {
			t.Fatalf("bare If-Match: %d %s", r.status, r.body)
		}
	})

	t.Run("idempotency-key", func(t *testing.T) {
		first := h.do("POST", "/streams/room:idem/commands", post("ann", "once"), "Idempotency-Key", "k-1")
		again := h.do("POST", "/streams/room:idem/commands", post("ann", "once"), "Idempotency-Key", "k-1")
		if first.status != 200 || again.status != 200 || string(first.body) != string(again.body) {
			t.Fatalf("first %d %s, again %d %s", first.status, first.body, again.status, again.body)
		}
		r := h.do("GET", "/streams/room:idem/events", "")
		if n := len(r.json(t)["events"].([]any)); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/streams/game:over/commands", `{"type":"EndGame"}`)
	for _, c := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/streams/room:a/commands", `{"type":`, nil, 400, "bad_request"},
		{"unknown field", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{},"extra":1}`, nil, 400, "bad_request"},
		{"trailing data", "POST", "/streams/room:a/commands", `{"type":"PostMessage"} {}`, nil, 400, "bad_request"},
		{"data not an object", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":[1]}`, nil, 400, "bad_request"},
		{"missing type", "POST", "/streams/room:a/commands", `{"data":{}}`, nil, 400, "bad_request"},
		{"empty body", "POST", "/streams/room:a/commands", ``, nil, 400, "bad_request"},
		{"unknown stream kind", "POST", "/streams/planet:mars/commands", post("ann", "hi"), nil, 400, "bad_request"},
		{"bad stream id", "POST", "/streams/room:a%20b/commands", post("ann", "hi"), nil, 400, "bad_request"},
		{"stream without kind", "GET", "/streams/lobby", "", nil, 400, "bad_request"},
		{"failed validation", "POST", "/streams/room:a/commands", post("ann", ""), nil, 400, "bad_request"},
		{"unknown command", "POST", "/streams/room:a/commands", `{"type":"Shout","data":{}}`, nil, 400, "bad_request"},
		{"conflict", "POST", "/streams/game:over/commands", `{"type":"EndGame"}`, nil, 409, "conflict"},
		{"bad If-Match", "POST", "/streams/room:a/commands", post("ann", "hi"), []string{"If-Match", "abc"}, 400, "bad_request"},
		{"bad Idempotency-Key", "POST", "/streams/room:a/commands", post("ann", "hi"), []string{"Idempotency-Key", strings.Repeat("k", 129)}, 400, "bad_request"},
		{"not JSON", "POST", "/streams/room:a/commands", post("ann", "hi"), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"too large", "POST", "/streams/room:a/commands", `{"type":"PostMessage","data":{"user":"ann","text":"` + strings.Repeat("x", 70<<10) + `"}}`, nil, 413, "too_large"},
		{"bad from", "GET", "/streams/room:a/events?from=-1", "", nil, 400, "bad_request"},
		{"bad limit", "GET", "/streams/room:a/events?limit=0", "", nil, 400, "bad_request"},
		{"unknown route", "GET", "/nope", "", nil, 404, "not_found"},
		{"unknown method", "DELETE", "/healthz", "", nil, 404, "not_found"},
		{"websocket path without upgrade", "GET", "/ws", "", nil, 400, "bad_request"},
		{"signup bad email", "POST", "/signup", `{"email":"nope","name":"x"}`, nil, 400, "bad_request"},
		{"signup unknown field", "POST", "/signup", `{"email":"a@b.co","name":"x","age":3}`, nil, 400, "bad_request"},
		{"orders no items", "POST", "/orders", `{"items":[]}`, nil, 400, "bad_request"},
		{"orders wrong type", "POST", "/orders", `{"items":[{"name":"tea","qty":"2"}]}`, nil, 400, "bad_request"},
		{"orders not JSON", "POST", "/orders", `{"items":[]}`, []string{"Content-Type", "application/xml"}, 415, "unsupported_media_type"},
		{"update-score bad score", "POST", "/update-score?team=home&score=lots", "", nil, 400, "bad_request"},
		{"update-score negative", "POST", "/update-score?team=home&score=-1", "", nil, 400, "bad_request"},
		{"update-score bad game", "POST", "/update-score?game=a%20b&team=home&score=1", "", nil, 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := wantProblem(t, h.do(c.method, c.path, c.body, c.headers...), c.status, c.code)
			if m["detail"] == "" {
				t.Fatalf("no detail: %v", m)
			}
		})
	}
	// Bad input does not disturb the server.
	if r := h.do("POST", "/streams/room:a/commands", post("ann", "still here")); r.status != 200 {
		t.Fatalf("after errors: %d %s", r.status, r.body)
	}
}

func TestHTTPFaults(t *testing.T) {
	t.Run("internal error leaks nothing", func(t *testing.T) {
		h := newHarness(t)
		h.api.failType("PostMessage", errors.New("disk on fire at /var/secret"))
		m := wantProblem(t, h.do("POST", "/streams/room:a/commands", post("ann", "hi")), 500, "internal")
		if strings.Contains(fmt.Sprint(m), "secret") || strings.Contains(fmt.Sprint(m), "fire") {
			t.Fatalf("internal detail leaked: %v", m)
		}
	})
	t.Run("runtime unavailable", func(t *testing.T) {
		h := newHarness(t)
		h.api.failType("PostMessage", fmt.Errorf("%w: stopping", actors.ErrUnavailable))
		r := h.do("POST", "/streams/room:a/commands", post("ann", "hi"))
		wantProblem(t, r, 503, "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
	})
	t.Run("actor answers too late", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.CommandTimeout = 50 * time.Millisecond })
		hold := h.api.holdType("PostMessage")
		defer hold.open()
		m := wantProblem(t, h.do("POST", "/streams/room:a/commands", post("ann", "hi")), 503, "unavailable")
		if !strings.Contains(m["detail"].(string), "in time") {
			t.Fatalf("detail %v", m["detail"])
		}
	})
}

func TestRequestIDAndLog(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/healthz", "", "X-Request-Id", "req-42")
	if got := r.header.Get("X-Request-Id"); got != "req-42" {
		t.Fatalf("X-Request-Id %q, want req-42", got)
	}
	r = h.do("GET", "/nope", "")
	gen := r.header.Get("X-Request-Id")
	if gen == "" {
		t.Fatal("no generated X-Request-Id")
	}
	for _, c := range []struct {
		id, path string
		status   int64
	}{{"req-42", "/healthz", 200}, {gen, "/nope", 404}} {
		rec := h.logs.find(func(m map[string]any) bool { return m["msg"] == "http request" && m["request_id"] == c.id })
		if rec == nil {
			t.Fatalf("no log line for %s", c.id)
		}
		if rec["method"] != "GET" || rec["path"] != c.path || rec["status"] != c.status || rec["duration"] == nil {
			t.Fatalf("log line %v", rec)
		}
	}
}

func TestSeedRoutes(t *testing.T) {
	h := newHarness(t)
	t.Run("signup", func(t *testing.T) {
		r := h.do("POST", "/signup", `{"email":"Ann@Example.com","name":"Ann"}`)
		id, _ := user.IDForEmail("ann@example.com")
		if r.status != 202 || !jsonEq(t, r.json(t), `{"message":"Welcome!","user":"user:`+id+`"}`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		wantProblem(t, h.do("POST", "/signup", `{"email":" ann@example.COM ","name":"Ann again"}`), 409, "conflict")
	})
	t.Run("orders", func(t *testing.T) {
		r := h.do("POST", "/orders", `{"items":[{"name":"tea","qty":2}],"email":"bob@example.com"}`)
		if r.status != 202 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		m := r.json(t)
		stream, _ := m["order"].(string)
		if !strings.HasPrefix(stream, "order:") || m["status"] != "placed" || m["version"] != float64(1) {
			t.Fatalf("reply %s", r.body)
		}
		eventually(t, "the order to be ready", func() bool {
			st := h.do("GET", "/streams/"+stream, "")
			return st.status == 200 && st.json(t)["status"] == "ready"
		})
		// The same Idempotency-Key places one order.
		a := h.do("POST", "/orders", `{"items":[{"name":"tea","qty":1}]}`, "Idempotency-Key", "order-7")
		b := h.do("POST", "/orders", `{"items":[{"name":"tea","qty":1}]}`, "Idempotency-Key", "order-7")
		if a.status != 202 || string(a.body) != string(b.body) {
			t.Fatalf("retry: %s then %s", a.body, b.body)
		}
	})
	t.Run("order item waits until ready", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		replies := make([]reply, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", h.base+fmt.Sprintf("/order/fish%%20%d", i), nil)
				resp, err := h.http.Do(req)
				if err != nil {
					replies[i] = reply{status: -1, body: []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				replies[i] = reply{status: resp.StatusCode, body: b}
			}()
		}
		wg.Wait()
		for i, r := range replies {
			if r.status != 200 || !jsonEq(t, r.json(t), fmt.Sprintf(`{"order":"fish %d","status":"ready!"}`, i)) {
				t.Fatalf("order %d: %d %s", i, r.status, r.body)
			}
		}
	})
	t.Run("order item that fails", func(t *testing.T) {
		wantProblem(t, h.do("POST", "/order/"+strings.Repeat("x", 65), ""), 400, "bad_request")
	})
	t.Run("update-score", func(t *testing.T) {
		r := h.do("POST", "/update-score?game=g1&team=home&score=3", "")
		if r.status != 200 || !jsonEq(t, r.json(t), `{"updated":true}`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := h.do("POST", "/update-score?team=away&score=1", ""); r.status != 200 {
			t.Fatalf("default game: %d %s", r.status, r.body)
		}
		st := h.do("GET", "/streams/game:g1", "").json(t)
		main := h.do("GET", "/streams/game:main", "").json(t)
		if !jsonEq(t, st["scores"], `{"home":3}`) || !jsonEq(t, main["scores"], `{"away":1}`) {
			t.Fatalf("g1 %v, main %v", st, main)
		}
	})
}

func TestReadyzWhileDraining(t *testing.T) {
	h := newHarness(t)
	h.srv.draining.Store(true)
	defer h.srv.draining.Store(false)
	resp, err := h.srv.app.Test(httptest.NewRequest("GET", "/readyz", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("readyz while draining: %d", resp.StatusCode)
	}
	resp, err = h.srv.app.Test(httptest.NewRequest("POST", "/streams/room:a/commands", strings.NewReader(post("ann", "hi"))), -1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("command while draining: %d", resp.StatusCode)
	}
}
