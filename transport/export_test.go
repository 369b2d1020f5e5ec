package transport

import (
	"net/http"
	"sync/atomic"
)

// Hooks into a Server for the external tests (package transport_test).

// Draining is the server's draining flag.
func Draining(s *Server) *atomic.Bool { return &s.draining }

// ServeRequest runs req through the server's app without a listener.
func ServeRequest(s *Server, req *http.Request) (*http.Response, error) { return s.app.Test(req, -1) }
