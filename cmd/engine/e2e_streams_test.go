package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// streamsPage is the body of GET /streams.
type streamsPage struct {
	Kind    string `json:"kind"`
	Streams []struct {
		Stream  string `json:"stream"`
		Version uint64 `json:"version"`
	} `json:"streams"`
	Next *string `json:"next"`
}

func (p streamsPage) String() string {
	var b strings.Builder
	for i, s := range p.Streams {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s@%d", s.Stream, s.Version)
	}
	next := "null"
	if p.Next != nil {
		next = *p.Next
	}
	return b.String() + " next=" + next
}

func (e *engine) listStreams(query string, hdr map[string]string) streamsPage {
	e.t.Helper()
	r := e.do("GET", "/streams?"+query, nil, hdr)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /streams?%s: %s", query, r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Errorf("GET /streams?%s: Content-Type %q", query, ct)
	}
	var p streamsPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatalf("GET /streams?%s: %q: %v", query, r.body, err)
	}
	return p
}

func post(e *engine, stream, user, text string) {
	e.t.Helper()
	e.command(stream, "PostMessage", map[string]string{"user": user, "text": text})
}

func TestE2EListStreams(t *testing.T) {
	e := startEngine(t, t.TempDir())
	post(e, "room:b", "ann", "1")
	post(e, "room:a", "ann", "1")
	post(e, "room:a", "ann", "2")
	post(e, "room:C", "ann", "1")
	e.command("game:z", "UpdateScore", map[string]any{"team": "home", "score": 1})

	for _, c := range []struct{ query, want string }{
		{"kind=room", "room:C@1 room:a@2 room:b@1 next=null"},
		{"kind=room&limit=3", "room:C@1 room:a@2 room:b@1 next=null"},
		{"kind=room&limit=2", "room:C@1 room:a@2 next=room:a"},
		{"kind=room&after=room:a&limit=2", "room:b@1 next=null"},
		{"kind=room&after=room%3AC&limit=1", "room:a@2 next=room:a"},
		{"kind=room&after=room:b", " next=null"},
		{"kind=room&after=room:zzz&limit=500", " next=null"},
		{"kind=game&limit=1", "game:z@1 next=null"},
		{"kind=order", " next=null"},
	} {
		p := e.listStreams(c.query, nil)
		if got := p.String(); got != c.want {
			t.Errorf("GET /streams?%s: %s, want %s", c.query, got, c.want)
		}
		if p.Streams == nil {
			t.Errorf("GET /streams?%s: streams is null, want a list", c.query)
		}
		if want := strings.TrimPrefix(strings.SplitN(c.query, "&", 2)[0], "kind="); p.Kind != want {
			t.Errorf("GET /streams?%s: kind %q, want %q", c.query, p.Kind, want)
		}
	}
	// Paging by the last name visits every stream once.
	var all []string
	after := ""
	for range 10 {
		p := e.listStreams("kind=room&limit=1&after="+after, nil)
		for _, s := range p.Streams {
			all = append(all, s.Stream)
		}
		if p.Next == nil {
			break
		}
		after = *p.Next
	}
	if got := strings.Join(all, " "); got != "room:C room:a room:b" {
		t.Errorf("paging by 1: %s", got)
	}

	for _, q := range []string{
		"", "kind=", "kind=nope", "kind=Room", "kind=room:a",
		"kind=room&limit=0", "kind=room&limit=501", "kind=room&limit=x", "kind=room&limit=-1", "kind=room&limit=",
		"kind=room&after=game:z", "kind=room&after=lobby",
	} {
		t.Run(q, func(t *testing.T) {
			expectProblem(t, e.do("GET", "/streams?"+q, nil, nil), http.StatusBadRequest, "bad_request")
		})
	}
}

func TestE2EStateAt(t *testing.T) {
	e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.SnapshotEvery = 2 })
	for i := 1; i <= 5; i++ {
		post(e, "room:h", "ann", fmt.Sprint("m", i))
	}
	epoch := e.m.Store().Epoch()
	for n := 1; n <= 5; n++ {
		r := e.do("GET", fmt.Sprintf("/streams/room:h?at=%d", n), nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("?at=%d: %s", n, r)
		}
		var st struct {
			Stream   string `json:"stream"`
			Version  int    `json:"version"`
			Epoch    string `json:"epoch"`
			Messages []struct {
				Version int    `json:"version"`
				Text    string `json:"text"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(r.body, &st); err != nil {
			t.Fatal(err)
		}
		if st.Stream != "room:h" || st.Version != n || st.Epoch != epoch || len(st.Messages) != n || st.Messages[n-1].Text != fmt.Sprint("m", n) {
			t.Errorf("?at=%d: %s", n, r.body)
		}
		if tag := r.header.Get("ETag"); tag != fmt.Sprintf(`"%d"`, n) {
			t.Errorf("?at=%d: ETag %s", n, tag)
		}
	}
	// At the current version it is the plain GET's state.
	cur := e.state("room:h")
	if r := e.do("GET", "/streams/room:h?at=5", nil, nil); !jsonEqual(t, string(r.body), string(cur)) {
		t.Errorf("?at=5 = %s, GET = %s", r.body, cur)
	}
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/streams/room:h?at=6", 404, "not_found"},
		{"/streams/room:h?at=0", 404, "not_found"},
		{"/streams/room:none?at=1", 404, "not_found"},
		{"/streams/room:h?at=-1", 400, "bad_request"},
		{"/streams/room:h?at=x", 400, "bad_request"},
		{"/streams/room:h?at=", 400, "bad_request"},
		{"/streams/room:h?at=1.0", 400, "bad_request"},
		{"/streams/nope:h?at=1", 400, "bad_request"},
	} {
		t.Run(c.path, func(t *testing.T) {
			p := expectProblem(t, e.do("GET", c.path, nil, nil), c.status, c.code)
			if c.path == "/streams/room:h?at=6" && !strings.Contains(p.Detail, "no version 6") {
				t.Errorf("detail %q, want it to name the version", p.Detail)
			}
		})
	}
}

// adminToken signs an HS256 token with "admin": true.
func adminToken(t *testing.T, secret, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "admin": true}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With auth on, only admins list a private kind; shared kinds are listed
// to any token, within its streams claim; ?at follows the read rule.
func TestE2EStreamsAuth(t *testing.T) {
	const secret = "e2e-streams-secret"
	e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.JWTSecret = secret })
	hour := time.Now().Add(time.Hour)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	ann, bob := bearer(token(t, secret, "ann", nil, hour)), bearer(token(t, secret, "bob", nil, hour))
	roomA := bearer(token(t, secret, "ann", []string{"room:a*"}, hour))
	admin := bearer(adminToken(t, secret, "root"))

	for _, s := range []string{"room:a", "room:ab", "room:b"} {
		if r := e.do("POST", "/streams/"+s+"/commands", []byte(`{"type":"PostMessage","data":{"user":"ann","text":"hi"}}`), ann); r.status != 200 {
			t.Fatalf("post to %s: %s", s, r)
		}
	}
	r := e.do("POST", "/orders", []byte(`{"items":[{"name":"tea","qty":1}]}`), ann)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /orders: %s", r)
	}
	var placed struct{ Order string }
	if err := json.Unmarshal(r.body, &placed); err != nil {
		t.Fatal(err)
	}

	expectProblem(t, e.do("GET", "/streams?kind=room", nil, nil), http.StatusUnauthorized, "unauthorized")
	expectProblem(t, e.do("GET", "/streams?kind=order", nil, ann), http.StatusForbidden, "forbidden")
	expectProblem(t, e.do("GET", "/streams?kind=user", nil, ann), http.StatusForbidden, "forbidden")
	if got := e.listStreams("kind=room", ann).String(); got != "room:a@1 room:ab@1 room:b@1 next=null" {
		t.Errorf("rooms for ann: %s", got)
	}
	if got := e.listStreams("kind=room&limit=1", roomA).String(); got != "room:a@1 next=room:a" {
		t.Errorf("rooms for a token of room:a*, first page: %s", got)
	}
	if got := e.listStreams("kind=room&limit=1&after=room:a", roomA).String(); got != "room:ab@1 next=null" {
		t.Errorf("rooms for a token of room:a*, second page: %s", got)
	}
	if p := e.listStreams("kind=order", admin); len(p.Streams) != 1 || p.Streams[0].Stream != placed.Order {
		t.Errorf("orders for an admin: %s, want %s", p, placed.Order)
	}

	// ?at: the owner and admins read the order's past; others are refused,
	// whatever the version.
	for _, who := range []map[string]string{ann, admin} {
		if r := e.do("GET", "/streams/"+placed.Order+"?at=1", nil, who); r.status != http.StatusOK {
			t.Errorf("order ?at=1 by its owner or an admin: %s", r)
		}
	}
	expectProblem(t, e.do("GET", "/streams/"+placed.Order+"?at=1", nil, bob), http.StatusForbidden, "forbidden")
	expectProblem(t, e.do("GET", "/streams/"+placed.Order+"?at=999", nil, bob), http.StatusForbidden, "forbidden")
}

// subscribedWithState is a subscribed frame with its state.
type subscribedWithState struct {
	Op      string          `json:"op"`
	Stream  string          `json:"stream"`
	Version uint64          `json:"version"`
	Epoch   string          `json:"epoch"`
	Ref     string          `json:"ref"`
	State   json.RawMessage `json:"state"`
	Code    string          `json:"code"`
}

func TestE2ESubscribeWithState(t *testing.T) {
	e := startEngine(t, t.TempDir())
	post(e, "room:s", "ann", "one")
	post(e, "room:s", "bob", "two")
	rc := e.dialRaw(t, "/ws", nil)

	read := func() subscribedWithState {
		t.Helper()
		var f subscribedWithState
		if err := json.Unmarshal([]byte(rc.nextText(t)), &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	rc.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:s", "ref": "r1", "state": true, "from": 0})
	f := read()
	if f.Op != "subscribed" || f.Version != 2 || f.Ref != "r1" || f.Epoch != e.m.Store().Epoch() {
		t.Fatalf("reply %+v", f)
	}
	at := e.do("GET", "/streams/room:s?at=2", nil, nil)
	if at.status != http.StatusOK || !jsonEqual(t, string(f.State), string(at.body)) {
		t.Fatalf("state %s, GET ?at=2 %s", f.State, at)
	}
	// The catch-up follows the reply, then live events.
	for _, want := range []uint64{1, 2} {
		if ev := rc.nextFrame(t); ev.Op != "event" || ev.Version != want {
			t.Fatalf("after the reply: %+v, want event %d", ev, want)
		}
	}
	post(e, "room:s", "cy", "three")
	for {
		ev := rc.nextFrame(t)
		if ev.Op == "presence" {
			continue
		}
		if ev.Op != "event" || ev.Version != 3 {
			t.Fatalf("live: %+v, want event 3", ev)
		}
		break
	}

	// A stream with no events: "state":null.
	rc.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:empty", "ref": "r2", "state": true})
	var raw map[string]json.RawMessage
	for {
		s := rc.nextText(t)
		raw = nil
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["op"]) == `"subscribed"` {
			break
		}
	}
	if st, ok := raw["state"]; !ok || string(st) != "null" || string(raw["version"]) != "0" {
		t.Fatalf("subscribe to an empty stream: %v", raw)
	}

	// Without "state" the reply has none.
	rc.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:s", "ref": "r3"})
	for {
		s := rc.nextText(t)
		raw = nil
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["op"]) == `"subscribed"` {
			break
		}
	}
	if _, ok := raw["state"]; ok {
		t.Fatalf("subscribe without state: %v", raw)
	}
}
