package transport

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b6368a97/engine/actors"
)

// The server's connections as fasthttp reports them through its
// ConnState hook, for two things fasthttp does not do by itself:
//
//   - Shutdown. fasthttp's ShutdownWithContext closes idle keep-alive
//     connections but waits for every connection that is reading a
//     request, until the request arrives or its read timeout passes, so a
//     few clients that send half a request would hold a shutdown for
//     HTTPReadTimeout (or the whole grace, with a long one). Shutdown
//     therefore ends the reading of every request that has not reached a
//     handler (cutUnread): fasthttp answers it 400 and closes its
//     connection. Requests that reached a handler are answered as before.
//   - WebSocket counts. An upgrade reserves its place (wsSlot) before the
//     101 is written; the handler that serves the connection releases it.
//     If writing the 101 fails, fasthttp never runs that handler and
//     reports the connection closed instead, which releases the place.

// reqPhase is where a connection's current request is.
type reqPhase uint8

const (
	reqReading  reqPhase = iota // not handed to a handler yet
	reqHandling                 // in observe, the outermost handler
	reqAnswered                 // the handler returned; the reply is written
)

// httpConns is every connection fasthttp serves, hijacked ones excepted.
type httpConns struct {
	mu    sync.Mutex
	conns map[net.Conn]*httpConn
}

type httpConn struct {
	state fasthttp.ConnState
	phase reqPhase
	// slot is an upgrade's reservation while its 101 is being written.
	slot *wsSlot
}

// set records a state change and returns the reservation of a connection
// that closed without being hijacked: the caller releases it.
func (t *httpConns) set(nc net.Conn, st fasthttp.ConnState) (orphan *wsSlot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case fasthttp.StateHijacked:
		delete(t.conns, nc) // the WebSocket handler owns its slot
	case fasthttp.StateClosed:
		if hc := t.conns[nc]; hc != nil {
			orphan = hc.slot
			delete(t.conns, nc)
		}
	default:
		hc := t.conns[nc]
		if hc == nil {
			if t.conns == nil {
				t.conns = make(map[net.Conn]*httpConn)
			}
			hc = &httpConn{}
			t.conns[nc] = hc
		}
		hc.state, hc.phase = st, reqReading
	}
	return orphan
}

// phase records where the request on nc is.
func (t *httpConns) phase(nc net.Conn, p reqPhase) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hc := t.conns[nc]; hc != nil {
		hc.phase = p
	}
}

// attach ties an upgrade's reservation to its connection (nil unties it).
func (t *httpConns) attach(nc net.Conn, slot *wsSlot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hc := t.conns[nc]; hc != nil {
		hc.slot = slot
	}
}

// cutUnread ends the reading of every request that has not reached a
// handler: its read deadline passes now, so fasthttp answers it (400, the
// request was not received in time) and closes the connection. fasthttp
// sets a request's read deadline itself when it starts reading it, after
// the state change, so Shutdown calls this until fasthttp has stopped.
func (t *httpConns) cutUnread(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for nc, hc := range t.conns {
		if hc.state == fasthttp.StateNew || hc.state == fasthttp.StateActive && hc.phase == reqReading {
			_ = nc.SetReadDeadline(now)
		}
	}
}

// connState is fasthttp's ConnState hook.
func (s *Server) connState(nc net.Conn, st fasthttp.ConnState) {
	if orphan := s.tracked.set(nc, st); orphan != nil {
		s.releaseWS(orphan)
	}
}

// cutUnreadUntil runs cutUnread now and every cutInterval until done.
func (s *Server) cutUnreadUntil(done <-chan struct{}) {
	const cutInterval = 50 * time.Millisecond
	tick := time.NewTicker(cutInterval)
	defer tick.Stop()
	for {
		s.tracked.cutUnread(time.Now())
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// wsSlot is one WebSocket connection counted against MaxConnections and
// MaxConnectionsPerIP, from its upgrade request until its handler ends.
type wsSlot struct {
	ip       string
	released bool // under Server.mu
}

// reserveWS counts a WebSocket connection from ip, or refuses it: 503 when
// the server is at MaxConnections, 429 limit_exceeded when ip is at
// MaxConnectionsPerIP.
func (s *Server) reserveWS(ip string) (*wsSlot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wsCount >= s.cfg.MaxConnections {
		return nil, newClientError(actors.ErrUnavailable, "the server holds %d WebSocket connections, its limit: retry later", s.cfg.MaxConnections)
	}
	if n := s.wsPerIP[ip]; n >= s.cfg.MaxConnectionsPerIP {
		return nil, newClientError(errLimitExceeded, "%d WebSocket connections from your address, the limit: close one first", n)
	}
	s.wsCount++
	s.wsPerIP[ip]++
	return &wsSlot{ip: ip}, nil
}

// releaseWS gives a reservation back; the second release of one is a no-op.
func (s *Server) releaseWS(slot *wsSlot) {
	if slot == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slot.released {
		return
	}
	slot.released = true
	s.wsCount--
	if s.wsPerIP[slot.ip]--; s.wsPerIP[slot.ip] <= 0 {
		delete(s.wsPerIP, slot.ip)
	}
}
