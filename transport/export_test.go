package transport

import (
	"maps"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
)

// Hooks into a Server for the external tests (package transport_test).

// Draining is the server's draining flag.
func Draining(s *Server) *atomic.Bool { return &s.draining }

// ServeRequest runs req through the server's app without a listener.
func ServeRequest(s *Server, req *http.Request) (*http.Response, error) { return s.app.Test(req, -1) }

// App is the server's Fiber application, to enumerate its routes.
func App(s *Server) *fiber.App { return s.app }

// WebSocketPaths are the paths registered as WebSocket endpoints (through
// Server.websocket, which authenticates the upgrade).
func WebSocketPaths(s *Server) []string { return slices.Clone(s.wsPaths) }

// WSOps are the names of the /ws ops.
func WSOps() []string {
	ops := slices.Collect(maps.Keys(wsOps))
	slices.Sort(ops)
	return ops
}

// PublicPaths are the paths of the public routes (publicRoutes).
func PublicPaths() []string {
	var ps []string
	for _, r := range publicRoutes {
		ps = append(ps, r.path)
	}
	return ps
}

// RawRoutes is an extension that registers routes straight on the app,
// around authentication: what the route test exists to catch.
func RawRoutes(register func(app *fiber.App)) Extension {
	return func(r *Routes) { register(r.s.app) }
}

// ProtocolCodes are the codes of the error table a client can receive
// (every code but a 500's "internal").
func ProtocolCodes() map[string]bool {
	codes := make(map[string]bool)
	for _, row := range errorTable {
		if row.code != codeInternal {
			codes[row.code] = true
		}
	}
	return codes
}

// ReadingRequests counts the connections fasthttp is reading a request
// on (no handler has it yet).
func ReadingRequests(s *Server) int {
	s.tracked.mu.Lock()
	defer s.tracked.mu.Unlock()
	n := 0
	for _, hc := range s.tracked.conns {
		if hc.phase == reqReading {
			n++
		}
	}
	return n
}

// WebSocketPlaces is how many WebSocket connections are counted against
// MaxConnections (reserved at the upgrade, given back when the handler
// ends or the upgrade fails).
func WebSocketPlaces(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wsCount
}
