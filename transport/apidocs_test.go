package transport_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/apidocs"
	"github.com/b6368a97/engine/transport/transporttest"
)

// documentedAhead are routes the API documents may describe before the
// server serves them (while a feature lands in parts); the check allows
// them to be missing, and logs when one is served. Empty: everything
// documented is served.
var documentedAhead = []string{}

// inventory is what the server h serves: every route it registers (the
// extensions' included), its WebSocket paths, the /ws ops it dispatches
// on, and what the transport's source (this package and transport/seed)
// writes as /ws frames and accepts as client frame fields.
func inventory(t *testing.T, h *transporttest.Harness) apidocs.Inventory {
	t.Helper()
	src, err := apidocs.ScanSource("clientFrame", ".", "seed")
	if err != nil {
		t.Fatal(err)
	}
	inv := apidocs.Inventory{
		Routes:         registeredRoutes(transport.App(h.Srv)),
		WebSocketPaths: transport.WebSocketPaths(h.Srv),
		ClientOps:      transport.WSOps(),
		ServerOps:      src.ServerOps,
		ClientFields:   src.ClientFields,
	}
	// The enumeration sees every kind of entry: a check of nothing would
	// pass.
	for _, want := range []string{"GET /healthz", "GET /openapi.json", "POST /streams/{stream}/commands", "POST /order/{item}", "GET /live-score"} {
		if !slices.Contains(inv.Routes, want) {
			t.Fatalf("the enumeration misses route %s: %q", want, inv.Routes)
		}
	}
	for _, want := range []string{"subscribed", "event", "error", "presence"} {
		if !slices.Contains(inv.ServerOps, want) {
			t.Fatalf("the source scan misses frame op %s: %q", want, inv.ServerOps)
		}
	}
	if !slices.Contains(inv.ClientFields, "stream") || !slices.Contains(inv.WebSocketPaths, "/chat") || !slices.Contains(inv.ClientOps, "subscribe") {
		t.Fatalf("the enumeration misses client fields, paths or ops: %+v", inv)
	}
	return inv
}

// The API documents describe exactly what the server serves: every
// registered route is in openapi.json, every WebSocket path, /ws op,
// server frame op and client frame field is in asyncapi.json, and nothing
// is documented that is not served (but documentedAhead).
func TestAPIDocsMatchTheServer(t *testing.T) {
	h := transporttest.New(t, withAuth)
	r, err := apidocs.Check(inventory(t, h), apidocs.OpenAPI, apidocs.AsyncAPI, documentedAhead)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Problems {
		t.Errorf("%s (transport/apidocs holds the documents)", p)
	}
	for _, a := range r.AheadServed {
		t.Logf("%s is served now: drop it from documentedAhead", a)
	}

	t.Run("an undocumented route, endpoint or op is reported", func(t *testing.T) {
		ok := func(c *fiber.Ctx) error { return c.SendString("undocumented") }
		h := transporttest.New(t, func(c *transport.Config) {
			c.Extensions = append(c.Extensions,
				func(r *transport.Routes) {
					r.Get("/streams/:stream/undocumented", ok)
					r.WebSocket(&transport.Endpoint{Path: "/undocumented-ws"})
				},
				transport.RawRoutes(func(app *fiber.App) { app.Delete("/healthz", ok) }))
		})
		inv := inventory(t, h)
		inv.ClientOps = append(inv.ClientOps, "shout")
		inv.ServerOps = append(inv.ServerOps, "shouted")
		r, err := apidocs.Check(inv, apidocs.OpenAPI, apidocs.AsyncAPI, documentedAhead)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"/ws client op shout is served but not documented in asyncapi.json",
			"/ws server frame op shouted is served but not documented in asyncapi.json",
			"WebSocket path /undocumented-ws is served but not documented in asyncapi.json",
			"route DELETE /healthz is registered but not documented in openapi.json",
			"route GET /streams/{stream}/undocumented is registered but not documented in openapi.json",
			"route GET /undocumented-ws is registered but not documented in openapi.json",
		}
		if !slices.Equal(r.Problems, want) {
			t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(r.Problems, "\n"), strings.Join(want, "\n"))
		}
	})
}

// The documents and the page are served without a token, as JSON and
// HTML, and are the embedded ones.
func TestAPIDocsServed(t *testing.T) {
	h := transporttest.New(t, withAuth)
	for _, c := range []struct {
		path, ctype string
		body        []byte
	}{
		{"/openapi.json", "application/json", apidocs.OpenAPI},
		{"/asyncapi.json", "application/json", apidocs.AsyncAPI},
		{"/api", "text/html; charset=utf-8", apidocs.Page},
	} {
		req, err := http.NewRequest("GET", h.Base+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || string(body) != string(c.body) {
			t.Errorf("GET %s: %d %q, %d bytes (want %d)", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(c.body))
		}
		if c.ctype == "application/json" && !json.Valid(body) {
			t.Errorf("GET %s: not JSON", c.path)
		}
	}
}
