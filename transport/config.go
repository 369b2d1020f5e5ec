package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/events"
)

// Defaults of Config's zero values.
const (
	DefaultBodyLimit       = 64 << 10
	DefaultReadLimit       = 64 << 10
	DefaultSendQueueFrames = 1024
	DefaultSendQueueBytes  = 4 << 20
	DefaultPingInterval    = 30 * time.Second
	DefaultPongTimeout     = 60 * time.Second
	DefaultWriteTimeout    = 5 * time.Second
	DefaultCommandTimeout  = 10 * time.Second
	DefaultMaxInflight     = 256

	DefaultMaxSubscriptions    = 1000
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	DefaultHTTPReadTimeout     = 5 * time.Second
	DefaultCloseLinger         = 5 * time.Second
	DefaultCloseLingerBytes    = 1 << 20

	DefaultRequestLogEvery = 100
	DefaultSlowRequest     = time.Second
)

// Log is the part of the event log the transport reads directly: stream
// pages for GET /streams/{s}/events and the listing of GET /streams
// (subscriptions, catch-up included, come from the runtime), and the
// store's epoch, which replies carry and resumes are checked against (see
// events.Store.Epoch). events.Store satisfies it.
type Log interface {
	ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]events.Event, error)
	// Streams lists a kind's streams for GET /streams (events.Store.Streams).
	Streams(ctx context.Context, kind, after string, limit int) ([]events.StreamInfo, error)
	Epoch() string
}

// DefaultJWTLeeway is cmd/engine's -jwt-leeway: the clock skew tolerated
// on exp, nbf and iat. Auth's zero Leeway is none.
const DefaultJWTLeeway = 30 * time.Second

// Auth configures bearer-token authentication. Auth is on when JWTSecret
// or JWKS is set; both may be.
//
// With auth off (the zero Auth) every request is allowed and PostMessage
// takes its user from data. With auth on, every route except /healthz,
// /readyz, /metrics and the static pages (Assets) needs a valid token: signed with HS256 and
// JWTSecret, or with RS256 or ES256 and a key of JWKS (an RS256 or ES256
// token is never checked against the secret, nor an HS256 one against a
// public key); with a "sub", the user; with an "exp" (required), and
// "nbf" and "iat" when present, checked with Leeway. An optional
// "streams" claim lists the stream patterns (path.Match syntax, e.g.
// "room:*") the token may touch: absent means every stream, [] none, and
// anything but a list of strings (null included) makes the token invalid.
type Auth struct {
	// JWTSecret is the HS256 key.
	JWTSecret []byte
	// JWKS holds the RS256 and ES256 public keys (ReadJWKSFile). A token
	// with a "kid" header is checked with that key only (an unknown kid
	// is refused); one without is tried with every key of its alg. The
	// set is read once: changing the file needs a restart.
	JWKS *KeySet
	// Leeway is the clock skew tolerated: a token is accepted until exp +
	// Leeway, from nbf - Leeway and iat - Leeway. Zero (the default) is
	// none; cmd/engine uses DefaultJWTLeeway. A WebSocket closes at its
	// token's exp + Leeway unless the client refreshed it.
	Leeway time.Duration
}

// RateLimit configures a token bucket per client IP.
type RateLimit struct {
	// PerSecond is the sustained rate of requests (HTTP requests,
	// WebSocket upgrades and WebSocket request frames other than ping).
	// 0 (the default) turns rate limiting off.
	PerSecond float64
	// Burst is the bucket size. 0 means max(1, ceil(PerSecond)).
	Burst int
}

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// API is the actor runtime. Required.
	API actors.API
	// Log reads the event log. Required; pass the events.Store.
	Log Log
	// Extensions add routes and WebSocket endpoints (the seed routes).
	Extensions []Extension
	// Ready, when set, is asked by GET /readyz once the server is ready:
	// an error makes it 503 with the error's text (a cluster node that
	// does not see a majority of its peers, so that a load balancer sends
	// clients elsewhere).
	Ready func() error
	// Logger receives one line per HTTP request and connection-level
	// faults. Default slog.Default().
	Logger *slog.Logger

	// BodyLimit caps an HTTP request body in bytes; a larger one is 413
	// too_large. Default 64 KiB.
	BodyLimit int
	// ReadLimit caps one WebSocket message in bytes; a larger one closes
	// the connection with 1009. Default 64 KiB.
	ReadLimit int64
	// SendQueueFrames and SendQueueBytes bound the frames waiting for one
	// WebSocket writer; a connection over either is closed with 1008
	// "slow consumer". Defaults 1024 frames and 4 MiB.
	SendQueueFrames int
	SendQueueBytes  int
	// PingInterval is how often the server pings each WebSocket.
	// Default 30 s.
	PingInterval time.Duration
	// PongTimeout: a WebSocket peer from which nothing (no frame, no pong)
	// arrived for this long is dropped. Must exceed PingInterval.
	// Default 60 s.
	PongTimeout time.Duration
	// RequestLogEvery: the "http request" log line is written for one in
	// this many requests that succeed quickly (with "sampled": N), so that
	// logging costs the hot path little under load; a request answered
	// with a status of 400 or above, or slower than SlowRequest, is always
	// logged. 1 logs every request. Default 100.
	RequestLogEvery int
	// SlowRequest: see RequestLogEvery. Default 1 s.
	SlowRequest time.Duration
	// WriteTimeout bounds one WebSocket write (of the frames queued
	// together; a deadline set for an earlier write is kept while it is
	// at most an eighth short of WriteTimeout) and one HTTP response
	// write. Default 5 s.
	WriteTimeout time.Duration
	// MaxInflight bounds the commands one WebSocket connection may have
	// waiting for their ack; the connection stops reading while it is
	// reached. Default 256.
	MaxInflight int
	// MaxSubscriptions bounds the streams one /ws connection may be
	// subscribed to at once; a subscribe beyond it is refused with
	// limit_exceeded (a subscribe to a stream the connection has already
	// replaces it and is not counted twice). Default 1,000.
	MaxSubscriptions int
	// MaxConnections bounds the WebSocket connections of the server, and
	// MaxConnectionsPerIP those from one client address (the socket's,
	// as for RateLimit). An upgrade beyond either is refused before the
	// upgrade: 503 unavailable for the server's, 429 limit_exceeded for
	// the address's. A connection counts from its accepted upgrade
	// request until its handler has ended. Defaults 10,000 and 100.
	MaxConnections      int
	MaxConnectionsPerIP int
	// HTTPReadTimeout bounds the reading of one HTTP request, headers and
	// body, from its first byte (the connection's start for its first
	// request); a request not received by then is answered 400 and its
	// connection closed. Idle keep-alive connections are not affected.
	// Default 5 s.
	HTTPReadTimeout time.Duration
	// CloseLinger and CloseLingerBytes bound the lingering close of a
	// WebSocket: once the server has decided to close a connection (its
	// send queue overflowed, a frame was over ReadLimit, shutdown), it
	// dispatches nothing more from it, sends its close frame and keeps
	// reading and discarding what the peer still sends, so that closing
	// the socket does not reset the connection before the peer has read
	// the close frame. It stops at the peer's close frame or EOF, after
	// CloseLinger from the close frame, or after CloseLingerBytes read.
	// Defaults 5 s and 1 MiB.
	CloseLinger      time.Duration
	CloseLingerBytes int64
	// Assets are the static pages served without a token: GET / is its
	// index.html, GET /client.js its client.js, GET /app/NAME its
	// app/NAME (.html, .js, .css, .svg, .png, .ico and .json files only).
	// Nil: those routes answer 404. cmd/engine passes web.FS.
	Assets fs.FS
	// AllowedOrigins lists the Origin header values accepted on WebSocket
	// upgrades. Empty (the default) accepts every origin; a request
	// without an Origin header (not a browser) is always accepted.
	AllowedOrigins []string
	// CommandTimeout is how long a command, state read or subscription
	// may wait for its actor; past it the client gets 503 unavailable.
	// Default 10 s.
	CommandTimeout time.Duration

	// Auth turns on bearer tokens. Zero: off.
	Auth Auth
	// RateLimit throttles clients. Zero: off.
	RateLimit RateLimit

	// Metrics are the engine's collectors. Default: NewMetrics(Registerer).
	// cmd/engine creates them first and also passes them to the actor
	// runtime as actors.Config.Observer.
	Metrics *Metrics
	// Registerer receives the collectors when Metrics is nil, and Gatherer
	// serves GET /metrics. Both nil (the default): a new registry for
	// both. A Registerer that is also a Gatherer (a *prometheus.Registry)
	// serves as both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (cfg *Config) setDefaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.ReadLimit == 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	if cfg.SendQueueFrames == 0 {
		cfg.SendQueueFrames = DefaultSendQueueFrames
	}
	if cfg.SendQueueBytes == 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PongTimeout == 0 {
		cfg.PongTimeout = DefaultPongTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.RequestLogEvery <= 0 {
		cfg.RequestLogEvery = DefaultRequestLogEvery
	}
	if cfg.SlowRequest <= 0 {
		cfg.SlowRequest = DefaultSlowRequest
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerIP == 0 {
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if cfg.HTTPReadTimeout == 0 {
		cfg.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if cfg.CloseLinger == 0 {
		cfg.CloseLinger = DefaultCloseLinger
	}
	if cfg.CloseLingerBytes == 0 {
		cfg.CloseLingerBytes = DefaultCloseLingerBytes
	}
	if cfg.RateLimit.PerSecond > 0 && cfg.RateLimit.Burst == 0 {
		cfg.RateLimit.Burst = max(1, int(cfg.RateLimit.PerSecond+0.999999))
	}
	if cfg.Registerer == nil && cfg.Gatherer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Gatherer == nil {
		if g, ok := cfg.Registerer.(prometheus.Gatherer); ok {
			cfg.Gatherer = g
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
}

// Validate reports a Config that New would refuse. Zero values are valid
// (they take their defaults) except API and Log, which are required.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.API == nil {
		errs = append(errs, errors.New("API is required"))
	}
	if cfg.Log == nil {
		errs = append(errs, errors.New("Log is required"))
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"BodyLimit", int64(cfg.BodyLimit)},
		{"ReadLimit", cfg.ReadLimit},
		{"SendQueueFrames", int64(cfg.SendQueueFrames)},
		{"SendQueueBytes", int64(cfg.SendQueueBytes)},
		{"PingInterval", int64(cfg.PingInterval)},
		{"PongTimeout", int64(cfg.PongTimeout)},
		{"WriteTimeout", int64(cfg.WriteTimeout)},
		{"MaxInflight", int64(cfg.MaxInflight)},
		{"CommandTimeout", int64(cfg.CommandTimeout)},
		{"MaxSubscriptions", int64(cfg.MaxSubscriptions)},
		{"MaxConnections", int64(cfg.MaxConnections)},
		{"MaxConnectionsPerIP", int64(cfg.MaxConnectionsPerIP)},
		{"HTTPReadTimeout", int64(cfg.HTTPReadTimeout)},
		{"CloseLinger", int64(cfg.CloseLinger)},
		{"CloseLingerBytes", cfg.CloseLingerBytes},
		{"RateLimit.Burst", int64(cfg.RateLimit.Burst)},
		{"Auth.Leeway", int64(cfg.Auth.Leeway)},
	} {
		if c.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", c.name))
		}
	}
	if cfg.RateLimit.PerSecond < 0 {
		errs = append(errs, errors.New("RateLimit.PerSecond must not be negative"))
	}
	if cfg.PongTimeout > 0 && cfg.PingInterval > 0 && cfg.PongTimeout <= cfg.PingInterval {
		errs = append(errs, fmt.Errorf("PongTimeout (%s) must exceed PingInterval (%s)", cfg.PongTimeout, cfg.PingInterval))
	}
	if cfg.Registerer == nil && cfg.Gatherer != nil && cfg.Metrics == nil {
		errs = append(errs, errors.New("a Gatherer without a Registerer needs Metrics"))
	}
	if _, ok := cfg.Registerer.(prometheus.Gatherer); cfg.Registerer != nil && cfg.Gatherer == nil && !ok {
		errs = append(errs, errors.New("a Registerer that is not a Gatherer needs a Gatherer"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport: invalid config: %w", err)
	}
	return nil
}
