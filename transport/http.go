package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Limits the protocol leaves to the server.
const (
	// maxReadLimit caps ?limit= of GET /streams/{s}/events.
	maxReadLimit = 1000
	// defaultReadLimit is ?limit= when absent.
	defaultReadLimit = 100
	// maxKeyLength caps an Idempotency-Key (and a WebSocket command id).
	maxKeyLength = 128
)

// streamParam reads, unescapes, copies and validates the :stream route
// parameter: a stream the runtime serves, which the principal may touch.
func (s *Server) streamParam(c *fiber.Ctx) (string, error) {
	raw := c.Params("stream")
	stream, err := unescape(raw)
	if err != nil {
		return "", badRequest("stream id %q is not valid percent-encoding", clip(raw))
	}
	if err := s.checkStream(principalOf(c), stream); err != nil {
		return "", err
	}
	return stream, nil
}

// unescape percent-decodes a path parameter into a copy: Params aliases a
// buffer Fiber reuses.
func unescape(raw string) (string, error) {
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", err
	}
	return strings.Clone(v), nil
}

// clip bounds client input quoted in messages.
func clip(s string) string { return events.Clip(s, 80) }

// requireJSON refuses a body declared as something other than JSON. A
// request without Content-Type is read as JSON.
func requireJSON(c *fiber.Ctx) error {
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == fiber.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return newClientError(errUnsupportedMedia, "the body must be application/json, not %q", clip(ct))
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data. v's strings and json.RawMessage fields are copies, so
// body may alias a reused buffer.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("a JSON body is required")
	}
	if err := events.DecodeStrict(body, v); err != nil {
		return badRequest("malformed JSON: %s", events.JSONReason(err))
	}
	return nil
}

// commandData checks a command's data: absent or null is {}, anything but
// an object is refused.
func commandData(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`), nil
	}
	if raw[0] != '{' {
		return nil, badRequest("data must be a JSON object")
	}
	return raw, nil
}

// checkKey validates an idempotency key.
func checkKey(key string) error {
	if len(key) > maxKeyLength {
		return badRequest("idempotency key longer than %d bytes", maxKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return badRequest("idempotency key must be visible ASCII (no spaces)")
		}
	}
	return nil
}

// idempotencyKey reads and copies the Idempotency-Key header.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	key := strings.TrimSpace(c.Get("Idempotency-Key"))
	if err := checkKey(key); err != nil {
		return "", err
	}
	return strings.Clone(key), nil
}

// ifMatch parses If-Match: a version, bare or quoted ("3", W/"3"); "*"
// and no header mean any version.
func ifMatch(c *fiber.Ctx) (events.ExpectedVersion, error) {
	return parseIfMatch(c.Get(fiber.HeaderIfMatch))
}

func parseIfMatch(h string) (events.ExpectedVersion, error) {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return events.AnyVersion, nil
	}
	v := strings.TrimPrefix(h, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, badRequest("If-Match must be a stream version, got %q", clip(h))
	}
	return events.Exactly(n), nil
}

// execute runs a command with the command deadline. A failure is wrapped
// with the stream and the type for the log; the client reads only the
// error's message (see clientMessager).
func (s *Server) execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (actors.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer cancel()
	res, err := s.cfg.API.Execute(ctx, cmd, expected)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", cmd.Stream, cmd.Type, err)
	}
	return res, nil
}

type commandBody struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type commandReply struct {
	Stream  string         `json:"stream"`
	Version uint64         `json:"version"`
	Events  []events.Event `json:"events"`
}

func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// postCommand: POST /streams/{stream}/commands.
func (s *Server) postCommand(c *fiber.Ctx) error {
	stream, err := s.streamParam(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	body, ok := quickCommandBody(c.Body())
	if !ok {
		body = commandBody{}
		if err := decodeStrict(c.Body(), &body); err != nil {
			return err
		}
	}
	if body.Type == "" {
		return badRequest("type is required")
	}
	data, err := commandData(body.Data)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	expected, err := ifMatch(c)
	if err != nil {
		return err
	}
	res, err := s.execute(s.base, decider.Command{
		Stream: stream,
		Type:   body.Type,
		Data:   data,
		ID:     key,
		User:   principalOf(c).userName(),
		Caller: principalOf(c).caller(),
		Time:   s.cfg.Now(),
	}, expected)
	if err != nil {
		return err
	}
	evs := res.Events
	if evs == nil {
		evs = []events.Event{}
	}
	c.Set(fiber.HeaderETag, etag(res.Version))
	if body, ok := appendCommandReply(nil, stream, res.Version, evs); ok {
		c.Response().SetBodyRaw(body)
		c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
		return nil
	}
	return c.JSON(commandReply{Stream: stream, Version: res.Version, Events: evs})
}

// appendCommandReply appends the reply to a command, byte for byte what
// c.JSON (json.Marshal) makes of commandReply, without reflection: each
// event's own JSON (events.Event.AppendJSON) compacted and HTML-escaped
// as json.Marshal treats a MarshalJSON result. ok is false, and c.JSON
// must answer, when an event's JSON is not valid (json.Marshal's error).
func appendCommandReply(buf []byte, stream string, version uint64, evs []events.Event) (_ []byte, ok bool) {
	if buf == nil {
		n := 64 + len(stream)
		for i := range evs {
			n += 224 + len(evs[i].Data)
		}
		buf = make([]byte, 0, n)
	}
	buf = append(buf, `{"stream":`...)
	buf = appendMarshalString(buf, stream)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, version, 10)
	buf = append(buf, `,"events":[`...)
	for i := range evs {
		if i > 0 {
			buf = append(buf, ',')
		}
		// The envelope's own fields are always valid JSON: its data
		// decides.
		if len(evs[i].Data) > 0 && !events.ValidJSON(evs[i].Data) {
			return nil, false
		}
		start := len(buf)
		buf = evs[i].AppendJSON(buf)
		if ev := buf[start:]; needsCompactHTML(ev) {
			out := appendCompactHTML(nil, ev)
			buf = append(buf[:start], out...)
		}
	}
	return append(buf, "]}"...), true
}

// needsCompactHTML reports whether valid JSON changes when compacted and
// HTML-escaped (appendCompactHTML).
func needsCompactHTML(b []byte) bool {
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case c == '<' || c == '>' || c == '&' || c == 0xE2:
			return true
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return true
		case c == '"':
			inString = true
		}
	}
	return false
}

// appendCompactHTML appends valid JSON src as json.Marshal writes a
// MarshalJSON result: white space outside strings removed; <, > and &
// written \u003c, \u003e and \u0026, U+2028 and U+2029 \u2028 and \u2029.
func appendCompactHTML(dst, src []byte) []byte {
	const hex = "0123456789abcdef"
	inString, escaped := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			continue
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
			i += 2
			continue
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		dst = append(dst, c)
	}
	return dst
}

// getState: GET /streams/{stream}, and with ?at=N the state at version N
// (stateAt).
func (s *Server) getState(c *fiber.Ctx) error {
	stream, err := s.streamParam(c)
	if err != nil {
		return err
	}
	if c.Context().QueryArgs().Has("at") {
		return s.stateAt(c, stream)
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	view, err := s.cfg.API.State(ctx, stream, principalOf(c).caller())
	if err != nil {
		return fmt.Errorf("state of %s: %w", stream, err)
	}
	c.Set(fiber.HeaderETag, etag(view.Version))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(withEpoch(view.JSON, s.cfg.Log.Epoch()))
}

// withEpoch adds "epoch":epoch as the last member of the JSON object obj
// (a state as the runtime renders it). Anything but an object, and an
// empty epoch, leave obj as it is.
func withEpoch(obj []byte, epoch string) []byte {
	body := bytes.TrimRight(obj, " \t\r\n")
	if epoch == "" || len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return obj
	}
	quoted, err := json.Marshal(epoch)
	if err != nil {
		return obj
	}
	inner := bytes.TrimSpace(body[1 : len(body)-1])
	out := make([]byte, 0, len(body)+len(quoted)+10)
	out = append(out, body[:len(body)-1]...)
	if len(inner) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"epoch":`...)
	out = append(out, quoted...)
	return append(out, '}')
}

type eventsReply struct {
	Events []events.Event `json:"events"`
	Next   uint64         `json:"next"`
	Epoch  string         `json:"epoch,omitempty"`
}

// getEvents: GET /streams/{stream}/events?from=N&limit=M.
func (s *Server) getEvents(c *fiber.Ctx) error {
	stream, err := s.streamParam(c)
	if err != nil {
		return err
	}
	var from uint64
	q := c.Query("from")
	if q != "" {
		if from, err = strconv.ParseUint(q, 10, 64); err != nil {
			return badRequest("from must be a version (0 or more), got %q", clip(q))
		}
	}
	epoch := s.cfg.Log.Epoch()
	if err := checkEpoch(q != "", c.Query("epoch"), epoch, "read again from 0 without epoch"); err != nil {
		return err
	}
	limit := defaultReadLimit
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return badRequest("limit must be 1-%d, got %q", maxReadLimit, clip(q))
		}
		limit = min(n, maxReadLimit)
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	// The log knows no owners: the runtime says whether a private stream
	// is the caller's, as for its state.
	if err := s.cfg.API.CheckRead(ctx, stream, principalOf(c).caller()); err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	evs, err := s.cfg.Log.ReadStream(ctx, stream, from, limit)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	next := from
	if len(evs) > 0 {
		next = evs[len(evs)-1].Version
	} else {
		evs = []events.Event{}
	}
	return c.JSON(eventsReply{Events: evs, Next: next, Epoch: epoch})
}
