package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// dialer opens /ws connections, from the given local addresses in turn.
type dialer struct {
	clients []*http.Client
}

func newDialer(sourceIPs []string) (*dialer, error) {
	if len(sourceIPs) == 0 {
		return &dialer{clients: []*http.Client{{Transport: &http.Transport{}}}}, nil
	}
	d := &dialer{}
	for _, s := range sourceIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", s)
		}
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{DialContext: nd.DialContext}})
	}
	return d, nil
}

// dial opens connection number i (which picks the source address) to the
// /ws endpoint of the engine at base.
func (d *dialer) dial(ctx context.Context, i int, base string) (*websocket.Conn, error) {
	return d.dialPath(ctx, i, base, "/ws")
}

// dialPath opens connection number i to the WebSocket endpoint path of
// the server at base.
func (d *dialer) dialPath(ctx context.Context, i int, base, path string) (*websocket.Conn, error) {
	u := wsURL(base, path)
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      d.clients[i%len(d.clients)],
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			return nil, fmt.Errorf("dial %s: %w (the server's connection limit: raise its -max-connections-per-ip / -max-connections, or use -source-ips)", u, err)
		}
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// frameReader reads whole text frames into one reused buffer, so that a
// busy connection does not allocate per frame.
type frameReader struct {
	c   *websocket.Conn
	buf bytes.Buffer
}

// next returns the next frame; the slice is valid until the next call.
func (r *frameReader) next(ctx context.Context) ([]byte, error) {
	_, rd, err := r.c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	r.buf.Reset()
	if _, err := r.buf.ReadFrom(rd); err != nil {
		return nil, err
	}
	return r.buf.Bytes(), nil
}

// reply is the part of a server frame other than an event that the
// scenarios look at.
type reply struct {
	Op      string `json:"op"`
	Ref     string `json:"ref"`
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// parseReply decodes a reply frame. An ack, the frame a commands run
// gets most, is read without a full JSON decode when its strings hold no
// escapes; anything else is decoded as JSON.
func parseReply(b []byte) (reply, error) {
	if bytes.HasPrefix(b, ackPrefix) && bytes.IndexByte(b, '\\') < 0 {
		r := reply{Op: "ack"}
		var ok1, ok2, ok3 bool
		r.Stream, ok1 = stringField(b, `"stream":"`)
		r.Ref, ok2 = stringField(b, `"ref":"`)
		var v []byte
		if i := bytes.Index(b, []byte(`"version":`)); i >= 0 {
			v = b[i+len(`"version":`):]
			n := 0
			for n < len(v) && v[n] >= '0' && v[n] <= '9' {
				n++
			}
			var err error
			r.Version, err = strconv.ParseUint(string(v[:n]), 10, 64)
			ok3 = err == nil
		}
		if ok1 && ok2 && ok3 {
			return r, nil
		}
	}
	var r reply
	err := json.Unmarshal(b, &r)
	return r, err
}

var ackPrefix = []byte(`{"op":"ack",`)

// stringField returns the string after key (which ends with the opening
// quote) up to the next quote.
func stringField(b []byte, key string) (string, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

var eventPrefix = []byte(`{"op":"event",`)

// parseEvent reads the version and data.text of an event frame without a
// full JSON decode (the server writes event frames as {"op":"event",
// …envelope} with "version" at the top level and our text is plain ASCII
// without escapes). ok is false for any other frame, or one it cannot read:
// the caller then decodes it as JSON.
func parseEvent(b []byte) (version uint64, text []byte, ok bool) {
	if !bytes.HasPrefix(b, eventPrefix) {
		return 0, nil, false
	}
	i := bytes.Index(b, []byte(`"version":`))
	if i < 0 {
		return 0, nil, false
	}
	rest := b[i+len(`"version":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	j := bytes.Index(b, []byte(`"text":"`))
	if j < 0 {
		return v, nil, true
	}
	t := b[j+len(`"text":"`):]
	k := bytes.IndexByte(t, '"')
	if k < 0 || bytes.IndexByte(t[:k], '\\') >= 0 {
		return v, nil, true
	}
	return v, t[:k], true
}

// closeAll drops every connection at once (no close handshake: the run is
// over and its figures are taken).
// openAll runs open for i = 0…n-1, parallel at a time, within timeout.
// The first error stops the openings not yet started and is returned once
// every started one has returned.
func openAll(ctx context.Context, n, parallel int, timeout time.Duration, open func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		first   error
		errOnce sync.Once
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, parallel)
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := open(ctx, i); err != nil {
				errOnce.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.CloseNow()
		}
	}
}
