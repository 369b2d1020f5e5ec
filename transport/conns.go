package transport

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The server's connections as fasthttp reports them through its
// ConnState hook, for what fasthttp does not do by itself at shutdown: its
// ShutdownWithContext closes idle keep-alive connections but waits for
// every connection that is reading a request, until the request arrives or
// its read timeout passes, so a few clients that send half a request would
// hold a shutdown for HTTPReadTimeout (or the whole grace, with a long
// one). Shutdown therefore ends the reading of every request that has not
// reached a handler (cutUnread): fasthttp answers it 400 and closes its
// connection. Requests that reached a handler are answered as before.

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
}

// set records a state change.
func (t *httpConns) set(nc net.Conn, st fasthttp.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case fasthttp.StateHijacked, fasthttp.StateClosed:
		delete(t.conns, nc)
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
}

// phase records where the request on nc is.
func (t *httpConns) phase(nc net.Conn, p reqPhase) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hc := t.conns[nc]; hc != nil {
		hc.phase = p
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
func (s *Server) connState(nc net.Conn, st fasthttp.ConnState) { s.tracked.set(nc, st) }

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
