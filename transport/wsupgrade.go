package transport

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
)

// The upgrade, without anything of fasthttp's request kept for the
// connection's lifetime.
//
// fasthttp runs a hijack handler on a goroutine that holds the request's
// context (its header buffers) and the 4 KiB buffered reader it read the
// request with until the handler returns, and it reads the hijacked
// connection through that reader. So the server keeps its hijacked
// connections (KeepHijackedConns): the hijack handler only writes the 101
// (fasthttp writes no response, HijackSetNoResponse), makes the WebSocket
// over the socket itself and starts the connection's goroutine, then
// returns, and fasthttp releases the request and its reader. serveWS's
// goroutine closes the socket when it ends.

// wsHandshake is what the hijack handler needs of the upgrade request,
// copied before fasthttp reuses it.
type wsHandshake struct {
	key, version string
}

// wsUpgrade answers an upgrade request that upgrade has admitted.
func (s *Server) wsUpgrade(ep *Endpoint, up *fws.Upgrader) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req, _ := c.Locals(localWS).(*Upgrade)
		fctx := c.Context()
		hs := wsHandshake{
			key:     string(fctx.Request.Header.Peek("Sec-WebSocket-Key")),
			version: string(fctx.Request.Header.Peek("Sec-WebSocket-Version")),
		}
		if hs.version != "13" || !validChallengeKey(hs.key) {
			return fiber.ErrUpgradeRequired
		}
		fctx.HijackSetNoResponse(true)
		c.Status(fiber.StatusSwitchingProtocols)
		fctx.Hijack(func(hc net.Conn) { s.hijacked(hc, hs, req, ep, up) })
		return nil
	}
}

// validChallengeKey is the library's check of Sec-WebSocket-Key: 16 bytes
// in base64.
func validChallengeKey(k string) bool {
	if k == "" {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

// errEarlyData refuses a client that sent data before the 101.
var errEarlyData = errors.New("websocket: client sent data before handshake is complete")

// hijacked makes the WebSocket and starts serveWS on a goroutine of its
// own; it runs on fasthttp's hijack goroutine and returns at once.
func (s *Server) hijacked(hc net.Conn, hs wsHandshake, req *Upgrade, ep *Endpoint, up *fws.Upgrader) {
	raw := hc
	if u, ok := hc.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	var rid string
	if req != nil {
		rid = req.requestID
	}
	ws, err := s.handshake(hc, raw, hs, rid, up)
	if err != nil {
		if req != nil {
			s.releaseWS(req.slot)
		}
		_ = raw.Close()
		return
	}
	go func() {
		defer func() { _ = raw.Close() }()
		defer s.wsRecover()
		s.serveWS(ws, req, ep)
	}()
}

// handshake checks that fasthttp's reader holds nothing past the request
// (a client must wait for the 101 before it sends: RFC 6455, 4.1; the
// library refuses such a client the same way), then writes the 101, with
// the request id, and makes the WebSocket over raw.
func (s *Server) handshake(hc, raw net.Conn, hs wsHandshake, requestID string, up *fws.Upgrader) (*fws.Conn, error) {
	// With a deadline passed, a read returns only what fasthttp's reader
	// has buffered: the socket is not read.
	if err := raw.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return nil, err
	}
	var one [1]byte
	if n, _ := hc.Read(one[:]); n > 0 {
		return nil, errEarlyData
	}
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	w := &hijackWriter{conn: raw}
	r := &http.Request{Method: http.MethodGet, Header: http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {hs.version},
		"Sec-Websocket-Key":     {hs.key},
	}}
	var h http.Header
	if requestID != "" {
		// As fasthttp wrote it on the 101 when it wrote the response.
		h = http.Header{fiber.HeaderXRequestID: {requestID}}
	}
	return up.Upgrade(w, r, h)
}

// hijackWriter hands the library's net/http upgrader the socket.
type hijackWriter struct {
	conn net.Conn
	h    http.Header
}

func (w *hijackWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// The smallest buffers bufio makes: the upgrader reads and writes
	// with buffers of its own (ReadBufferSize, WriteBufferPool).
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 16), bufio.NewWriterSize(w.conn, 16)), nil
}
