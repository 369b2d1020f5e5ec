package apidocs_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport/apidocs"
)

// refs checks that every local "$ref" of doc resolves.
func refs(t *testing.T, name string, doc map[string]any) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				if !resolves(doc, r) {
					t.Errorf("%s: $ref %q does not resolve", name, r)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

func resolves(doc map[string]any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var v any = doc
	for _, tok := range strings.Split(rest, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]; !ok {
			return false
		}
	}
	return true
}

func parse(t *testing.T, name string, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not JSON: %v", name, err)
	}
	return doc
}

// The OpenAPI document is well-formed and structurally sane: version
// 3.1.0, every path has operations, every operation an id and responses,
// every problem response the problem schema, every $ref resolves.
func TestOpenAPIDocument(t *testing.T) {
	doc := parse(t, "openapi.json", apidocs.OpenAPI)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v, want 3.1.0", doc["openapi"])
	}
	refs(t, "openapi.json", doc)
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("no paths")
	}
	ids := map[string]string{}
	for path, item := range paths {
		ops := 0
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			if !slices.Contains([]string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}, method) {
				t.Errorf("%s: %q is not an operation", path, method)
				continue
			}
			ops++
			o := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s: no operationId", method, path)
			} else if other, dup := ids[id]; dup {
				t.Errorf("%s %s: operationId %s is %s's too", method, path, id, other)
			}
			ids[id] = path
			if _, ok := o["security"].([]any); !ok {
				t.Errorf("%s %s: no security (public routes say [])", method, path)
			}
			resp, _ := o["responses"].(map[string]any)
			if len(resp) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			for status := range resp {
				if status == "default" || len(status) != 3 || status[0] < '1' || status[0] > '5' {
					t.Errorf("%s %s: response %q is not a status", method, path, status)
				}
			}
		}
		if ops == 0 {
			t.Errorf("%s: no operations", path)
		}
	}
	// Every problem code of the protocol has a response that names it.
	b := string(apidocs.OpenAPI)
	for _, code := range []string{"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "wrong_expected_version",
		"epoch_changed", "too_large", "idempotency_mismatch", "unsupported_media_type", "rate_limited", "limit_exceeded", "unavailable", "internal"} {
		if !strings.Contains(b, `"`+code+`"`) {
			t.Errorf("problem code %s is not documented", code)
		}
	}
}

// The AsyncAPI document is well-formed and structurally sane: version
// 3.0.0, every channel has an address and messages, every operation a
// known action, a channel and messages of that channel, every $ref
// resolves, every /ws message payload an op.
func TestAsyncAPIDocument(t *testing.T) {
	doc := parse(t, "asyncapi.json", apidocs.AsyncAPI)
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi %v, want 3.0.0", doc["asyncapi"])
	}
	refs(t, "asyncapi.json", doc)
	channels, _ := doc["channels"].(map[string]any)
	for name, ch := range channels {
		c := ch.(map[string]any)
		if a, _ := c["address"].(string); !strings.HasPrefix(a, "/") {
			t.Errorf("channel %s: address %q", name, a)
		}
		if m, _ := c["messages"].(map[string]any); len(m) == 0 {
			t.Errorf("channel %s: no messages", name)
		}
	}
	ops, _ := doc["operations"].(map[string]any)
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	for name, op := range ops {
		o := op.(map[string]any)
		if a := o["action"]; a != "send" && a != "receive" {
			t.Errorf("operation %s: action %v", name, a)
		}
		ch, _ := o["channel"].(map[string]any)
		chRef, _ := ch["$ref"].(string)
		msgs, _ := o["messages"].([]any)
		if len(msgs) == 0 {
			t.Errorf("operation %s: no messages", name)
		}
		for _, m := range msgs {
			r, _ := m.(map[string]any)["$ref"].(string)
			if !strings.HasPrefix(r, chRef+"/messages/") {
				t.Errorf("operation %s: message %s is not of its channel %s", name, r, chRef)
			}
		}
	}
	addresses, frames, err := apidocs.WebSocket(apidocs.AsyncAPI, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addresses, "/ws") || len(frames.ClientOps) == 0 || len(frames.ServerOps) == 0 {
		t.Fatalf("the /ws channel is not read: %q %+v", addresses, frames)
	}
}

// GET /api's page links both documents and loads nothing from elsewhere.
func TestPage(t *testing.T) {
	page := string(apidocs.Page)
	for _, want := range []string{`href="/openapi.json"`, `href="/asyncapi.json"`, "<script>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page has no %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script src", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page refers to something outside it: %s", bad)
		}
	}
}

// Check reports each kind of drift, both ways, and accepts routes
// documented ahead.
func TestCheck(t *testing.T) {
	openapi := []byte(`{"openapi":"3.1.0","paths":{
		"/a/{id}":{"get":{"responses":{"200":{}}}},
		"/b":{"post":{"responses":{"200":{}}}},
		"/later":{"get":{"responses":{"200":{}}}},
		"/files/{file}":{"get":{"responses":{"200":{}}}}}}`)
	asyncapi := []byte(`{"asyncapi":"3.0.0",
		"channels":{"ws":{"address":"/ws","messages":{
			"ping":{"payload":{"$ref":"#/components/schemas/Ping"}},
			"pong":{"payload":{"type":"object","properties":{"op":{"const":"pong"}}}},
			"ev":{"payload":{"type":"object","properties":{"op":{"const":"event"}}}}}}},
		"operations":{
			"ping":{"action":"receive","channel":{"$ref":"#/channels/ws"},"messages":[{"$ref":"#/channels/ws/messages/ping"}],
				"reply":{"messages":[{"$ref":"#/channels/ws/messages/pong"}]}},
			"ev":{"action":"send","channel":{"$ref":"#/channels/ws"},"messages":[{"$ref":"#/channels/ws/messages/ev"}]}},
		"components":{"schemas":{"Ping":{"type":"object","properties":{"op":{"const":"ping"},"ref":{}}}}}}`)
	inv := apidocs.Inventory{
		Routes:         []string{"GET /a/{id}", "POST /b", "GET /files/*", "GET /ws"},
		WebSocketPaths: []string{"/ws"},
		ClientOps:      []string{"ping"},
		ServerOps:      []string{"event", "pong"},
		ClientFields:   []string{"op", "ref"},
	}
	openapiWS := []byte(strings.Replace(string(openapi), `"/b"`, `"/ws":{"get":{"responses":{"101":{}}}},"/b"`, 1))
	r, err := apidocs.Check(inv, openapiWS, asyncapi, []string{"GET /later"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 {
		t.Fatalf("in sync, yet: %q", r.Problems)
	}

	inv.Routes = append(inv.Routes, "DELETE /a/{id}", "USE /static")
	inv.WebSocketPaths = append(inv.WebSocketPaths, "/ws2")
	inv.ClientOps = append(inv.ClientOps, "shout")
	inv.ServerOps = []string{"pong", "shouted"}
	inv.ClientFields = append(inv.ClientFields, "volume")
	r, err = apidocs.Check(inv, openapi, asyncapi, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/ws client frame field \"volume\" is accepted but no client message of asyncapi.json documents it",
		"/ws client op shout is served but not documented in asyncapi.json",
		"/ws server frame op event is documented in asyncapi.json but not served",
		"/ws server frame op shouted is served but not documented in asyncapi.json",
		"WebSocket path /ws2 is served but not documented in asyncapi.json",
		"route DELETE /a/{id} is registered but not documented in openapi.json",
		"route GET /later is documented in openapi.json but not registered",
		"route GET /ws is registered but not documented in openapi.json",
		"route USE /static is registered but not documented in openapi.json",
	}
	if !slices.Equal(r.Problems, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(r.Problems, "\n"), strings.Join(want, "\n"))
	}

	// A route documented ahead that is served is reported as such.
	r, _ = apidocs.Check(apidocs.Inventory{Routes: []string{"GET /later"}}, openapi, asyncapi, []string{"GET /later"})
	if !slices.Equal(r.AheadServed, []string{"GET /later"}) {
		t.Fatalf("ahead served: %q", r.AheadServed)
	}
}

// The source scan finds the ops of frames written as structs and as
// bytes, not those in comments, and the fields of the client frame.
func TestScanFile(t *testing.T) {
	src := `package x
// {"op":"commented"} is not a frame.
type clientFrame struct {
	Op    string ` + "`json:\"op\"`" + `
	Loud  bool   ` + "`json:\"loud,omitempty\"`" + `
	skip  int
}
var expired = []byte(` + "`{\"op\":\"error\",\"code\":\"unauthorized\"}`" + `)
func f() {
	send(frame{Op: "pong"})
	send(frame{Op: "pong"})
	b := append(nil, ` + "`{\"op\":\"event\",`" + `...)
	_ = "op: not json"
}`
	s, err := apidocs.ScanFile("x.go", []byte(src), "clientFrame")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"error", "event", "pong"}; !slices.Equal(s.ServerOps, want) {
		t.Errorf("server ops %q, want %q", s.ServerOps, want)
	}
	if want := []string{"loud", "op"}; !slices.Equal(s.ClientFields, want) {
		t.Errorf("client fields %q, want %q", s.ClientFields, want)
	}
}
