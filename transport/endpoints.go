package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// maxRef bounds a client's ref, in characters.
const maxRef = 64

// maxMember bounds the user a subscribe joins presence as, in characters.
const maxMember = 64

// /ws: the engine protocol.

// expiredFrame is the last frame of a /ws connection whose token expired.
var expiredFrame = []byte(`{"op":"error","code":"unauthorized","message":"token expired"}`)

// clientFrame is every field any op may carry.
type clientFrame struct {
	Op     string          `json:"op"`
	Ref    json.RawMessage `json:"ref"`
	Stream string          `json:"stream"`
	From   *uint64         `json:"from"`
	User   string          `json:"user"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	ID     string          `json:"id"`
	Epoch  string          `json:"epoch"`
	Token  string          `json:"token"`
	// State asks a subscribe for the stream's state at the subscribed
	// version in its reply.
	State bool `json:"state"`
}

// subscribedFrame is the reply to subscribe and, without Epoch, to
// command (op ack).
type subscribedFrame struct {
	Op      string  `json:"op"`
	Stream  string  `json:"stream"`
	Version uint64  `json:"version"`
	Epoch   string  `json:"epoch,omitempty"`
	Ref     *string `json:"ref,omitempty"`
	// State is the state at Version of a subscribe with "state":true
	// (JSON null at version 0); absent otherwise.
	State json.RawMessage `json:"state,omitempty"`
}

type streamFrame struct {
	Op     string  `json:"op"`
	Stream string  `json:"stream"`
	Ref    *string `json:"ref,omitempty"`
}

type pongFrame struct {
	Op  string  `json:"op"`
	Ref *string `json:"ref,omitempty"`
}

type errorFrame struct {
	Op      string  `json:"op"`
	Ref     *string `json:"ref,omitempty"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
}

// renderEvent is an event frame: {"op":"event", …envelope}, built with
// the envelope's own encoder (no reflection, the protocol's time format).
func renderEvent(ev *events.Event) ([]byte, bool) {
	buf := make([]byte, 0, 224+len(ev.Data))
	buf = append(buf, `{"op":"event",`...)
	buf = ev.AppendJSONFields(buf)
	return append(buf, '}'), true
}

// parseFrame decodes a client frame strictly. It returns the ref when the
// frame has a valid one, even if another field is wrong, so that the error
// reply can carry it. The frames clients send in practice are decoded by
// quickFrame, the others (and every error) by the strict decoder.
func parseFrame(data []byte) (clientFrame, *string, error) {
	if f, ref, ok := quickFrame(data); ok {
		return f, ref, nil
	}
	return strictFrame(data)
}

// strictFrame is parseFrame with the strict decoder alone.
func strictFrame(data []byte) (clientFrame, *string, error) {
	var f clientFrame
	err := events.DecodeStrict(data, &f)
	var syn *json.SyntaxError
	if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return f, nil, badRequest("malformed JSON: %s", events.JSONReason(err))
	}
	var ref *string
	if len(f.Ref) > 0 && string(f.Ref) != "null" {
		var r string
		if json.Unmarshal(f.Ref, &r) != nil {
			return f, nil, badRequest("ref must be a string")
		}
		if utf8.RuneCountInString(r) > maxRef {
			return f, nil, badRequest("ref longer than %d characters", maxRef)
		}
		ref = &r
	}
	switch {
	case errors.Is(err, events.ErrTrailingData):
		return f, ref, badRequest("malformed JSON: data after the object")
	case err != nil:
		return f, ref, badRequest("malformed frame: %s", events.JSONReason(err))
	}
	return f, ref, nil
}

// wsProblem classifies an error for an error frame, logging a 500.
func (s *Server) wsProblem(c *Conn, err error) (problem, bool) {
	p, internal := classify(err)
	if internal {
		s.log.Error("websocket request failed", "path", c.ep.Path, "request_id", c.req.requestID, "err", err)
	}
	return p, internal
}

func (c *Conn) replyError(ref *string, err error) {
	p, _ := c.s.wsProblem(c, err)
	c.sendJSON(errorFrame{Op: "error", Ref: ref, Code: p.Code, Message: p.Detail})
}

// limited applies the client's rate limit to one request frame.
func (s *Server) limited(c *Conn) bool {
	if s.limiter == nil {
		return false
	}
	ok, _ := s.limiter.allow(c.req.ip)
	return !ok
}

// engineFrame handles a /ws frame. A command it accepts is started (the
// runtime called) after the frame's handling has returned, from this
// small frame: the reader's stack then stays at the 4 KiB its reading
// needs (see Conn.startNext).
func engineFrame(c *Conn, typ int, data []byte) {
	engineOp(c, typ, data)
	c.driveStarted()
}

// driveStarted drives the lane a command of the frame just handled took
// (Conn.startNext), if any. The reader's only.
func (c *Conn) driveStarted() {
	if n := c.startNext; n.l != nil {
		c.startNext = laneStart{}
		c.drive(n.stream, n.l, n.it)
	}
}

func engineOp(c *Conn, typ int, data []byte) {
	if typ != websocket.TextMessage {
		c.replyError(nil, badRequest("frames must be text: one JSON object each"))
		return
	}
	f, ref, err := parseFrame(data)
	if err != nil {
		c.replyError(ref, err)
		return
	}
	if f.Op != "ping" && c.s.limited(c) {
		c.replyError(ref, &rateLimitError{})
		return
	}
	op, ok := wsOps[f.Op]
	switch {
	case f.Op == "":
		c.replyError(ref, badRequest("op is required"))
	case !ok:
		c.replyError(ref, badRequest("unknown op %q", clip(f.Op)))
	default:
		op(c, ref, &f)
	}
}

// wsOps are the /ws ops by name: the one list engineFrame dispatches on,
// which the test of docs/security.md enumerates.
var wsOps = map[string]func(c *Conn, ref *string, f *clientFrame){
	"ping":        func(c *Conn, ref *string, _ *clientFrame) { c.sendJSON(pongFrame{Op: "pong", Ref: ref}) },
	"subscribe":   (*Conn).opSubscribe,
	"unsubscribe": (*Conn).opUnsubscribe,
	"command":     (*Conn).opCommand,
	"refresh":     (*Conn).opRefresh,
}

// checkStreamFor validates a frame's stream and the principal's right to it.
func (c *Conn) checkStreamFor(stream string) error {
	if stream == "" {
		return badRequest("stream is required")
	}
	return c.s.checkStream(c.principal(), stream)
}

func (c *Conn) opSubscribe(ref *string, f *clientFrame) {
	if err := c.checkStreamFor(f.Stream); err != nil {
		c.replyError(ref, err)
		return
	}
	if c.isDraining() {
		c.replyError(ref, errDraining)
		return
	}
	member := f.User
	if member != "" {
		if n := utf8.RuneCountInString(member); n > maxMember {
			c.replyError(ref, badRequest("user must be 1-%d characters", maxMember))
			return
		}
		if u := c.principal().userName(); u != "" && member != u {
			c.replyError(ref, newClientError(decider.ErrForbidden, "user %q may not join as %q", u, clip(member)))
			return
		}
	}
	// A resume under another epoch is refused before anything changes: an
	// existing subscription to the stream stays as it was.
	epoch := c.s.cfg.Log.Epoch()
	if err := checkEpoch(f.From != nil, f.Epoch, epoch, "subscribe again without from, or from 0 without epoch,"); err != nil {
		c.replyError(ref, err)
		return
	}
	// A subscribe to a stream the connection has replaces that
	// subscription and is not counted again; a new one must fit.
	if c.subs[f.Stream] == nil && len(c.subs) >= c.s.cfg.MaxSubscriptions {
		c.replyError(ref, newClientError(errLimitExceeded, "this connection has %d subscriptions, the limit: unsubscribe from one first", len(c.subs)))
		return
	}
	// A second subscribe to a stream replaces the first (a resume with a
	// new from).
	if old := c.subs[f.Stream]; old != nil {
		c.dropSub(old)
		delete(c.subs, f.Stream)
	}
	stream := f.Stream
	// With "state":true the reply carries the state at the subscribed
	// version, computed here, before the reply is queued and so before
	// any event of the subscription (the runtime holds them until this
	// callback returns). If it cannot be computed, the subscription is
	// dropped and the error is the reply.
	var stateErr error
	sub, err := c.subscribe(stream, member, f.From, func(v uint64) {
		reply := subscribedFrame{Op: "subscribed", Stream: stream, Version: v, Epoch: epoch, Ref: ref}
		if f.State {
			ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.CommandTimeout)
			defer cancel()
			reply.State, stateErr = c.s.subscribedState(ctx, stream, v, c.principal().caller())
			if stateErr != nil {
				return
			}
		}
		c.sendJSON(reply)
	})
	if err == nil && stateErr != nil {
		c.dropSub(sub)
		err = fmt.Errorf("state of %s: %w", stream, stateErr)
	}
	if err != nil {
		c.replyError(ref, err)
		return
	}
	c.subs[stream] = sub
}

func (c *Conn) opUnsubscribe(ref *string, f *clientFrame) {
	if f.Stream == "" {
		c.replyError(ref, badRequest("stream is required"))
		return
	}
	if err := c.s.cfg.API.Check(f.Stream); err != nil {
		c.replyError(ref, err)
		return
	}
	if sub := c.subs[f.Stream]; sub != nil {
		c.dropSub(sub)
		delete(c.subs, f.Stream)
	}
	c.sendJSON(streamFrame{Op: "unsubscribed", Stream: f.Stream, Ref: ref})
}

func (c *Conn) opCommand(ref *string, f *clientFrame) {
	if err := c.checkStreamFor(f.Stream); err != nil {
		c.replyError(ref, err)
		return
	}
	if f.Type == "" {
		c.replyError(ref, badRequest("type is required"))
		return
	}
	data, err := commandData(f.Data)
	if err != nil {
		c.replyError(ref, err)
		return
	}
	if err := checkKey(f.ID); err != nil {
		c.replyError(ref, err)
		return
	}
	cmd := decider.Command{
		Stream: f.Stream,
		Type:   f.Type,
		Data:   data,
		ID:     f.ID,
		User:   c.principal().userName(),
		Caller: c.principal().caller(),
		Time:   c.s.cfg.Now(),
	}
	ok := c.submitCommand(cmd, ref)
	if !ok {
		c.replyError(ref, errDraining)
	}
}

// appendAck appends a command's ack frame, byte for byte what
// json.Marshal makes of subscribedFrame{Op: "ack", …}, without reflection.
func appendAck(buf []byte, stream string, version uint64, ref *string) []byte {
	if buf == nil {
		n := 48 + len(stream)
		if ref != nil {
			n += len(*ref)
		}
		buf = make([]byte, 0, n)
	}
	buf = append(buf, `{"op":"ack","stream":`...)
	buf = appendMarshalString(buf, stream)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, version, 10)
	if ref != nil {
		buf = append(buf, `,"ref":`...)
		buf = appendMarshalString(buf, *ref)
	}
	return append(buf, '}')
}

// appendMarshalString appends s as json.Marshal writes a string (HTML
// characters escaped): printable ASCII that needs no escape directly,
// anything else through json.Marshal itself.
func appendMarshalString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func (c *Conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}
