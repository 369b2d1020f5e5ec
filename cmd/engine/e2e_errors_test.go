package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/events"
)

// watcher is a second, well-behaved client: subscribed to its own room, it
// must keep receiving events whatever the other clients send.
type watcher struct {
	stream string
	seen   *collector[events.Event]
	post   func(text string) error // appends a message to stream
	beats  int
}

func newWatcher(t *testing.T, e *engine, opts client.Options, post func(stream, text string) error) *watcher {
	t.Helper()
	w := &watcher{stream: "room:watch", seen: newCollector[events.Event]()}
	w.post = func(text string) error { return post(w.stream, text) }
	c := e.dialClient(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, w.stream, client.From(0), "", w.seen.add); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	return w
}

// check appends a message and waits until the watcher has received it.
func (w *watcher) check(t *testing.T, after string) {
	t.Helper()
	w.beats++
	text := fmt.Sprintf("beat %d after %s", w.beats, after)
	if err := w.post(text); err != nil {
		t.Fatalf("watcher beat after %s: %v", after, err)
	}
	w.seen.waitFor(t, "the watcher's event after "+after, func(evs []events.Event) bool {
		if len(evs) == 0 {
			return false
		}
		var d struct{ Text string }
		_ = json.Unmarshal(evs[len(evs)-1].Data, &d)
		return d.Text == text
	})
}

// httpPost is a watcher's post through the HTTP API, with a token when
// auth is on.
func httpPost(e *engine, token string) func(stream, text string) error {
	return func(stream, text string) error {
		hdr := map[string]string{}
		if token != "" {
			hdr["Authorization"] = "Bearer " + token
		}
		body, _ := json.Marshal(map[string]any{"type": "PostMessage", "data": map[string]string{"user": "watcher", "text": text}})
		r, err := e.request("POST", "/streams/"+stream+"/commands", body, hdr)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("post: %s", r)
		}
		return nil
	}
}

func TestE2EBadInputHTTP(t *testing.T) {
	e := startEngine(t, t.TempDir())
	w := newWatcher(t, e, client.Options{}, httpPost(e, ""))

	// Streams the cases need.
	e.command("game:ifmatch", "UpdateScore", map[string]any{"team": "home", "score": 1})
	e.command("game:over", "EndGame", map[string]any{})
	if r := e.do("POST", "/signup", []byte(`{"email":"carol@example.com","name":"Carol"}`), nil); r.status != http.StatusAccepted {
		t.Fatalf("signup: %s", r)
	}

	post := `{"type":"PostMessage","data":{"user":"ann","text":"hi"}}`
	tests := []struct {
		name         string
		method, path string
		hdr          map[string]string
		body         string
		status       int
		code         string
	}{
		{"malformed JSON", "POST", "/streams/room:lobby/commands", nil, `{"type":"PostMessage","data":`, 400, "bad_request"},
		{"unknown field", "POST", "/streams/room:lobby/commands", nil, `{"type":"PostMessage","data":{"user":"ann","text":"hi"},"extra":1}`, 400, "bad_request"},
		{"unknown command", "POST", "/streams/room:lobby/commands", nil, `{"type":"Dance","data":{}}`, 400, "bad_request"},
		{"unknown stream kind", "POST", "/streams/planet:mars/commands", nil, post, 400, "bad_request"},
		{"bad stream id", "POST", "/streams/room:bad*id/commands", nil, post, 400, "bad_request"},
		{"stream id too long", "POST", "/streams/room:" + strings.Repeat("x", 65) + "/commands", nil, post, 400, "bad_request"},
		{"failed validation", "POST", "/streams/room:lobby/commands", nil, `{"type":"PostMessage","data":{"user":"ann","text":""}}`, 400, "bad_request"},
		{"failed validation on a seed route", "POST", "/signup", nil, `{"email":"not an address","name":"x"}`, 400, "bad_request"},
		{"oversized body", "POST", "/streams/room:lobby/commands", nil,
			`{"type":"PostMessage","data":{"user":"ann","text":"` + strings.Repeat("x", 70<<10) + `"}}`, 413, "too_large"},
		{"wrong If-Match", "POST", "/streams/game:ifmatch/commands", map[string]string{"If-Match": `"7"`},
			`{"type":"UpdateScore","data":{"team":"home","score":2}}`, 409, "wrong_expected_version"},
		{"non-JSON body", "POST", "/streams/room:lobby/commands", map[string]string{"Content-Type": "text/plain"}, "hi", 415, "unsupported_media_type"},
		{"unknown route", "GET", "/no/such/route", nil, "", 404, "not_found"},
		{"known path, other method", "DELETE", "/streams/room:lobby", nil, "", 404, "not_found"},
		{"stream with no events", "GET", "/streams/room:empty", nil, "", 404, "not_found"},
		{"conflict: game ended", "POST", "/streams/game:over/commands", nil, `{"type":"UpdateScore","data":{"team":"home","score":1}}`, 409, "conflict"},
		{"conflict: email taken", "POST", "/signup", nil, `{"email":"Carol@Example.com","name":"Carol again"}`, 409, "conflict"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			expectProblem(t, e.do(tc.method, tc.path, body, tc.hdr), tc.status, tc.code)
			w.check(t, tc.name)
		})
	}

	// Nothing refused was stored.
	for stream, want := range map[string]string{"game:ifmatch": "1", "game:over": "1"} {
		if v, err := e.stateField(stream, "version"); err != nil || v != want {
			t.Errorf("%s at version %s, %v; want %s", stream, v, err, want)
		}
	}
	expectProblem(t, e.do("GET", "/streams/room:lobby", nil, nil), 404, "not_found")
}

func TestE2EBadInputWebSocket(t *testing.T) {
	e := startEngine(t, t.TempDir())
	w := newWatcher(t, e, client.Options{}, httpPost(e, ""))
	e.command("game:over", "EndGame", map[string]any{})

	bad := e.dialRaw(t, "/ws", nil)
	tests := []struct {
		name  string
		frame string
		ref   *string
		code  string
	}{
		{"malformed JSON", `{"op":"command",`, nil, "bad_request"},
		{"unknown op", `{"op":"dance","ref":"r1"}`, ref("r1"), "bad_request"},
		{"unknown field", `{"op":"ping","ref":"r2","extra":true}`, ref("r2"), "bad_request"},
		{"unknown stream kind", `{"op":"subscribe","stream":"planet:mars","from":0,"ref":"r3"}`, ref("r3"), "bad_request"},
		{"bad stream id", `{"op":"command","stream":"room:bad*id","type":"PostMessage","data":{"user":"a","text":"b"},"ref":"r4"}`, ref("r4"), "bad_request"},
		{"failed validation", `{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"a","text":""},"ref":"r5"}`, ref("r5"), "bad_request"},
		{"unknown command", `{"op":"command","stream":"room:lobby","type":"Dance","ref":"r6"}`, ref("r6"), "bad_request"},
		{"conflict", `{"op":"command","stream":"game:over","type":"UpdateScore","data":{"team":"a","score":1},"ref":"r7"}`, ref("r7"), "conflict"},
		{"error without ref", `{"op":"dance"}`, nil, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad.writeText(t, tc.frame)
			f := bad.nextReply(t)
			if f.Op != "error" || f.Code != tc.code || refString(f.Ref) != refString(tc.ref) || f.Message == "" {
				t.Fatalf("got %+v (ref %s), want error %s with ref %s", f, refString(f.Ref), tc.code, refString(tc.ref))
			}
			w.check(t, tc.name)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if err := bad.c.Write(ctx, websocket.MessageBinary, []byte(`{"op":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if f := bad.nextReply(t); f.Op != "error" || f.Code != "bad_request" {
			t.Fatalf("got %+v, want error bad_request", f)
		}
		w.check(t, "a binary frame")
	})
	t.Run("the connection stays open after errors", func(t *testing.T) {
		bad.writeJSON(t, map[string]any{"op": "ping", "ref": "still-there"})
		if f := bad.nextReply(t); f.Op != "pong" || refString(f.Ref) != "still-there" {
			t.Fatalf("got %+v, want pong", f)
		}
	})
	t.Run("oversized frame closes with 1009", func(t *testing.T) {
		big := e.dialRaw(t, "/ws", nil)
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		frame := `{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"a","text":"` + strings.Repeat("x", 70<<10) + `"},"ref":"big"}`
		// The server may close while the frame is still going out; the
		// close code is what counts.
		_ = big.c.Write(ctx, websocket.MessageText, []byte(frame))
		code, rest := big.closeStatus(t)
		if code != websocket.StatusMessageTooBig {
			t.Fatalf("closed with %v (after %d messages), want 1009", code, len(rest))
		}
		w.check(t, "an oversized frame")
		bad.writeJSON(t, map[string]any{"op": "ping", "ref": "neighbour"})
		if f := bad.nextReply(t); f.Op != "pong" {
			t.Fatalf("another connection after the 1009: %+v, want pong", f)
		}
	})
	if v, err := e.stateField("room:lobby", "version"); err != nil || v != "" {
		t.Errorf("room:lobby holds events (version %s, %v): a refused command was stored", v, err)
	}
}

// token signs an HS256 token for sub; streams nil means every stream.
func token(t *testing.T, secret, sub string, streams []string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": exp.Unix()}
	if streams != nil {
		claims["streams"] = streams
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestE2EAuth(t *testing.T) {
	const secret = "e2e-secret"
	e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.JWTSecret = secret })
	hour := time.Now().Add(time.Hour)
	full := token(t, secret, "watcher", nil, hour)
	ann := token(t, secret, "ann", nil, hour)
	gamesOnly := token(t, secret, "ann", []string{"game:*"}, hour)
	w := newWatcher(t, e, client.Options{Token: full}, httpPost(e, full))

	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	postAs := func(user string) string {
		return fmt.Sprintf(`{"type":"PostMessage","data":{"user":%q,"text":"hi"}}`, user)
	}
	tests := []struct {
		name   string
		hdr    map[string]string
		path   string
		body   string
		status int
		code   string
	}{
		{"no token", nil, "/streams/room:lobby/commands", postAs("ann"), 401, "unauthorized"},
		{"not a token", bearer("not-a-jwt"), "/streams/room:lobby/commands", postAs("ann"), 401, "unauthorized"},
		{"signed with another key", bearer(token(t, "other", "ann", nil, hour)), "/streams/room:lobby/commands", postAs("ann"), 401, "unauthorized"},
		{"expired", bearer(token(t, secret, "ann", nil, time.Now().Add(-time.Hour))), "/streams/room:lobby/commands", postAs("ann"), 401, "unauthorized"},
		{"stream not allowed", bearer(gamesOnly), "/streams/room:lobby/commands", postAs("ann"), 403, "forbidden"},
		{"speaking as another user", bearer(ann), "/streams/room:lobby/commands", postAs("bob"), 403, "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, []byte(tc.body), tc.hdr)
			expectProblem(t, r, tc.status, tc.code)
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q, want Bearer", r.header.Get("WWW-Authenticate"))
			}
			w.check(t, tc.name)
		})
	}
	t.Run("allowed", func(t *testing.T) {
		if r := e.do("POST", "/streams/room:lobby/commands", []byte(postAs("ann")), bearer(ann)); r.status != http.StatusOK {
			t.Fatalf("ann posting as ann: %s", r)
		}
		if r := e.do("POST", "/streams/game:g1/commands", []byte(`{"type":"UpdateScore","data":{"team":"a","score":1}}`), bearer(gamesOnly)); r.status != http.StatusOK {
			t.Fatalf("a games-only token on a game: %s", r)
		}
		if r := e.do("GET", "/healthz", nil, nil); r.status != http.StatusOK {
			t.Fatalf("/healthz without a token: %s", r)
		}
	})
	t.Run("upgrade without a token", func(t *testing.T) {
		_, resp, err := e.tryDialRaw("/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial without a token: %v, %v; want 401", err, resp)
		}
		w.check(t, "an upgrade without a token")
	})
	t.Run("upgrade speaking as another user", func(t *testing.T) {
		_, resp, err := e.tryDialRaw("/chat-room?user=bob&token="+url.QueryEscape(ann), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial /chat-room as bob with ann's token: %v, %v; want 403", err, resp)
		}
	})
	t.Run("ws stream not allowed", func(t *testing.T) {
		c := e.dialRaw(t, "/ws?token="+url.QueryEscape(gamesOnly), nil)
		c.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:lobby", "from": 0, "ref": "no"})
		if f := c.nextReply(t); f.Op != "error" || f.Code != "forbidden" || refString(f.Ref) != "no" {
			t.Fatalf("subscribe to a room with a games-only token: %+v", f)
		}
		c.writeJSON(t, map[string]any{"op": "command", "stream": "room:lobby", "type": "PostMessage", "data": map[string]string{"user": "ann", "text": "x"}, "ref": "no2"})
		if f := c.nextReply(t); f.Op != "error" || f.Code != "forbidden" || refString(f.Ref) != "no2" {
			t.Fatalf("command to a room with a games-only token: %+v", f)
		}
		c.writeJSON(t, map[string]any{"op": "subscribe", "stream": "game:g1", "from": 0, "ref": "yes"})
		if f := c.nextReply(t); f.Op != "subscribed" || refString(f.Ref) != "yes" {
			t.Fatalf("subscribe to a game with a games-only token: %+v", f)
		}
		w.check(t, "forbidden frames")
	})
	// Only ann's one allowed message is in the room.
	if v, err := e.stateFieldAuth("room:lobby", "version", full); err != nil || v != "1" {
		t.Errorf("room:lobby at version %q, %v; want 1", v, err)
	}
}

// stateFieldAuth is stateField with a bearer token.
func (e *engine) stateFieldAuth(stream, field, tok string) (string, error) {
	r, err := e.request("GET", "/streams/"+stream, nil, map[string]string{"Authorization": "Bearer " + tok})
	if err != nil {
		return "", err
	}
	if r.status != http.StatusOK {
		return "", fmt.Errorf("GET /streams/%s: %s", stream, r)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		return "", err
	}
	return string(m[field]), nil
}

func TestE2ERateLimit(t *testing.T) {
	// One client address (127.0.0.1), a bucket of 3 that practically never
	// refills: the watcher's upgrade and subscribe and one more upgrade
	// take all of it.
	e := startEngine(t, t.TempDir(), func(m *Main) {
		m.Config.RateLimit = 0.001
		m.Config.RateBurst = 3
	})
	// The watcher's beats go through the runtime: every HTTP request from
	// this address is throttled now.
	w := newWatcher(t, e, client.Options{}, func(stream, text string) error {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		data, _ := json.Marshal(map[string]string{"user": "watcher", "text": text})
		_, err := e.m.Runtime().Execute(ctx, decider.Command{Stream: stream, Type: "PostMessage", Data: data, Time: time.Now()}, events.AnyVersion)
		return err
	})
	ws := e.dialRaw(t, "/ws", nil)

	t.Run("ws frame", func(t *testing.T) {
		ws.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:lobby", "from": 0, "ref": "s"})
		if f := ws.nextReply(t); f.Op != "error" || f.Code != "rate_limited" || refString(f.Ref) != "s" {
			t.Fatalf("got %+v, want error rate_limited", f)
		}
		// Pings are not throttled, and the connection stays open.
		ws.writeJSON(t, map[string]any{"op": "ping", "ref": "p"})
		if f := ws.nextReply(t); f.Op != "pong" {
			t.Fatalf("got %+v, want pong", f)
		}
		w.check(t, "a throttled frame")
	})
	t.Run("http", func(t *testing.T) {
		r := e.do("POST", "/streams/room:lobby/commands", []byte(`{"type":"PostMessage","data":{"user":"ann","text":"hi"}}`), nil)
		expectProblem(t, r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		w.check(t, "a throttled request")
	})
	t.Run("upgrade", func(t *testing.T) {
		_, resp, err := e.tryDialRaw("/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("dial: %v, %v; want 429", err, resp)
		}
		w.check(t, "a throttled upgrade")
	})
	t.Run("probes are not throttled", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := e.do("GET", p, nil, nil); r.status != http.StatusOK {
				t.Errorf("%s: %s", p, r)
			}
		}
	})
}
