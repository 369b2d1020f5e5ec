package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/cluster"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/pebblestore"
	"github.com/b6368a97/engine/events/pgstore"
	"github.com/b6368a97/engine/mail"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/seed"
	"github.com/b6368a97/engine/web"
)

// Main is the running engine: store, actor runtime and HTTP/WebSocket
// server, wired from a Config. The end-to-end tests run it in-process.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Mailer, when set before Open, sends the background emails instead
	// of the outbox under DataDir (tests use it to hold a step).
	Mailer mail.Sender

	store    events.Store
	runtime  *actors.Runtime
	node     *cluster.Node // in cluster mode; it owns runtime
	api      actors.API    // runtime, or node in cluster mode
	server   *transport.Server
	ln       net.Listener
	served   chan struct{} // closed when Serve returns
	serveErr error         // Serve's result, set before served closes
}

// NewMain returns a Main with the defaults of every setting.
func NewMain() *Main {
	m := &Main{}
	if err := m.Config.ParseFlags("engine", nil, func(string) string { return "" }, io.Discard); err != nil {
		panic(err) // the defaults are constants; a failure is a bug here
	}
	return m
}

// Open opens the store, starts the runtime (resuming unfinished background
// steps), listens on Config.Addr and serves. It returns once the server
// accepts connections and /readyz says ready.
func (m *Main) Open(ctx context.Context) (err error) {
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	defer func() {
		if err != nil {
			m.abort()
		}
	}()
	if m.store, err = OpenStore(m.Config, m.Logger); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := transport.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	if err = m.newRuntime(metrics); err != nil {
		return err
	}
	if m.server, err = m.newServer(metrics, reg); err != nil {
		return err
	}

	if m.ln, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.served = make(chan struct{})
	go func() {
		defer close(m.served)
		m.serveErr = m.server.Serve(m.ln)
	}()

	// Resume background steps only once the server runs: /readyz stays
	// 503 meanwhile, and a resumed step may need the runtime anyway.
	if m.node != nil {
		if err := m.node.Start(ctx); err != nil {
			return fmt.Errorf("start cluster node: %w", err)
		}
	} else if err := m.runtime.Start(ctx); err != nil {
		return fmt.Errorf("start actors: %w", err)
	}
	m.server.SetReady(true)
	m.Logger.Info("engine listening", "addr", m.Addr(), "url", m.URL(), "store", m.storeName(), "data", m.Config.DataDir, "cluster", m.Config.ClusterBind)
	return nil
}

// newRuntime builds the actor runtime with every kind and the step
// executors; in cluster mode (Config.ClusterBind) the cluster node that
// runs it.
func (m *Main) newRuntime(metrics *transport.Metrics) error {
	mailer, err := m.mailer()
	if err != nil {
		return err
	}
	rc := actors.Config{
		Store:         m.store,
		Kinds:         kinds.All(kinds.Config{CookTime: m.Config.CookTime}),
		SnapshotEvery: m.Config.SnapshotEvery,
		IdleTimeout:   m.Config.IdleTimeout,
		MaxActors:     m.Config.MaxActors,
		Executors: map[string]actors.Executor{
			decider.StepWait:  actors.Wait,
			decider.StepEmail: mail.Executor(mailer),
		},
		StepAttempts: m.Config.StepAttempts,
		StepBackoff:  m.Config.StepBackoff,
		StepMaxTime:  m.Config.StepMaxTime,
		Logger:       m.Logger,
		Observer:     metrics,
	}
	if m.Config.ClusterBind != "" {
		if m.storeName() != "postgres" {
			return errors.New("cluster mode needs the PostgreSQL store (ENGINE_STORE=postgres://…): the nodes share it")
		}
		m.node, err = cluster.New(cluster.Config{
			Name:    m.Config.ClusterName,
			Bind:    m.Config.ClusterBind,
			Peers:   m.Config.ClusterPeers,
			Runtime: rc,
			Logger:  m.Logger,
		})
		if err != nil {
			return err
		}
		m.runtime, m.api = m.node.Runtime(), m.node
		return nil
	}
	if m.runtime, err = actors.New(rc); err != nil {
		return fmt.Errorf("actors: %w", err)
	}
	m.api = m.runtime
	return nil
}

// newServer builds the HTTP and WebSocket front end with the seed routes.
func (m *Main) newServer(metrics *transport.Metrics, reg *prometheus.Registry) (*transport.Server, error) {
	auth := transport.Auth{Leeway: m.Config.JWTLeeway}
	if m.Config.JWTSecret != "" {
		auth.JWTSecret = []byte(m.Config.JWTSecret)
	}
	if m.Config.JWKSFile != "" {
		ks, err := transport.ReadJWKSFile(m.Config.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("ENGINE_JWT_JWKS_FILE: %w", err)
		}
		for _, why := range ks.Skipped() {
			m.Logger.Warn("jwks: key skipped", "file", m.Config.JWKSFile, "why", why)
		}
		m.Logger.Info("jwks: keys loaded", "file", m.Config.JWKSFile, "keys", ks.Len())
		auth.JWKS = ks
	}
	srv, err := transport.New(transport.Config{
		API:             m.api,
		Log:             m.store,
		Extensions:      []transport.Extension{seed.Routes(seed.Config{Log: m.store})},
		Assets:          web.FS,
		Ready:           m.ready,
		Logger:          m.Logger,
		BodyLimit:       m.Config.BodyLimit,
		ReadLimit:       int64(m.Config.ReadLimit),
		SendQueueFrames: m.Config.SendQueue,
		AllowedOrigins:  m.Config.AllowedOrigins,
		CommandTimeout:  m.Config.CommandTimeout,
		RequestLogEvery: m.Config.RequestLogEvery,
		Auth:            auth,
		RateLimit:       transport.RateLimit{PerSecond: m.Config.RateLimit, Burst: m.Config.RateBurst},
		Metrics:         metrics,
		Registerer:      reg,
		Gatherer:        reg,

		MaxSubscriptions:    m.Config.MaxSubscriptions,
		MaxConnections:      m.Config.MaxConnections,
		MaxConnectionsPerIP: m.Config.MaxConnectionsPerIP,
		HTTPReadTimeout:     m.Config.HTTPReadTimeout,
		CloseLinger:         m.Config.CloseLinger,
		CloseLingerBytes:    int64(m.Config.CloseLingerBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return srv, nil
}

// mailer is Main.Mailer when set, else the SMTP mailer of Config.SMTPURL,
// else the outbox under DataDir. An invalid SMTP URL fails start-up.
func (m *Main) mailer() (mail.Sender, error) {
	switch {
	case m.Mailer != nil:
		return m.Mailer, nil
	case m.Config.SMTPURL != "":
		cfg, err := mail.ParseURL(m.Config.SMTPURL)
		if err != nil {
			// ParseURL's errors never repeat the password.
			return nil, fmt.Errorf("ENGINE_SMTP_URL: %w", err)
		}
		cfg.Logger = m.Logger
		m.Logger.Info("mailer: smtp", "url", cfg.String())
		return mail.NewSMTP(cfg), nil
	default:
		dir := filepath.Join(m.Config.DataDir, "outbox")
		m.Logger.Info("mailer: outbox", "dir", dir)
		return mail.NewOutbox(dir), nil
	}
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// URL is where a browser finds the pages: http:// and the listening
// address, with 127.0.0.1 for an address that listens on every interface.
func (m *Main) URL() string { return browserURL(m.Addr()) }

func browserURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// Runtime exposes the actor runtime to in-process tests.
func (m *Main) Runtime() *actors.Runtime { return m.runtime }

// Store exposes the event store to in-process tests.
func (m *Main) Store() events.Store { return m.store }

// Done is closed when the server stops serving, on its own or by Close;
// Err then tells why.
func (m *Main) Done() <-chan struct{} { return m.served }

// Err is the server's exit error once Done is closed.
func (m *Main) Err() error {
	select {
	case <-m.served:
		return m.serveErr
	default:
		return nil
	}
}

// Close shuts down in order: the server stops accepting and answers what
// is in flight, every WebSocket gets 1001, the actors stop, the store
// closes. ctx bounds the wait.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown server: %w", err))
		}
		select {
		case <-m.served:
			if m.serveErr != nil {
				errs = append(errs, fmt.Errorf("serve: %w", m.serveErr))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("serve: %w", ctx.Err()))
		}
	}
	if err := m.stopActors(ctx); err != nil {
		errs = append(errs, err)
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// abort releases what Open acquired before it failed.
func (m *Main) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.server != nil && m.ln != nil {
		_ = m.Close(ctx)
		return
	}
	if m.ln != nil {
		_ = m.ln.Close()
	}
	_ = m.stopActors(ctx)
	if m.store != nil {
		_ = m.store.Close()
	}
}

// Excluded is closed when the cluster has excluded this node (cluster
// mode; never otherwise): the process must exit and be started again.
func (m *Main) Excluded() <-chan struct{} {
	if m.node != nil {
		return m.node.Excluded()
	}
	return nil
}

// ready is what /readyz asks beyond start-up: in cluster mode, the node.
func (m *Main) ready() error {
	if m.node != nil {
		return m.node.Ready()
	}
	return nil
}

// stopActors stops the runtime, or in cluster mode leaves the cluster
// (which stops it).
func (m *Main) stopActors(ctx context.Context) error {
	switch {
	case m.node != nil:
		if err := m.node.Stop(ctx); err != nil {
			return fmt.Errorf("leave cluster: %w", err)
		}
	case m.runtime != nil:
		if err := m.runtime.Stop(ctx); err != nil {
			return fmt.Errorf("stop actors: %w", err)
		}
	}
	return nil
}

func (m *Main) storeName() string {
	if m.Config.Store == "" {
		return "embedded"
	}
	return "postgres"
}

// OpenStore opens the store a Config names: the embedded Pebble store under
// DataDir/events, created when there is none (a server starting on a new
// data directory), or PostgreSQL for a postgres:// (or postgresql://) URL,
// whose store is created in its schema when there is none.
func OpenStore(cfg Config, logger *slog.Logger) (events.Store, error) {
	return openStore(cfg, logger, false)
}

// OpenExistingStore is OpenStore for a store that must already be there
// (export, import): when DataDir holds no embedded store it fails with an
// error matching pebblestore.ErrNoStore, and when the PostgreSQL schema
// holds none with one matching pgstore.ErrNoStore; it creates nothing.
func OpenExistingStore(cfg Config, logger *slog.Logger) (events.Store, error) {
	return openStore(cfg, logger, true)
}

func openStore(cfg Config, logger *slog.Logger, mustExist bool) (events.Store, error) {
	switch {
	case cfg.Store == "":
		dir := filepath.Join(cfg.DataDir, "events")
		if !mustExist {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("data directory: %w", err)
			}
		}
		s, err := pebblestore.Open(dir, pebblestore.Config{Logger: logger, MustExist: mustExist})
		if errors.Is(err, pebblestore.ErrNoStore) {
			return nil, fmt.Errorf("%w in %s", pebblestore.ErrNoStore, cfg.DataDir)
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open store in %s: in use by another engine process (stop it first): %w", dir, err)
		}
		if err != nil {
			return nil, fmt.Errorf("open store in %s: %w", dir, err)
		}
		return s, nil
	case strings.HasPrefix(cfg.Store, "postgres://"), strings.HasPrefix(cfg.Store, "postgresql://"):
		return openPostgres(cfg.Store, logger, mustExist)
	default:
		return nil, fmt.Errorf("ENGINE_STORE %q: want empty or postgres://…", cfg.Store)
	}
}

// openPostgres opens the PostgreSQL store a postgres:// URL names. The
// URL's own query parameter schema (default pgstore.DefaultSchema) picks
// the schema holding the store; the rest of the URL goes to pgx as it is.
// With mustExist a schema without a store is refused with an error
// matching pgstore.ErrNoStore, and nothing is created.
func openPostgres(rawURL string, logger *slog.Logger, mustExist bool) (events.Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password and all.
		return nil, errors.New("ENGINE_STORE: not a valid postgres:// URL")
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgstore.Open(ctx, pgstore.Config{URL: u.String(), Schema: schema, Logger: logger, MustExist: mustExist})
	if errors.Is(err, pgstore.ErrNoStore) {
		return nil, fmt.Errorf("%w in PostgreSQL schema %s (engine import -create creates one)", pgstore.ErrNoStore, cmp.Or(schema, pgstore.DefaultSchema))
	}
	if err != nil {
		return nil, fmt.Errorf("open the PostgreSQL store: %w", err)
	}
	return s, nil
}

// newLogger builds the process logger from the configured format.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
