package transport

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Extension adds routes and WebSocket endpoints to a Server; the seed
// application's routes (package transport/seed) are one. New calls each
// extension of Config.Extensions once, after the generic routes.
type Extension func(r *Routes)

// Routes is what an extension registers on. Every route it adds requires
// authentication like the generic ones (see Server.routes): only the
// probes are public.
type Routes struct{ s *Server }

// Server is the server the routes belong to.
func (r *Routes) Server() *Server { return r.s }

// Get registers an authenticated GET route.
func (r *Routes) Get(path string, h fiber.Handler) { r.s.get(path, h) }

// Post registers an authenticated POST route.
func (r *Routes) Post(path string, h fiber.Handler) { r.s.post(path, h) }

// WebSocket registers an endpoint: its upgrade request is authenticated,
// checked against the allowed origins and rate limited before ep.Check.
func (r *Routes) WebSocket(ep *Endpoint) { r.s.websocket(ep) }

// Context is the parent of the contexts an extension hands to the runtime:
// it ends when Shutdown gives up waiting.
func (s *Server) Context() context.Context { return s.base }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.cfg.Now() }

// Command runs a command built by a route on stream, as the request's
// principal, after the checks every stream route makes (a stream the
// runtime serves, one the token allows), within the command deadline.
func (s *Server) Command(c *fiber.Ctx, stream, typ string, data []byte, key string) (actors.Result, error) {
	if err := s.checkStream(principalOf(c), stream); err != nil {
		return actors.Result{}, err
	}
	return s.execute(s.base, decider.Command{
		Stream: stream,
		Type:   typ,
		Data:   data,
		ID:     key,
		User:   principalOf(c).userName(),
		Caller: principalOf(c).caller(),
		Time:   s.cfg.Now(),
	}, events.AnyVersion)
}

// Subscribe subscribes to a stream the request's principal may read,
// within the command deadline. req.Caller is set to the principal's.
func (s *Server) Subscribe(c *fiber.Ctx, req actors.SubscribeRequest) (actors.Subscription, error) {
	if err := s.checkStream(principalOf(c), req.Stream); err != nil {
		return nil, err
	}
	req.Caller = principalOf(c).caller()
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	return s.cfg.API.Subscribe(ctx, req)
}

// checkStream: a stream the runtime serves and p may touch.
func (s *Server) checkStream(p *principal, stream string) error {
	if err := s.cfg.API.Check(stream); err != nil {
		return err
	}
	return p.allow(stream)
}

// DecodeJSON decodes a request's JSON body strictly into v (see
// decodeStrict), refusing a body declared as anything but JSON.
func DecodeJSON(c *fiber.Ctx, v any) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	return decodeStrict(c.Body(), v)
}

// PathParam reads, percent-decodes and copies a route parameter.
func PathParam(c *fiber.Ctx, name string) (string, error) {
	raw := c.Params(name)
	v, err := unescape(raw)
	if err != nil {
		return "", badRequest("%s %q is not valid percent-encoding", name, clip(raw))
	}
	return v, nil
}

// QueryParam reads and copies a query parameter, or def when absent.
func QueryParam(c *fiber.Ctx, name, def string) string {
	return strings.Clone(c.Query(name, def))
}

// IdempotencyKey reads and checks a request's Idempotency-Key header.
func IdempotencyKey(c *fiber.Ctx) (string, error) { return idempotencyKey(c) }

// BadRequest is a 400 bad_request whose detail the client reads.
func BadRequest(format string, args ...any) error { return badRequest(format, args...) }

// ClientError is an error matching kind (a sentinel of the error table)
// whose detail the client reads.
func ClientError(kind error, format string, args ...any) error {
	return newClientError(kind, format, args...)
}

// Clip bounds client input quoted in messages.
func Clip(s string) string { return clip(s) }

// ErrDraining is the 503 unavailable of a server that is shutting down.
var ErrDraining error = errDraining

// User is who the request speaks for: the token's subject, or "" when
// auth is off.
func User(c *fiber.Ctx) string { return principalOf(c).userName() }

// Upgrade's accessors for endpoints.

// User is who the token speaks for, or "" when auth is off.
func (u *Upgrade) User() string { return u.principal.userName() }

// UserParam is the request's ?user= parameter.
func (u *Upgrade) UserParam() string { return u.user }

// Allow reports whether the token may touch stream (forbidden if not).
func (u *Upgrade) Allow(stream string) error { return u.principal.allow(stream) }

// Conn's methods for endpoints. They are safe to call from any goroutine
// of the connection; none blocks on the client.

// Upgrade is what the connection's upgrade request said.
func (c *Conn) Upgrade() *Upgrade { return c.req }

// Context ends with the connection.
func (c *Conn) Context() context.Context { return c.ctx }

// Server is the connection's server.
func (c *Conn) Server() *Server { return c.s }

// Send queues a text frame. It returns false when the connection is
// closing (or closes now because its queue is full).
func (c *Conn) Send(data []byte) bool { return c.send(data) }

// SendBinary queues a binary frame, like Send.
func (c *Conn) SendBinary(data []byte) bool {
	return c.q.push(outItem{typ: websocket.BinaryMessage, data: data, size: len(data)})
}

// SubscribeLive subscribes the connection to stream's live events (and
// presence as member, when the endpoint forwards presence), rendered by
// the endpoint's Render.
func (c *Conn) SubscribeLive(stream, member string) error {
	if err := c.s.checkStream(c.principal(), stream); err != nil {
		return err
	}
	sub, err := c.subscribe(stream, member, nil, nil)
	if err != nil {
		return err
	}
	c.subs[stream] = sub
	return nil
}

// Submit runs fn on the connection's lane for stream (see submit).
func (c *Conn) Submit(stream string, fn func()) bool { return c.submit(stream, fn) }

// Execute runs cmd as the connection's principal (cmd.User and
// cmd.Caller are set to it) within the command deadline.
func (c *Conn) Execute(cmd decider.Command) (actors.Result, error) {
	p := c.principal()
	if err := c.s.checkStream(p, cmd.Stream); err != nil {
		return actors.Result{}, err
	}
	cmd.User = p.userName()
	cmd.Caller = p.caller()
	return c.s.execute(c.ctx, cmd, events.AnyVersion)
}

// Limited applies the client's rate limit to one request frame: true
// means refuse it.
func (c *Conn) Limited() bool { return c.s.limited(c) }

// Problem classifies err for a reply frame (logging an internal error) and
// returns its protocol code and detail.
func (c *Conn) Problem(err error) (code, detail string) {
	p, _ := c.s.wsProblem(c, err)
	return p.Code, p.Detail
}

// Go runs fn on a goroutine that the connection waits for before its
// handler returns; fn's context ends with the connection.
func (c *Conn) Go(fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// CloseFor closes the connection because err made it unusable.
func (c *Conn) CloseFor(err error) { c.closeFor(err) }

// CommandTimeout is how long the server waits for the runtime's answer.
func (s *Server) CommandTimeout() time.Duration { return s.cfg.CommandTimeout }
