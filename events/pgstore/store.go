package pgstore

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/b6368a97/engine/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures Open.
type Config struct {
	// URL is the connection string, postgres://user@host:port/db?….
	URL string
	// Schema holds the store's tables; default "engine". It must be 1-63
	// of [a-z0-9_], not starting with a digit.
	Schema string
	// Logger receives background errors (the listener connection); nil
	// means slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the connection pool; 0 keeps pgxpool's default.
	// Follow's listener uses one more connection outside the pool.
	MaxConns int32
	// PollInterval is how often the head is polled in case a notification
	// was lost; default 250ms.
	PollInterval time.Duration
	// IdleInTransaction bounds how long a session of this store may sit
	// idle inside a transaction before PostgreSQL ends it (its setting
	// idle_in_transaction_session_timeout): a process frozen mid-append
	// (SIGSTOP, a VM pause) would otherwise hold the log head's lock and
	// stall every other node's appends until it woke. Its append then
	// fails, unacknowledged. Default 2 s; it must exceed the time between
	// an append's two round trips, which is microseconds of Go code.
	IdleInTransaction time.Duration
	// MustExist makes Open refuse a schema that holds no store (no schema,
	// no store tables, or no epoch) with an error matching ErrNoStore,
	// creating nothing: no schema and no tables. Missing migrations of an
	// existing store are still applied. The default, false, creates the
	// store when needed.
	MustExist bool
}

// ErrNoStore is Open's error, with Config.MustExist, for a schema that
// holds no store.
var ErrNoStore = errors.New("no store")

// DefaultIdleInTransaction is Config.IdleInTransaction's default.
const DefaultIdleInTransaction = 2 * time.Second

// DefaultSchema is the schema used when Config.Schema is empty.
const DefaultSchema = "engine"

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Store is an events.Store on PostgreSQL. Create it with Open.
type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig
	schema  string
	channel string
	epoch   string
	log     *slog.Logger
	poll    time.Duration
	exist   bool

	wm events.Watermark

	// mu is held shared by every call for its duration and exclusively by
	// Close, which so waits for calls in flight.
	mu     sync.RWMutex
	closed atomic.Bool

	cancel context.CancelFunc
	bg     sync.WaitGroup

	// The group commit (commit.go): Append queues requests under qmu and
	// wakes the committer goroutine, which Close stops with stop and
	// waits for on commitDone.
	qmu        sync.Mutex
	queue      []*appendReq
	wake       chan struct{}
	stop       chan struct{}
	commitDone chan struct{}
}

var _ events.Store = (*Store)(nil)

// Open connects, applies the missing migrations and starts the listener.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	schema := cfg.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("pgstore: schema %q: want 1-63 of [a-z0-9_], not starting with a digit", schema)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse URL: %w", err)
	}
	pcfg.ConnConfig.RuntimeParams["search_path"] = schema
	idle := cfg.IdleInTransaction
	if idle <= 0 {
		idle = DefaultIdleInTransaction
	}
	pcfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(idle.Milliseconds(), 10)
	// The statements are prepared once per connection. A generic plan made
	// while the tables were small (a new store) is a sequential scan, and
	// it would stay while the log grows, each append slower than the last:
	// plan each execution for its own arguments and the tables' real size
	// instead (a simple index lookup plans in microseconds).
	pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{
		pool:    pool,
		connCfg: pcfg.ConnConfig.Copy(),
		schema:  schema,
		channel: "engine_events_" + schema,
		log:     logger,
		poll:    poll,
		exist:   cfg.MustExist,
	}
	if len(s.channel) > 63 {
		// Identifiers stop at 63 bytes; a hash keeps long schema names
		// from sharing a channel (a foreign position would make followers
		// spin on a watermark ahead of their log).
		sum := sha256.Sum256([]byte(schema))
		s.channel = "engine_events_" + hex.EncodeToString(sum[:16])
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.loadEpoch(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	var head int64
	if err := pool.QueryRow(ctx, `SELECT last FROM log_head`).Scan(&head); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: read head: %w", err)
	}
	s.wm.Advance(uint64(head))
	s.wake = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.commitDone = make(chan struct{})
	go s.commitLoop()
	bgctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.bg.Add(2)
	go s.listen(bgctx)
	go s.pollHead(bgctx)
	return s, nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", n)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// migrate applies the missing migrations in one transaction under an
// advisory lock keyed by the schema name.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	ident := pgx.Identifier{s.schema}.Sanitize()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('engine-pgstore-migrate:' || $1))`, s.schema); err != nil {
			return err
		}
		if s.exist {
			// A store has its tables and its epoch (written right after
			// the first migration by the Open that created it).
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL`,
				ident+".schema_migrations", ident+".meta").Scan(&ok); err != nil {
				return err
			}
			if ok {
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+ident+`.meta WHERE key = 'epoch')`).Scan(&ok); err != nil {
					return err
				}
			}
			if !ok {
				return ErrNoStore
			}
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+ident); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range ms {
			if slices.Contains(applied, int32(m.version)) {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrNoStore) {
		return fmt.Errorf("pgstore: schema %s: %w", s.schema, err)
	}
	if err != nil {
		return fmt.Errorf("pgstore: migrate schema %s: %w", s.schema, err)
	}
	return nil
}

func (s *Store) loadEpoch(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING`, events.NewEpoch()); err != nil {
		return fmt.Errorf("pgstore: write epoch: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'epoch'`).Scan(&s.epoch); err != nil {
		return fmt.Errorf("pgstore: read epoch: %w", err)
	}
	return nil
}

// listen keeps a LISTEN connection and advances the watermark to the
// position each notification carries; it reconnects after errors.
func (s *Store) listen(ctx context.Context) {
	defer s.bg.Done()
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("pgstore: listener connection lost; polling until it is back", "schema", s.schema, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	// Catch up with what was committed before LISTEN took effect.
	s.refresh(ctx)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if p, err := strconv.ParseUint(n.Payload, 10, 64); err == nil {
			s.wm.Advance(p)
		}
	}
}

// pollHead advances the watermark from the head every poll interval, in
// case a notification was lost.
func (s *Store) pollHead(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx)
		}
	}
}

func (s *Store) refresh(ctx context.Context) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT last FROM log_head`).Scan(&head); err == nil {
		s.wm.Advance(uint64(head))
	}
}

// Epoch implements events.Store.
func (s *Store) Epoch() string { return s.epoch }

// begin is the prologue of every call: a done context or a closed store
// fail it; otherwise it holds mu shared until the returned func runs.
func (s *Store) begin(ctx context.Context, op string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%s: %w", op, events.ErrClosed)
	}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return nil, fmt.Errorf("%s: %w", op, events.ErrClosed)
	}
	return s.mu.RUnlock, nil
}

func (s *Store) beginStream(ctx context.Context, op, stream string) (func(), error) {
	op = op + " " + events.Clip(stream, 80)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%s: %w", op, events.ErrClosed)
	}
	if _, err := events.ParseStreamID(stream); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.begin(ctx, op)
}

const eventCols = `stream, version, position, id, type, time_ms, data, correlation, causation`

func scanEvents(rows pgx.Rows) ([]events.Event, error) {
	out := []events.Event{}
	for rows.Next() {
		var e events.Event
		var version, position, ms int64
		if err := rows.Scan(&e.Stream, &version, &position, &e.ID, &e.Type, &ms, &e.Data, &e.Meta.Correlation, &e.Meta.Causation); err != nil {
			rows.Close()
			return nil, err
		}
		e.Version, e.Position = uint64(version), uint64(position)
		e.Time = time.UnixMilli(ms).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

func clampAfter(after uint64) int64 {
	if after > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(after)
}

func limitArg(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	l := int64(limit)
	return &l
}

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, stream string, expected events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	op := "append " + events.Clip(stream, 80)
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return events.AppendResult{}, fmt.Errorf("%s: %w", op, events.ErrClosed)
	}
	if err := events.ValidateAppend(stream, expected, evs); err != nil {
		return events.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	done, err := s.begin(ctx, op)
	if err != nil {
		return events.AppendResult{}, err
	}
	defer done()

	// The committer may still read the request after a cancelled call
	// returned: it gets its own copy of the events and their data.
	r := &appendReq{ctx: ctx, stream: stream, expected: expected, evs: slices.Clone(evs), reply: make(chan appendReply, 1)}
	for i := range r.evs {
		r.evs[i].Data = slices.Clone(events.NormalizeData(r.evs[i].Data))
		r.size += r.evs[i].Size()
	}
	s.enqueue(r)
	select {
	case rep := <-r.reply:
		return rep.res, rep.err
	case <-ctx.Done():
		// The append may or may not take effect, like a lost reply.
		return events.AppendResult{}, fmt.Errorf("%s: %w", op, ctx.Err())
	}
}
