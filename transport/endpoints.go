package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"

	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/events"
)

// lobby is the room of /chat-room.
const lobby = room.Kind + ":lobby"

// maxRef bounds a client's ref, in characters.
const maxRef = 64

func (s *Server) endpoints() []*endpoint {
	return []*endpoint{
		{path: "/chat", frame: chatFrame},
		{path: "/chat-room", check: chatRoomCheck, start: chatRoomStart, frame: chatRoomFrame, render: chatRoomRender},
		{path: "/live-score", check: liveScoreCheck, start: liveScoreStart, frame: ignoreFrame},
		{path: "/ws", frame: engineFrame, render: renderEvent, presence: true},
	}
}

// ignoreFrame drops what a client of a send-only endpoint sends.
func ignoreFrame(*wsConn, int, []byte) {}

// /chat: echo.

func chatFrame(c *wsConn, typ int, data []byte) {
	if typ == websocket.BinaryMessage {
		c.q.push(outItem{typ: websocket.BinaryMessage, data: data, size: len(data)})
		return
	}
	out := make([]byte, 0, len("You said: ")+len(data))
	out = append(append(out, "You said: "...), data...)
	c.send(out)
}

// /chat-room: every text frame is a message to room:lobby.

// chatRoomUser is who a /chat-room client speaks as: the token's subject
// with auth on, else ?user=, else "anonymous".
func chatRoomUser(req *wsRequest) string {
	if u := req.principal.userName(); u != "" {
		return u
	}
	if req.user != "" {
		return req.user
	}
	return "anonymous"
}

func chatRoomCheck(s *Server, req *wsRequest) error {
	if u := req.principal.userName(); u != "" && req.user != "" && req.user != u {
		return fmt.Errorf("%w: user %q may not speak as %q", events.ErrForbidden, u, clip(req.user))
	}
	return req.principal.allow(lobby)
}

func chatRoomStart(c *wsConn) error {
	sub, err := c.subscribe(lobby, chatRoomUser(c.req), nil, nil)
	if err != nil {
		return err
	}
	c.subs[lobby] = sub
	return nil
}

func chatRoomFrame(c *wsConn, typ int, data []byte) {
	if typ != websocket.TextMessage {
		c.send([]byte("error: bad_request: send text frames"))
		return
	}
	if c.s.limited(c) {
		c.send([]byte("error: rate_limited: slow down"))
		return
	}
	payload, err := json.Marshal(room.PostMessage{User: chatRoomUser(c.req), Text: string(data)})
	if err != nil {
		return
	}
	cmd := events.Command{
		Stream: lobby,
		Type:   room.CommandPostMessage,
		Data:   payload,
		User:   c.req.principal.userName(),
		Time:   c.s.cfg.Now(),
	}
	ok := c.submit(lobby, func() {
		if _, err := c.s.execute(c.ctx, cmd, events.AnyVersion); err != nil {
			p, _ := c.s.wsProblem(c, err)
			c.send([]byte("error: " + p.Code + ": " + p.Detail))
		}
	})
	if !ok {
		p, _ := classify(errDraining)
		c.send([]byte("error: " + p.Code + ": " + p.Detail))
	}
}

func chatRoomRender(ev *events.Event) ([]byte, bool) {
	if ev.Type != room.EventMessagePosted {
		return nil, false
	}
	var m room.MessagePosted
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		return nil, false
	}
	return []byte(m.User + ": " + m.Text), true
}

// /live-score: every ScoreUpdated of every game, from the global log.

type scoreFrame struct {
	Game  string `json:"game"`
	Team  string `json:"team"`
	Score int64  `json:"score"`
}

// errStopFollow ends a /live-score follower whose connection is closing.
var errStopFollow = errors.New("connection closing")

// liveScoreCheck reads the log's head before the upgrade is answered, so
// that every score update a client causes after its handshake completes
// is delivered to it.
func liveScoreCheck(s *Server, req *wsRequest) error {
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	head, err := s.cfg.Log.Head(ctx)
	if err != nil {
		return fmt.Errorf("live-score: log head: %w", err)
	}
	req.head = head
	return nil
}

func liveScoreStart(c *wsConn) error {
	head := c.req.head
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.s.cfg.Log.Follow(c.ctx, head, func(ev events.Event) error {
			return c.liveScore(&ev)
		})
		if err != nil && c.ctx.Err() == nil && !errors.Is(err, errStopFollow) {
			c.s.log.Warn("live-score follower ended", "err", err)
			c.closeFor(err)
		}
	}()
	return nil
}

func (c *wsConn) liveScore(ev *events.Event) error {
	if ev.Type != game.EventScoreUpdated {
		return nil
	}
	id, err := events.ParseStreamID(ev.Stream)
	if err != nil || id.Kind != game.Kind || c.req.principal.allow(ev.Stream) != nil {
		return nil
	}
	var d game.ScoreUpdated
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil
	}
	data, err := json.Marshal(scoreFrame{Game: id.ID, Team: d.Team, Score: d.Score})
	if err != nil {
		return nil
	}
	if !c.send(data) {
		return errStopFollow
	}
	return nil
}

// /ws: the engine protocol.

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
}

// subscribedFrame is the reply to subscribe and, without Epoch, to
// command (op ack).
type subscribedFrame struct {
	Op      string  `json:"op"`
	Stream  string  `json:"stream"`
	Version uint64  `json:"version"`
	Epoch   string  `json:"epoch,omitempty"`
	Ref     *string `json:"ref,omitempty"`
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
// reply can carry it.
func parseFrame(data []byte) (clientFrame, *string, error) {
	var f clientFrame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&f)
	var syn *json.SyntaxError
	if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return f, nil, badRequest("malformed JSON: %s", jsonReason(err))
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
	if err != nil {
		return f, ref, badRequest("malformed frame: %s", jsonReason(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return f, ref, badRequest("malformed JSON: data after the object")
	}
	return f, ref, nil
}

// wsProblem classifies an error for an error frame, logging a 500.
func (s *Server) wsProblem(c *wsConn, err error) (problem, bool) {
	p, internal := classify(err)
	if internal {
		s.log.Error("websocket request failed", "path", c.ep.path, "request_id", c.req.requestID, "err", err)
	}
	return p, internal
}

func (c *wsConn) replyError(ref *string, err error) {
	p, _ := c.s.wsProblem(c, err)
	c.sendJSON(errorFrame{Op: "error", Ref: ref, Code: p.Code, Message: p.Detail})
}

// limited applies the client's rate limit to one request frame.
func (s *Server) limited(c *wsConn) bool {
	if s.limiter == nil {
		return false
	}
	ok, _ := s.limiter.allow(c.req.ip)
	return !ok
}

func engineFrame(c *wsConn, typ int, data []byte) {
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
	switch f.Op {
	case "ping":
		c.sendJSON(pongFrame{Op: "pong", Ref: ref})
	case "subscribe":
		c.opSubscribe(ref, &f)
	case "unsubscribe":
		c.opUnsubscribe(ref, &f)
	case "command":
		c.opCommand(ref, &f)
	case "":
		c.replyError(ref, badRequest("op is required"))
	default:
		c.replyError(ref, badRequest("unknown op %q", clip(f.Op)))
	}
}

// checkStreamFor validates a frame's stream and the principal's right to it.
func (c *wsConn) checkStreamFor(stream string) error {
	if stream == "" {
		return badRequest("stream is required")
	}
	if err := checkStream(stream); err != nil {
		return err
	}
	return c.req.principal.allow(stream)
}

func (c *wsConn) opSubscribe(ref *string, f *clientFrame) {
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
		if n := utf8.RuneCountInString(member); n > room.MaxUser {
			c.replyError(ref, badRequest("user must be 1-%d characters", room.MaxUser))
			return
		}
		if u := c.req.principal.userName(); u != "" && member != u {
			c.replyError(ref, fmt.Errorf("%w: user %q may not join as %q", events.ErrForbidden, u, clip(member)))
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
	// A second subscribe to a stream replaces the first (a resume with a
	// new from).
	if old := c.subs[f.Stream]; old != nil {
		c.dropSub(old)
		delete(c.subs, f.Stream)
	}
	stream := f.Stream
	sub, err := c.subscribe(stream, member, f.From, func(v uint64) {
		c.sendJSON(subscribedFrame{Op: "subscribed", Stream: stream, Version: v, Epoch: epoch, Ref: ref})
	})
	if err != nil {
		c.replyError(ref, err)
		return
	}
	c.subs[stream] = sub
}

func (c *wsConn) opUnsubscribe(ref *string, f *clientFrame) {
	if f.Stream == "" {
		c.replyError(ref, badRequest("stream is required"))
		return
	}
	if err := checkStream(f.Stream); err != nil {
		c.replyError(ref, err)
		return
	}
	if sub := c.subs[f.Stream]; sub != nil {
		c.dropSub(sub)
		delete(c.subs, f.Stream)
	}
	c.sendJSON(streamFrame{Op: "unsubscribed", Stream: f.Stream, Ref: ref})
}

func (c *wsConn) opCommand(ref *string, f *clientFrame) {
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
	cmd := events.Command{
		Stream: f.Stream,
		Type:   f.Type,
		Data:   data,
		ID:     f.ID,
		User:   c.req.principal.userName(),
		Time:   c.s.cfg.Now(),
	}
	ok := c.submit(cmd.Stream, func() {
		res, err := c.s.execute(c.ctx, cmd, events.AnyVersion)
		if err != nil {
			c.replyError(ref, err)
			return
		}
		c.sendJSON(subscribedFrame{Op: "ack", Stream: cmd.Stream, Version: res.Version, Ref: ref})
	})
	if !ok {
		c.replyError(ref, errDraining)
	}
}

func (c *wsConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}
