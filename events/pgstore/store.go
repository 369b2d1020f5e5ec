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
	"github.com/jackc/pgx/v5/pgconn"
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
}

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

	wm events.Watermark

	// mu is held shared by every call for its duration and exclusively by
	// Close, which so waits for calls in flight.
	mu     sync.RWMutex
	closed atomic.Bool

	cancel context.CancelFunc
	bg     sync.WaitGroup
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

	var res events.AppendResult
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = s.appendTx(ctx, tx, stream, expected, evs)
		return err
	})
	if errors.Is(err, errDuplicate) {
		return res, nil
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			switch pgErr.ConstraintName {
			case "events_stream_version_key":
				var cur int64
				if rerr := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream = $1`, stream).Scan(&cur); rerr != nil {
					return events.AppendResult{}, fmt.Errorf("%s: %w", op, rerr)
				}
				return events.AppendResult{}, &events.WrongExpectedVersionError{Stream: stream, Expected: expected, Current: uint64(cur)}
			case "events_id_key":
				return events.AppendResult{}, fmt.Errorf("%s: %w: an event id is stored already", op, events.ErrDuplicateID)
			}
		}
		var wev *events.WrongExpectedVersionError
		if errors.As(err, &wev) || errors.Is(err, events.ErrDuplicateID) {
			return events.AppendResult{}, err
		}
		return events.AppendResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if !res.Duplicate {
		s.wm.Advance(res.Position())
	}
	return res, nil
}

func (s *Store) appendTx(ctx context.Context, tx pgx.Tx, stream string, expected events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	n := int64(len(evs))
	// The row lock on log_head serialises appenders until commit; every
	// later statement of this transaction sees what earlier ones committed.
	// The three statements go in one round trip (a pipeline) and run in
	// order, each on a fresh snapshot (read committed).
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE log_head SET last = last + $1 RETURNING last`, n)
	b.Queue(`SELECT `+eventCols+` FROM events WHERE id = ANY($1) ORDER BY position`, ids)
	b.Queue(`SELECT coalesce(max(version), 0) FROM events WHERE stream = $1`, stream)
	var (
		last, cur int64
		stored    []events.Event
	)
	err := func() error {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if err := br.QueryRow().Scan(&last); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if stored, err = scanEvents(rows); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&cur); err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return events.AppendResult{}, err
	}
	if len(stored) > 0 {
		for _, e := range stored {
			if e.Stream != stream {
				return events.AppendResult{}, fmt.Errorf("append %s: %w: event %s is stored in %s", stream, events.ErrDuplicateID, e.ID, e.Stream)
			}
		}
		if len(stored) != len(evs) {
			return events.AppendResult{}, fmt.Errorf("append %s: %w: %d of %d event ids are stored already", stream, events.ErrDuplicateID, len(stored), len(evs))
		}
		byID := make(map[string]events.Event, len(stored))
		for _, e := range stored {
			byID[e.ID] = e
		}
		out := make([]events.Event, len(evs))
		for i, e := range evs {
			out[i] = byID[e.ID]
		}
		return events.AppendResult{Events: out, Duplicate: true}, errDuplicate
	}

	if !expected.Matches(uint64(cur)) {
		return events.AppendResult{}, &events.WrongExpectedVersionError{Stream: stream, Expected: expected, Current: uint64(cur)}
	}

	now := time.Now()
	clock := func() time.Time { return now }
	out := make([]events.Event, len(evs))
	positions := make([]int64, len(evs))
	versions := make([]int64, len(evs))
	types := make([]string, len(evs))
	times := make([]int64, len(evs))
	datas := make([][]byte, len(evs))
	corrs := make([]string, len(evs))
	causes := make([]string, len(evs))
	first := last - n
	for i, e := range evs {
		e.Stream = strings.Clone(stream)
		e.Version = uint64(cur) + uint64(i) + 1
		e.Position = uint64(first) + uint64(i) + 1
		e.Time = events.NormalizeTime(e.Time, clock)
		e.Data = slices.Clone(events.NormalizeData(e.Data))
		out[i] = e
		positions[i], versions[i], types[i] = int64(e.Position), int64(e.Version), e.Type
		times[i], datas[i] = e.Time.UnixMilli(), e.Data
		corrs[i], causes[i] = e.Meta.Correlation, e.Meta.Causation
	}
	ins := &pgx.Batch{}
	ins.Queue(`INSERT INTO events (position, stream, version, id, type, time_ms, data, correlation, causation)
		SELECT p, $2, v, i, t, ms, d, c, k
		FROM unnest($1::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[], $9::text[]) AS u(p, v, i, t, ms, d, c, k)`,
		positions, stream, versions, ids, types, times, datas, corrs, causes)
	ins.Queue(`SELECT pg_notify($1, $2)`, s.channel, strconv.FormatInt(last, 10))
	if err := tx.SendBatch(ctx, ins).Close(); err != nil {
		return events.AppendResult{}, err
	}
	return events.AppendResult{Events: out}, nil
}

// errDuplicate rolls back the transaction of an idempotent retry; Append
// turns it back into the result.
var errDuplicate = errors.New("duplicate")
