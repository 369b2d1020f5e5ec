package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configures a Client. The zero value is usable: every zero field
// means the documented default.
type Options struct {
	// Header is added to every upgrade request (it is copied at Dial).
	Header http.Header
	// Token, when set, is sent as "Authorization: Bearer <Token>" on every
	// upgrade request; a successful Refresh replaces it for the upgrades
	// that follow.
	Token string
	// TokenSource, when set, is asked for the bearer token before every
	// connection attempt, Dial's and each reconnect's, instead of Token:
	// a source that fetches or mints a fresh token keeps reconnects
	// working after the server closed the connection because its token
	// expired (1008 "token expired"). ctx bounds the attempt. An error
	// fails the attempt like a failed dial: Dial returns it, a reconnect
	// backs off and tries again (counting towards MaxAttempts).
	TokenSource func(ctx context.Context) (string, error)
	// Logger receives connection diagnostics. Nil discards them.
	Logger *slog.Logger

	// ReconnectMin and ReconnectMax bound the reconnect backoff: attempt n
	// waits a uniformly random time in [0, min(ReconnectMax,
	// ReconnectMin·2ⁿ)) ("full jitter"), so that many clients dropped at
	// once do not come back in lockstep. Zero means 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// MaxAttempts is how many consecutive failed reconnect attempts the
	// client makes before it gives up (StateFailed). Zero means forever.
	MaxAttempts int
	// DialTimeout bounds one connection attempt. Zero means 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds writing one frame; a write that takes longer
	// drops the connection (and the client reconnects). Zero means 10s.
	WriteTimeout time.Duration
	// KeepAlive is the interval of WebSocket pings from the client; a pong
	// must come back within the same interval or the connection is dropped
	// and re-established. Zero means 30s; negative disables them (the
	// server's own pings are answered either way).
	KeepAlive time.Duration
	// ReadLimit is the largest frame accepted from the server. Zero means
	// 4 MiB (an event may hold up to 1 MiB); negative means no limit.
	ReadLimit int64

	// OnState, when set, is called for every connection state change, in
	// order, from the client's connection goroutine. It must return quickly
	// and must not call Close (Close waits for that goroutine).
	OnState func(StateChange)
	// HTTPClient performs the upgrade requests (proxies, tests). Nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Rand returns a number in [0, 1) for the backoff jitter. Nil means
	// math/rand/v2. It is called from the connection goroutine only.
	Rand func() float64
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 100 * time.Millisecond
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 5 * time.Second
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = 4 << 20
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	h := o.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	o.Header = h
}

// State is the connection state reported to Options.OnState.
type State int

const (
	// StateConnected: the first connection, made by Dial, is up.
	StateConnected State = iota + 1
	// StateDisconnected: the connection was lost; the client reconnects.
	StateDisconnected
	// StateReconnected: a new connection is up and every subscription has
	// been re-sent (from its last seen version).
	StateReconnected
	// StateFailed: the client gave up (MaxAttempts, or the server refused
	// the upgrade with a 4xx). Terminal; Err tells why.
	StateFailed
	// StateClosed: Close was called. Terminal.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateReconnected:
		return "reconnected"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is one transition. Err is why the connection was lost
// (StateDisconnected) or why the client gave up (StateFailed).
type StateChange struct {
	State State
	Err   error
}

// Client is a connection to the engine's /ws endpoint that survives
// reconnects. All methods are safe for concurrent use.
type Client struct {
	url  string
	opts Options
	log  *slog.Logger

	// ctx ends when the client stops (Close or failure); every goroutine of
	// the client watches it.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	refSeq  atomic.Uint64
	sessSeq atomic.Uint64
	resync  chan struct{} // nudges the connection goroutine: a subscription saw a gap

	mu       sync.Mutex
	token    string        // the bearer token of the next upgrade (without TokenSource)
	sess     *session      // the live connection, nil between connections
	sessCh   chan struct{} // closed when sess becomes non-nil
	subs     map[string]*Subscription
	stopped  bool  // Close was called or the client failed
	stopErr  error // ErrClosed or the failure
	stopDone chan struct{}
}

// Dial connects to url (ws://host/ws or http://host/ws) once and returns a
// client that from then on reconnects by itself. A failed first connection
// is returned as an error, not retried: the caller knows best whether the
// server should already be up.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	opts.setDefaults()
	c := &Client{
		url:      url,
		opts:     opts,
		log:      opts.Logger.With("url", url),
		resync:   make(chan struct{}, 1),
		sessCh:   make(chan struct{}),
		subs:     make(map[string]*Subscription),
		stopDone: make(chan struct{}),
		token:    opts.Token,
	}
	s, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.startSession(s)
	c.install(s)
	c.wg.Add(1)
	go c.run(s)
	return c, nil
}

// Done is closed when the client has stopped for good, after Close or
// after it gave up reconnecting (see Err), once the last OnState call has
// returned.
func (c *Client) Done() <-chan struct{} { return c.stopDone }

// Err is nil while the client runs, ErrClosed after Close, and the reason
// after the client gave up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// Close closes the connection with a normal closure, stops reconnecting,
// fails requests in flight with ErrClosed, ends every subscription and
// returns once every goroutine of the client has exited. It must not be
// called from a handler or OnState (they run on goroutines it waits for).
// Closing twice is harmless.
func (c *Client) Close() error {
	c.stop(ErrClosed)
	c.wg.Wait()
	return nil
}

// stop marks the client stopped with err (first caller wins) and cancels
// its context; the goroutines then wind down on their own.
func (c *Client) stop(err error) bool {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return false
	}
	c.stopped = true
	c.stopErr = err
	subs := c.subs
	c.subs = map[string]*Subscription{}
	c.mu.Unlock()
	for _, sub := range subs {
		sub.end(err)
	}
	c.cancel()
	return true
}

func (c *Client) notify(st State, err error) {
	switch st {
	case StateDisconnected, StateFailed:
		c.log.Warn("client: "+st.String(), "err", err)
	default:
		c.log.Debug("client: " + st.String())
	}
	if c.opts.OnState != nil {
		c.opts.OnState(StateChange{State: st, Err: err})
	}
}

func (c *Client) nextRef() string {
	return strconv.FormatUint(c.refSeq.Add(1), 36)
}

// dial makes one connection attempt.
func (c *Client) dial(ctx context.Context) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	header, err := c.upgradeHeader(dctx)
	if err != nil {
		return nil, err
	}
	conn, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: header,
	})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 &&
			resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			return nil, &refusedError{status: resp.StatusCode, err: err}
		}
		return nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(c.opts.ReadLimit)
	return newSession(c, conn), nil
}

// upgradeHeader is Options.Header with the bearer token of this attempt:
// TokenSource's, else the latest of Options.Token and Refresh.
func (c *Client) upgradeHeader(ctx context.Context) (http.Header, error) {
	var token string
	if c.opts.TokenSource != nil {
		t, err := c.opts.TokenSource(ctx)
		if err != nil {
			return nil, fmt.Errorf("token source: %w", err)
		}
		token = t
	} else {
		c.mu.Lock()
		token = c.token
		c.mu.Unlock()
	}
	if token == "" {
		return c.opts.Header, nil
	}
	h := c.opts.Header.Clone()
	h.Set("Authorization", "Bearer "+token)
	return h, nil
}

// refusedError is an upgrade answered with a 4xx: retrying will not help.
type refusedError struct {
	status int
	err    error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("upgrade refused with HTTP %d: %v", e.status, e.err)
}

func (e *refusedError) Unwrap() error { return e.err }

// startSession starts the goroutines that belong to one connection.
func (c *Client) startSession(s *session) {
	c.wg.Add(1)
	go s.readLoop()
	if c.opts.KeepAlive > 0 {
		c.wg.Add(1)
		go s.keepAlive(c.opts.KeepAlive)
	}
}

// install publishes s as the live connection and wakes callers waiting for
// one.
func (c *Client) install(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-s.done:
		return // already gone; the connection goroutine will notice
	default:
	}
	c.sess = s
	close(c.sessCh)
}

// uninstall is called by a session's reader as it ends.
func (c *Client) uninstall(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.sessCh = make(chan struct{})
	}
}

// session returns the live connection, waiting for one while the client
// reconnects.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ch, stopped, err := c.sess, c.sessCh, c.stopped, c.stopErr
		c.mu.Unlock()
		if stopped {
			return nil, err
		}
		if s != nil {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
		}
	}
}

// run is the connection goroutine: it watches the live connection, and when
// it is lost, reconnects with backoff and re-subscribes. It owns the
// OnState calls and the normal closure on Close.
func (c *Client) run(s *session) {
	defer c.wg.Done()
	defer close(c.stopDone) // after the last OnState call
	c.notify(StateConnected, nil)
	var attempt int // backoff exponent; kept across connections that die young
	for {
		started := time.Now()
		cause := c.watch(s)
		if cause == nil { // Close
			s.closeNormally()
			c.notify(StateClosed, nil)
			return
		}
		c.notify(StateDisconnected, cause)
		if time.Since(started) >= c.opts.ReconnectMax {
			attempt = 0 // the connection was healthy; start the backoff over
		}
		ns, err := c.reconnect(&attempt)
		if ns == nil {
			if err == nil {
				c.notify(StateClosed, nil)
				return
			}
			if c.stop(err) {
				c.notify(StateFailed, err)
			}
			return
		}
		s = ns
		c.startSession(s)
		c.install(s)
		c.resubscribeAll(s)
		c.notify(StateReconnected, nil)
	}
}

// watch returns s's error once s is lost, or nil when the client stops.
func (c *Client) watch(s *session) error {
	for {
		select {
		case <-s.done:
			return s.err
		case <-c.ctx.Done():
			return nil
		case <-c.resync:
			c.resyncGaps(s)
		}
	}
}

// reconnect dials with backoff until it succeeds (the session), the client
// is closed (nil, nil) or it gives up (nil, why).
func (c *Client) reconnect(attempt *int) (*session, error) {
	for failures := 0; ; failures++ {
		d := backoff(*attempt, c.opts.ReconnectMin, c.opts.ReconnectMax, c.opts.Rand())
		*attempt++
		t := time.NewTimer(d)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		s, err := c.dial(c.ctx)
		if err == nil {
			return s, nil
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		c.log.Info("client: reconnect failed", "attempt", failures+1, "err", err)
		if _, ok := errors.AsType[*refusedError](err); ok {
			return nil, err
		}
		if c.opts.MaxAttempts > 0 && failures+1 >= c.opts.MaxAttempts {
			return nil, fmt.Errorf("gave up after %d reconnect attempts: %w", failures+1, err)
		}
	}
}

// backoff is the wait before reconnect attempt n (0-based): full jitter, a
// uniformly random duration in [0, min(max, base·2ⁿ)), r being the random
// number in [0, 1).
func backoff(n int, base, max time.Duration, r float64) time.Duration {
	ceil := max
	if n < 62 && base < max>>n {
		ceil = base << n
	}
	return time.Duration(r * float64(ceil))
}
