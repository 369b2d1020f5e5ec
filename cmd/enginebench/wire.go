package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The servers fanout and idle can drive. Each speaks its own protocol
// over WebSocket; a wire hides the differences so that the scenarios
// measure the same way against each.
const (
	serverEngine     = "engine"
	serverCentrifugo = "centrifugo"
	serverNaive      = "naive"
)

// wire is one server's protocol, as the fanout and idle scenarios use it.
type wire interface {
	// channel names the room called name in this server's terms.
	channel(name string) string
	// open dials connection i to the server at base and subscribes it to
	// channel; it returns once the server has confirmed the subscription,
	// with the channel's position then (the engine's version, Centrifugo's
	// offset, 0 for the naive server): deliveries count from there.
	open(ctx context.Context, d *dialer, i int, base, channel string) (ws *websocket.Conn, pos uint64, err error)
	// decode appends the messages of one frame to out.
	decode(b []byte, out []wireMsg) []wireMsg
	// publisher opens the publisher of channel on the server at base, as
	// connection i; acks and errors go to t.
	publisher(ctx context.Context, d *dialer, i int, base, channel string, t *pubTally) (publisher, error)
}

// msgKind is what a decoded message is.
type msgKind uint8

const (
	msgOther msgKind = iota // anything the scenarios ignore
	msgEvent                // a delivery: seq, text
	msgError                // an error reply: code, text (its message)
	msgPing                 // the server's ping: answer it with pong
)

// wireMsg is one decoded message; text points into the frame.
type wireMsg struct {
	kind msgKind
	seq  uint64 // the engine's version, Centrifugo's offset, the naive publisher's number
	text []byte // the delivery's data.text, or an error's message
	code string // an error's code
	raw  []byte // the message itself (the frame, or one line of it)
}

// publisher posts messages to a channel; its acks and errors go to the
// pubTally it was opened with.
type publisher interface {
	// publish posts message n (0-based) whose data.text is text.
	publish(ctx context.Context, n int, text []byte) error
	// close drops the publisher and waits for its goroutines.
	close()
}

// pubTally counts a publisher's answers; safe for concurrent use.
type pubTally struct {
	count       int64 // answers expected
	acked, errs atomic.Int64
	lastVersion atomic.Uint64 // the highest seq acked
	done        chan struct{} // closed when acked+errs reaches count
	mu          sync.Mutex
	codes       map[string]int64
	readErr     error
	doneOnce    sync.Once
}

func newPubTally(count int) *pubTally {
	return &pubTally{count: int64(count), done: make(chan struct{}), codes: map[string]int64{}}
}

func (t *pubTally) ack(v uint64) {
	for {
		old := t.lastVersion.Load()
		if v <= old || t.lastVersion.CompareAndSwap(old, v) {
			break
		}
	}
	t.answered(t.acked.Add(1) + t.errs.Load())
}

func (t *pubTally) fail(code string) {
	t.mu.Lock()
	t.codes[code]++
	t.mu.Unlock()
	t.answered(t.errs.Add(1) + t.acked.Load())
}

func (t *pubTally) answered(n int64) {
	if n >= t.count {
		t.doneOnce.Do(func() { close(t.done) })
	}
}

// connErr records the first error of the publisher's connection.
func (t *pubTally) connErr(err error) {
	t.mu.Lock()
	if t.readErr == nil {
		t.readErr = err
	}
	t.mu.Unlock()
}

func (t *pubTally) snapshot() (codes map[string]int64, readErr error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	codes = make(map[string]int64, len(t.codes))
	for k, v := range t.codes {
		codes[k] = v
	}
	return codes, t.readErr
}

// serverFlags are the flags of the scenarios that drive any of the servers.
type serverFlags struct {
	kind string
	cf   centrifugoAuth
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.kind, "server", serverEngine, "the server behind -targets: engine (its /ws protocol), centrifugo (client protocol v2 JSON over /connection/websocket, publishing through its HTTP API) or naive (enginebench naive)")
	fs.StringVar(&s.cf.secret, "centrifugo-secret", defaultCentrifugoSecret, "-server centrifugo: the HMAC secret of the connection tokens (client.token.hmac_secret_key)")
	fs.StringVar(&s.cf.apiKey, "centrifugo-api-key", defaultCentrifugoAPIKey, "-server centrifugo: the key of its HTTP API (http_api.key)")
	fs.StringVar(&s.cf.namespace, "centrifugo-namespace", defaultCentrifugoNamespace, "-server centrifugo: the namespace of the channels (history and recovery on: see enginebench centrifugo-config)")
}

func newWire(kind string, cf centrifugoAuth) (wire, error) {
	switch kind {
	case serverEngine, "":
		return engineWire{}, nil
	case serverNaive:
		return naiveWire{}, nil
	case serverCentrifugo:
		if cf.secret == "" || cf.apiKey == "" || cf.namespace == "" {
			return nil, errors.New("-server centrifugo needs -centrifugo-secret, -centrifugo-api-key and -centrifugo-namespace")
		}
		return newCentrifugoWire(cf)
	}
	return nil, fmt.Errorf("-server: %q is not engine, centrifugo or naive", kind)
}

// readUntil reads frames of ws until pick, given each decoded message of
// each, returns done or an error; pings are answered on the way.
func readUntil(ctx context.Context, ws *websocket.Conn, w wire, pick func(m wireMsg) (done bool, err error)) error {
	fr := frameReader{c: ws}
	var msgs []wireMsg
	for {
		b, err := fr.next(ctx)
		if err != nil {
			return err
		}
		msgs = w.decode(b, msgs[:0])
		for _, m := range msgs {
			if m.kind == msgPing {
				if err := ws.Write(ctx, websocket.MessageText, pongFrame); err != nil {
					return err
				}
				continue
			}
			if done, err := pick(m); done || err != nil {
				return err
			}
		}
	}
}

var pongFrame = []byte(`{}`)

// engineWire is the engine's /ws protocol (docs/protocol.md).
type engineWire struct{}

func (engineWire) channel(name string) string { return "room:" + name }

func (w engineWire) open(ctx context.Context, d *dialer, i int, base, channel string) (*websocket.Conn, uint64, error) {
	ws, err := d.dialPath(ctx, i, base, "/ws")
	if err != nil {
		return nil, 0, err
	}
	frame := []byte(`{"op":"subscribe","stream":` + strconv.Quote(channel) + `,"ref":"s"}`)
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		ws.CloseNow()
		return nil, 0, fmt.Errorf("subscribe: %w", err)
	}
	var pos uint64
	err = readUntil(ctx, ws, w, func(m wireMsg) (bool, error) {
		switch m.kind {
		case msgError:
			return false, fmt.Errorf("subscribe: error frame: %s: %s", m.code, m.text)
		case msgOther:
			r, err := parseReply(m.raw)
			if err == nil && r.Op == "subscribed" {
				pos = r.Version
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		ws.CloseNow()
		return nil, 0, err
	}
	return ws, pos, nil
}

func (engineWire) decode(b []byte, out []wireMsg) []wireMsg {
	if v, text, ok := parseEvent(b); ok {
		return append(out, wireMsg{kind: msgEvent, seq: v, text: text, raw: b})
	}
	if bytes.HasPrefix(b, []byte(`{"op":"error"`)) {
		if r, err := parseReply(b); err == nil {
			return append(out, wireMsg{kind: msgError, code: r.Code, text: []byte(r.Message), raw: b})
		}
	}
	return append(out, wireMsg{kind: msgOther, raw: b})
}

// enginePublisher sends PostMessage commands over /ws; the ack of each
// comes once the event is durable, with its version.
type enginePublisher struct {
	ws      *websocket.Conn
	channel string
	buf     []byte
	done    chan struct{}
}

func (engineWire) publisher(ctx context.Context, d *dialer, i int, base, channel string, t *pubTally) (publisher, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ws, err := d.dialPath(dctx, i, base, "/ws")
	cancel()
	if err != nil {
		return nil, err
	}
	p := &enginePublisher{ws: ws, channel: channel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		fr := frameReader{c: ws}
		for {
			b, err := fr.next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.connErr(err)
				}
				return
			}
			r, err := parseReply(b)
			if err != nil {
				continue
			}
			switch r.Op {
			case "ack":
				t.ack(r.Version)
			case "error":
				t.fail(r.Code)
			}
		}
	}()
	return p, nil
}

func (p *enginePublisher) publish(ctx context.Context, n int, text []byte) error {
	b := append(p.buf[:0], `{"op":"command","stream":`...)
	b = strconv.AppendQuote(b, p.channel)
	b = append(b, `,"type":"PostMessage","data":{"user":"bench","text":"`...)
	b = append(b, text...)
	b = append(b, `"},"id":"`...)
	b = append(b, text...) // unique: the run and the send time
	b = append(b, "-p-"...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `"}`...)
	p.buf = b
	return p.ws.Write(ctx, websocket.MessageText, b)
}

func (p *enginePublisher) close() {
	_ = p.ws.CloseNow()
	<-p.done
}

// naiveWire is the protocol of enginebench naive: every connection to /ws
// gets {"op":"subscribed","version":0}, then every frame any connection
// sends, as sent. The publisher sends the engine's event shape with its
// own message number as the version, so the subscribers read it as they
// read the engine's; its ack is its own message coming back.
type naiveWire struct{}

func (naiveWire) channel(name string) string { return name }

func (w naiveWire) open(ctx context.Context, d *dialer, i int, base, _ string) (*websocket.Conn, uint64, error) {
	ws, err := d.dialPath(ctx, i, base, "/ws")
	if err != nil {
		return nil, 0, err
	}
	err = readUntil(ctx, ws, w, func(m wireMsg) (bool, error) {
		if m.kind != msgOther {
			return false, nil
		}
		r, err := parseReply(m.raw)
		return err == nil && r.Op == "subscribed", nil
	})
	if err != nil {
		ws.CloseNow()
		return nil, 0, err
	}
	return ws, 0, nil
}

func (naiveWire) decode(b []byte, out []wireMsg) []wireMsg {
	return engineWire{}.decode(b, out)
}

type naivePublisher struct {
	ws   *websocket.Conn
	buf  []byte
	done chan struct{}
}

func (w naiveWire) publisher(ctx context.Context, d *dialer, i int, base, channel string, t *pubTally) (publisher, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ws, _, err := w.open(dctx, d, i, base, channel)
	cancel()
	if err != nil {
		return nil, err
	}
	p := &naivePublisher{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		fr := frameReader{c: ws}
		for {
			b, err := fr.next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.connErr(err)
				}
				return
			}
			// Every message comes back to every connection, the
			// publisher's included: that is its ack.
			if v, _, ok := parseEvent(b); ok {
				t.ack(v)
			}
		}
	}()
	return p, nil
}

func (p *naivePublisher) publish(ctx context.Context, n int, text []byte) error {
	b := append(p.buf[:0], `{"op":"event","version":`...)
	b = strconv.AppendInt(b, int64(n)+1, 10)
	b = append(b, `,"data":{"user":"bench","text":"`...)
	b = append(b, text...)
	b = append(b, `"}}`...)
	p.buf = b
	return p.ws.Write(ctx, websocket.MessageText, b)
}

func (p *naivePublisher) close() {
	_ = p.ws.CloseNow()
	<-p.done
}

// eventText builds the data.text of message n of a run: RUN.UNIXNANOS.
func eventText(buf []byte, run string, now time.Time) []byte {
	buf = append(buf[:0], run...)
	buf = append(buf, '.')
	return strconv.AppendInt(buf, now.UnixNano(), 10)
}

// wsURL turns base (http://…) and path into a ws:// URL.
func wsURL(base, path string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path
}
