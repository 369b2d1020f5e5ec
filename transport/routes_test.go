package transport_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// probe is one request without a token that the route check sends.
type probe struct {
	method, path string // path as registered, e.g. /streams/:stream
	upgrade      bool   // a WebSocket upgrade request
	// orNotFound also accepts a 404: a prefix middleware (app.Use) that
	// passes the request on to no route.
	orNotFound bool
}

func (p probe) String() string {
	s := p.method + " " + p.path
	if p.upgrade {
		s += " (upgrade)"
	}
	return s
}

// routeProbes lists a request for every route registered on app that must
// be refused without a token: a plain request for every route, and for a
// GET route also an upgrade request, except that a WebSocket endpoint
// (wsPaths) gets only the upgrade (a plain GET there is a 400 by design).
// Left out are: GET (and its HEAD twin) of a public path; the HEAD route
// Fiber registers with every GET route (same path, same handlers), since
// the GET covers it; and the server's global middlewares (app.Use at "/"),
// which every probe passes through. A prefix middleware (app.Use at a
// path) may answer 404 too.
func routeProbes(app *fiber.App, wsPaths, public []string) []probe {
	routes := app.GetRoutes()
	headTwin := func(head fiber.Route) bool {
		for _, r := range routes {
			if r.Method == fiber.MethodGet && r.Path == head.Path && sameHandlers(r.Handlers, head.Handlers) {
				return true
			}
		}
		return false
	}
	var ps []probe
	seen := map[probe]bool{}
	add := func(p probe) {
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	for _, r := range routes {
		isUse := isMiddleware(app, r)
		switch {
		case isUse && r.Path == "/":
			continue
		case isUse:
			add(probe{method: fiber.MethodGet, path: r.Path, orNotFound: true})
			continue
		case (r.Method == fiber.MethodGet || r.Method == fiber.MethodHead) && slices.Contains(public, r.Path):
			continue
		case r.Method == fiber.MethodHead && headTwin(r):
			continue
		}
		ws := r.Method == fiber.MethodGet && slices.Contains(wsPaths, r.Path)
		if !ws {
			add(probe{method: r.Method, path: r.Path})
		}
		if r.Method == fiber.MethodGet {
			add(probe{method: r.Method, path: r.Path, upgrade: true})
		}
	}
	return ps
}

// isMiddleware tells an app.Use route from a route registered for a
// method: GetRoutes(true) leaves the former out.
func isMiddleware(app *fiber.App, r fiber.Route) bool {
	for _, x := range app.GetRoutes(true) {
		if x.Method == r.Method && x.Path == r.Path && sameHandlers(x.Handlers, r.Handlers) {
			return false
		}
	}
	return true
}

func sameHandlers(a, b []fiber.Handler) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if reflect.ValueOf(a[i]).Pointer() != reflect.ValueOf(b[i]).Pointer() {
			return false
		}
	}
	return true
}

// concrete fills a registered path's parameters (":name", ":name?", "*",
// "+") with a value every route accepts up to authentication.
func concrete(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "+") {
			segs[i] = "room:a"
		}
	}
	return strings.Join(segs, "/")
}

// notRefused sends every probe without a token and returns those answered
// with anything but 401 (or 404 where allowed).
func notRefused(t *testing.T, h *transporttest.Harness, probes []probe) []string {
	t.Helper()
	var bad []string
	for _, p := range probes {
		req, err := http.NewRequestWithContext(context.Background(), p.method, h.Base+concrete(p.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.upgrade {
			key := make([]byte, 16)
			_, _ = rand.Read(key)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
		}
		resp, err := h.HTTP.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		_ = resp.Body.Close()
		ok := resp.StatusCode == http.StatusUnauthorized || (p.orNotFound && resp.StatusCode == http.StatusNotFound)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: %d", p, resp.StatusCode))
		}
	}
	return bad
}

func withAuth(c *transport.Config) { c.Auth.JWTSecret = []byte("route-test-secret") }

// pageFiles are static pages for the public page routes.
var pageFiles = fstest.MapFS{
	"index.html":   {Data: []byte("<!doctype html><title>engine</title>")},
	"client.js":    {Data: []byte("export class Client {}")},
	"app/page.css": {Data: []byte("body{}")},
}

func withPages(c *transport.Config) { c.Assets = pageFiles }

// Every route the server registers, the seed routes included, refuses a
// request without a token with 401, except the public ones.
func TestEveryRouteAuthenticates(t *testing.T) {
	h := transporttest.New(t, withAuth, withPages)
	app := transport.App(h.Srv)
	public := transport.PublicPaths()
	probes := routeProbes(app, transport.WebSocketPaths(h.Srv), public)

	// The enumeration sees the generic routes, the seed routes and every
	// WebSocket endpoint: a check of nothing would pass.
	var got []string
	for _, p := range probes {
		got = append(got, p.String())
	}
	for _, want := range []string{
		"POST /streams/:stream/commands", "GET /streams/:stream", "GET /streams/:stream (upgrade)",
		"GET /streams/:stream/events", "GET /streams", "POST /signup", "POST /orders", "POST /order/:item",
		"POST /update-score", "GET /ws (upgrade)", "GET /chat (upgrade)", "GET /chat-room (upgrade)",
		"GET /live-score (upgrade)",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no probe %s among %q", want, got)
		}
	}
	// Every HEAD route here is the twin of a GET route, which covers it.
	for _, p := range probes {
		if p.method == fiber.MethodHead {
			t.Errorf("probe %s: a HEAD twin was not recognised", p)
		}
	}
	// The public routes are registered, and answer without a token (the
	// pages' with a file of pageFiles).
	for _, path := range public {
		path = strings.Replace(path, "*", "page.css", 1)
		if r := h.Do("GET", path, ""); r.Status != http.StatusOK {
			t.Errorf("public GET %s: %d", path, r.Status)
		}
	}
	if bad := notRefused(t, h, probes); len(bad) > 0 {
		t.Fatalf("routes that answer without a token and are not public:\n%s", strings.Join(bad, "\n"))
	}
}

// The check catches routes registered straight on the app, around
// authentication: an HTTP route of each method, a WebSocket endpoint and a
// prefix middleware that answers.
func TestRouteCheckCatchesUnauthenticatedRoutes(t *testing.T) {
	ok := func(c *fiber.Ctx) error { return c.SendString("no token needed") }
	h := transporttest.New(t, withAuth, func(c *transport.Config) {
		c.Extensions = append(c.Extensions, transport.RawRoutes(func(app *fiber.App) {
			app.Get("/raw/get/:id", ok)
			app.Post("/raw/post", ok)
			app.Head("/raw/head", ok)
			app.Get("/raw/ws", websocket.New(func(c *websocket.Conn) { _ = c.Close() }))
			app.Use("/raw/use", ok)
		}))
	})
	probes := routeProbes(transport.App(h.Srv), transport.WebSocketPaths(h.Srv), transport.PublicPaths())
	bad := notRefused(t, h, probes)
	want := []string{
		"GET /raw/get/:id: 200",
		"GET /raw/get/:id (upgrade): 200",
		"POST /raw/post: 200",
		"HEAD /raw/head: 200",
		"GET /raw/ws: 400", // Fiber's 426 Upgrade Required, reported as 400
		"GET /raw/ws (upgrade): 101",
		"GET /raw/use: 200",
	}
	slices.Sort(bad)
	slices.Sort(want)
	if !slices.Equal(bad, want) {
		t.Fatalf("flagged:\n%s\nwant:\n%s", strings.Join(bad, "\n"), strings.Join(want, "\n"))
	}
}
