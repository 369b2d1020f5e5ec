package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/internal/counter"
	"github.com/b6368a97/engine/transport/apidocs"
)

// Server is the engine's HTTP and WebSocket front end. Create it with New,
// run it with Serve and stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	app     *fiber.App
	metrics *Metrics
	limiter *limiter // nil when rate limiting is off

	// base is the parent of every context the server hands to the
	// runtime and the log; it is cancelled when Shutdown gives up waiting,
	// so that nothing the server started outlives Shutdown.
	base       context.Context
	cancelBase context.CancelFunc

	ready atomic.Bool
	// assetCache holds the files of Config.Assets served so far (assets.go).
	assetCache sync.Map
	// requests counts the requests that succeeded quickly, for the
	// sampling of their log lines (Config.RequestLogEvery).
	requests atomic.Uint64
	draining atomic.Bool

	// httpActive counts HTTP handlers running.
	httpActive counter.Counter
	// wsActive counts WebSocket handlers running.
	wsActive counter.Counter

	mu        sync.Mutex
	conns     map[*Conn]struct{}
	wsCount   int            // WebSocket connections reserved (wsSlot)
	wsPerIP   map[string]int // the same, by client address
	listeners []net.Listener
	stopping  bool          // Shutdown has begun
	stopped   chan struct{} // closed when Shutdown has finished

	// tracked follows fasthttp's connections (conns.go).
	tracked httpConns

	// wsPaths are the paths registered by websocket, for the route test.
	wsPaths []string
}

// Keys of values the transport stores on a request.
const (
	localRequestID = "engine.request_id"
	localPrincipal = "engine.principal"
	localWS        = "engine.ws"
)

// New validates cfg, applies its defaults and builds the routes.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		conns:   make(map[*Conn]struct{}),
		wsPerIP: make(map[string]int),
		stopped: make(chan struct{}),
	}
	if cfg.RateLimit.PerSecond > 0 {
		s.limiter = newLimiter(cfg.RateLimit.PerSecond, cfg.RateLimit.Burst, cfg.Now)
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// fasthttp refuses a body over its limit before reading it and
		// closes the connection, which a client still sending sees as a
		// reset instead of a 413. So fasthttp's limit is a hard cap above
		// Config.BodyLimit, and guard answers 413 for bodies between the
		// two, which have been read.
		BodyLimit:    hardBodyLimit(cfg.BodyLimit),
		ErrorHandler: s.fiberError,
		WriteTimeout: cfg.WriteTimeout,
		// A request's headers and body must arrive within this, from its
		// first byte; idle keep-alive connections are closed after
		// IdleTimeout.
		ReadTimeout: cfg.HTTPReadTimeout,
		IdleTimeout: 2 * time.Minute,
		// Routes match the raw path; stream ids are unescaped by the
		// handlers so that "room%3Alobby" and "room:lobby" are the same.
		UnescapePath: false,
		// Not ReduceMemoryUsage: with it, a request cut short by Shutdown
		// (cutUnread) sometimes gets a connection reset instead of its 400
		// (TestShutdownHalfSentRequests, about 1 run in 8). A WebSocket
		// keeps nothing of fasthttp's request anyway (wsupgrade.go).
	})
	// fasthttp's worker-pool janitor notices a stopped server only when
	// it wakes, every MaxIdleWorkerDuration (default 10 s): keep that
	// short so that no goroutine of the server outlives Shutdown by more
	// than a second.
	s.app.Server().MaxIdleWorkerDuration = time.Second
	s.app.Server().ConnState = s.connState
	// A WebSocket's goroutine closes its socket (wsupgrade.go).
	s.app.Server().KeepHijackedConns = true
	s.routes()
	return s, nil
}

// publicRoutes are the routes that answer without a token, on purpose,
// GET only: probes for orchestrators, the API documents, and the static
// pages (Config.Assets, see assets.go). This list is the one place that
// says so: routes registers these (and only these) outside
// authentication, guard never throttles or drains the probes (isProbe),
// and the route test (TestEveryRouteAuthenticates) allows them, and no
// other route, to answer a request without a token.
var publicRoutes = []struct {
	path    string
	handler func(s *Server) fiber.Handler
	probe   bool // never throttled or drained
}{
	{"/healthz", func(s *Server) fiber.Handler { return s.healthz }, true},
	{"/readyz", func(s *Server) fiber.Handler { return s.readyz }, true},
	{"/metrics", func(s *Server) fiber.Handler {
		return adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}, true},
	// The API documents (package apidocs): they describe the API and grant nothing.
	{"/openapi.json", func(*Server) fiber.Handler { return apidocs.Handler(apidocs.OpenAPI, fiber.MIMEApplicationJSON) }, false},
	{"/asyncapi.json", func(*Server) fiber.Handler { return apidocs.Handler(apidocs.AsyncAPI, fiber.MIMEApplicationJSON) }, false},
	{"/api", func(*Server) fiber.Handler { return apidocs.Handler(apidocs.Page, fiber.MIMETextHTMLCharsetUTF8) }, false},
	// The pages (Config.Assets).
	{"/", func(s *Server) fiber.Handler { return s.asset("index.html") }, false},
	{"/client.js", func(s *Server) fiber.Handler { return s.asset("client.js") }, false},
	{"/app/*", func(s *Server) fiber.Handler { return s.assetDir("app") }, false},
}

func (s *Server) routes() {
	app := s.app
	app.Use(s.observe)
	app.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			s.log.Error("panic in handler", "request_id", requestID(c), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
		},
	}))
	app.Use(s.guard)

	// The public routes, all of them: probes, API documents and pages.
	for _, r := range publicRoutes {
		app.Get(r.path, r.handler(s))
	}

	// Everything else is registered through post, get and websocket,
	// which authenticate first.
	s.post("/streams/:stream/commands", s.postCommand)
	s.get("/streams/:stream/events", s.getEvents)
	s.get("/streams/:stream", s.getState)
	s.get("/streams", s.listStreams)
	s.websocket(&Endpoint{Path: "/ws", Frame: engineFrame, Render: renderEvent, Presence: true, Expired: expiredFrame})

	r := &Routes{s: s}
	for _, ext := range s.cfg.Extensions {
		ext(r)
	}
}

// get and post register a route behind authHTTP.
func (s *Server) get(path string, h fiber.Handler)  { s.app.Get(path, s.authHTTP, h) }
func (s *Server) post(path string, h fiber.Handler) { s.app.Post(path, s.authHTTP, h) }

// wsReadBuffer is a WebSocket's read buffer: a client's frames are
// requests of a few hundred bytes, and a larger one is read in several
// reads.
const wsReadBuffer = 1 << 10

// wsWriteBuffers lends the library its write buffer for a frame the
// writer gives it (a frame over 64 KiB; see wswrite.go), so that no
// connection keeps one. The library takes a buffer from it per message
// and puts it back after.
var wsWriteBuffers sync.Pool

// websocket registers an endpoint behind upgrade, which authenticates.
func (s *Server) websocket(ep *Endpoint) {
	// The library's upgrader, without contrib/websocket's wrapper, which
	// would keep copies of the request's headers, cookies and query per
	// connection.
	up := &fws.Upgrader{
		// Origins are checked by upgrade, which answers with a problem.
		CheckOrigin:      func(*http.Request) bool { return true },
		HandshakeTimeout: s.cfg.WriteTimeout,
		ReadBufferSize:   wsReadBuffer,
		WriteBufferSize:  4 << 10,
		WriteBufferPool:  &wsWriteBuffers,
		// The writer frames data frames itself (wswrite.go), which is
		// only right without an extension: never offer permessage-deflate.
		EnableCompression: false,
	}
	s.app.Get(ep.Path, s.upgrade(ep), s.wsUpgrade(ep, up))
	s.wsPaths = append(s.wsPaths, ep.Path)
}

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown (at once, closing ln, if Shutdown came first), or the
// listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	return s.app.Listener(ln)
}

// SetReady sets what GET /readyz reports (while not draining). cmd/engine
// sets it once the store is open and the actors run.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Shutdown stops the server gracefully: /readyz turns 503, listeners close,
// new requests and commands get 503, requests not received whole are cut
// short (400, connection closed), in-flight HTTP requests and
// WebSocket commands are answered, then every WebSocket gets close 1001
// "going away". It returns once every handler and connection goroutine has
// ended. If ctx ends first, Shutdown cancels what still runs, closes the
// remaining connections at once, waits for their goroutines and returns
// ctx's error. The caller then stops the actors and closes the store.
// Calling Shutdown again waits for the first call.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		select {
		case <-s.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.stopping = true
	s.draining.Store(true)
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	defer close(s.stopped)

	httpErr := make(chan error, 1)
	go func() { httpErr <- s.stopHTTP(ctx) }()

	for _, c := range conns {
		c.startDrain()
	}
	forced := false
	for _, c := range conns {
		if err := c.waitIdle(ctx); err != nil {
			forced = true
			break
		}
		c.q.closeWith(websocket.CloseGoingAway, "going away", true)
	}
	if !forced && s.wsActive.Wait(ctx) != nil {
		forced = true
	}
	if forced {
		s.force()
		// Every connection is unblocked now: its handler ends promptly.
		_ = s.wsActive.Wait(context.Background())
	}
	err := <-httpErr // nil, or ctx's error
	if err != nil && !forced {
		forced = true
		s.force()
	}
	if forced {
		// With base cancelled, the remaining handlers end promptly.
		_ = s.httpActive.Wait(context.Background())
	}
	s.cancelBase()
	if forced {
		return fmt.Errorf("transport: shutdown: %w", context.Cause(ctx))
	}
	return nil
}

// stopHTTP closes the listeners and waits for in-flight HTTP handlers.
// Requests not received yet are not waited for: their reading ends at once
// (cutUnread), so a client that sent half a request holds nothing up.
func (s *Server) stopHTTP(ctx context.Context) error {
	done, cutting := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(cutting)
		s.cutUnreadUntil(done)
	}()
	err := s.app.ShutdownWithContext(ctx)
	close(done)
	<-cutting
	s.mu.Lock()
	lns := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, ln := range lns {
		// Fiber closed the listeners it had started serving; this closes
		// one whose Serve had not got that far.
		_ = ln.Close()
	}
	if err != nil {
		return err
	}
	return s.httpActive.Wait(ctx)
}

// force ends everything Shutdown is still waiting for.
func (s *Server) force() {
	s.cancelBase()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.forceClose()
	}
}

func (s *Server) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	s.wsActive.Add()
	return true
}

func (s *Server) unregister(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.wsActive.Done()
	s.mu.Unlock()
	s.releaseWS(c.req.slot)
}

// observe is the outermost middleware: request id, in-flight accounting,
// error rendering and the one log line per request.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	s.httpActive.Add()
	defer s.httpActive.Done()
	nc := c.Context().Conn()
	s.tracked.phase(nc, reqHandling)
	defer s.tracked.phase(nc, reqAnswered)
	rid := c.Get("X-Request-Id")
	if validRequestID(rid) {
		rid = strings.Clone(rid)
	} else {
		rid = rand.Text()
	}
	c.Locals(localRequestID, rid)
	c.Set("X-Request-Id", rid)
	if err := c.Next(); err != nil {
		s.writeProblem(c, err)
	}
	s.logRequest(c, rid, time.Since(start))
	return nil
}

// logRequest writes the request's log line: always for an error status or
// a slow request, else for one in Config.RequestLogEvery (see there).
func (s *Server) logRequest(c *fiber.Ctx, rid string, took time.Duration) {
	status := c.Response().StatusCode()
	every := s.cfg.RequestLogEvery
	sampled := status < 400 && took < s.cfg.SlowRequest
	if sampled && every > 1 && (s.requests.Add(1)-1)%uint64(every) != 0 {
		return
	}
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", rid),
		slog.String("method", strings.Clone(c.Method())),
		slog.String("path", strings.Clone(c.Path())),
		slog.Int("status", status),
		slog.Duration("duration", took),
		slog.String("remote", c.IP()),
	}
	if sampled && every > 1 {
		attrs = append(attrs, slog.Int("sampled", every))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "http request", attrs...)
}

// fiberError is Fiber's ErrorHandler: it sees the errors that do not pass
// through observe (a body over the limit, a malformed request line).
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	s.writeProblem(c, err)
	return nil
}

// rateLimitError says when the client may try again.
type rateLimitError struct{ wait time.Duration }

func (e *rateLimitError) Error() string         { return "too many requests: slow down" }
func (e *rateLimitError) ClientMessage() string { return "too many requests: slow down" }
func (e *rateLimitError) Unwrap() error         { return errRateLimited }

// writeProblem renders err as the protocol's problem+json.
func (s *Server) writeProblem(c *fiber.Ctx, err error) {
	p, internal := classify(err)
	if internal {
		s.log.Error("request failed", "request_id", requestID(c), "method", strings.Clone(c.Method()), "path", strings.Clone(c.Path()), "err", err)
	}
	switch p.Status {
	case fiber.StatusUnauthorized:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="engine"`)
	case fiber.StatusTooManyRequests:
		var rl *rateLimitError
		secs := 1
		if errors.As(err, &rl) {
			secs = max(1, int((rl.wait+time.Second-1)/time.Second))
		}
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	case fiber.StatusServiceUnavailable:
		c.Set(fiber.HeaderRetryAfter, "1")
	}
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	_ = c.Send(p.marshal())
}

// isProbe reports the probes' paths (publicRoutes), which are never
// throttled, drained or authenticated: orchestrators must always reach
// them.
func isProbe(path string) bool {
	for _, r := range publicRoutes {
		if r.probe && r.path == path {
			return true
		}
	}
	return false
}

// hardBodyLimit is the body size beyond which fasthttp drops the request
// unread.
func hardBodyLimit(limit int) int { return max(4*limit, limit+256<<10) }

// guard refuses work while draining, throttles clients and enforces the
// body limit.
func (s *Server) guard(c *fiber.Ctx) error {
	if isProbe(c.Path()) {
		return c.Next()
	}
	if s.draining.Load() {
		c.Set(fiber.HeaderConnection, "close")
		return errDraining
	}
	if s.limiter != nil {
		if ok, wait := s.limiter.allow(c.IP()); !ok {
			return &rateLimitError{wait: wait}
		}
	}
	if n := len(c.Request().Body()); n > s.cfg.BodyLimit {
		return newClientError(errBodyTooLarge, "the body has %d bytes, the limit is %d", n, s.cfg.BodyLimit)
	}
	return c.Next()
}

// authHTTP authenticates the bearer token of a request.
func (s *Server) authHTTP(c *fiber.Ctx) error {
	p, err := s.authenticate(bearer(c.Get(fiber.HeaderAuthorization)))
	if err != nil {
		return err
	}
	c.Locals(localPrincipal, p)
	return c.Next()
}

// principalOf is who an authenticated request speaks for, or nil for a
// request that did not pass authHTTP, which every check then refuses.
func principalOf(c *fiber.Ctx) *principal {
	p, _ := c.Locals(localPrincipal).(*principal)
	return p
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// validRequestID accepts a client's X-Request-Id of 1-128 visible ASCII
// characters; anything else is replaced by a fresh id.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	switch {
	case s.draining.Load():
		return errDraining
	case !s.ready.Load():
		return newClientError(actors.ErrUnavailable, "the server is starting")
	}
	if f := s.cfg.Ready; f != nil {
		if err := f(); err != nil {
			return newClientError(actors.ErrUnavailable, "%s", err)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
