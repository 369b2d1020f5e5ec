package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/b6368a97/engine/events"
)

// Config tunes a Store. The zero value is ready to use: every zero field
// means the default written next to it.
type Config struct {
	// Logger receives Pebble's messages (Info as Debug) and the store's own
	// errors. Nil means slog.Default().
	Logger *slog.Logger

	// Now is the clock that stamps events appended without a Time. Nil
	// means time.Now.
	Now func() time.Time

	// MaxInFlightEvents bounds how many positions may be assigned to
	// appends whose batches are not yet durable: the memory appends in
	// flight hold, and how far back Open looks for a gap in the log
	// (repairTail). Past the bound, appends wait; an append larger than
	// it waits until nothing else is in flight. Zero means 16,384; at
	// most 65,536.
	MaxInFlightEvents int

	// MaxCachedStreams bounds the writer's cache of stream heads (the
	// current version of each stream it has written to). Past it, half the
	// entries are dropped; a dropped head is reloaded with one seek.
	// Zero means 100,000.
	MaxCachedStreams int

	// MemTableSize is the size of one Pebble memtable. Zero means 64 MiB.
	MemTableSize int

	// CacheSize is the size of Pebble's block cache. Zero means 64 MiB.
	CacheSize int64

	// IDFilterSize is how many event ids the in-memory id filter may cover
	// (it takes 2 bytes per id, in parts that double from 1 million ids).
	// The filter lets an append skip looking up its new ids in Pebble;
	// past this many ids it is dropped and appends look their ids up
	// again. Zero means 16 million (at most 32 MiB); negative disables the
	// filter.
	IDFilterSize int64

	// MustExist makes Open refuse a dir that holds no store (it does not
	// exist, or holds no Pebble database) with an error matching
	// ErrNoStore, creating nothing there: no directory and no files. The
	// default, false, creates the store when needed.
	MustExist bool
}

// ErrNoStore is Open's error, with Config.MustExist, for a directory that
// holds no store.
var ErrNoStore = errors.New("no store")

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxInFlightEvents == 0 {
		c.MaxInFlightEvents = 16 << 10
	}
	if c.MaxCachedStreams == 0 {
		c.MaxCachedStreams = 100_000
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = 64 << 20
	}
	if c.CacheSize == 0 {
		c.CacheSize = 64 << 20
	}
	if c.IDFilterSize == 0 {
		c.IDFilterSize = 16 << 20
	}
	return c
}

// Validate reports a negative or out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.MaxInFlightEvents < 0 || c.MaxInFlightEvents > repairWindow:
		return fmt.Errorf("pebblestore: MaxInFlightEvents %d outside 0..%d", c.MaxInFlightEvents, repairWindow)
	case c.MaxCachedStreams < 0:
		return fmt.Errorf("pebblestore: MaxCachedStreams %d < 0", c.MaxCachedStreams)
	case c.MemTableSize < 0 || c.MemTableSize > 1<<30:
		return fmt.Errorf("pebblestore: MemTableSize %d outside 0..1GiB", c.MemTableSize)
	case c.CacheSize < 0:
		return fmt.Errorf("pebblestore: CacheSize %d < 0", c.CacheSize)
	}
	return nil
}

// Store is the embedded event store. See the package documentation.
type Store struct {
	cfg   Config
	db    *pebble.DB
	log   *slog.Logger
	epoch string // read or created by open; never changed

	// wm is the last durable position below which the log has no gap:
	// the writer's tracker advances it, and every read is capped at it,
	// because Pebble makes a batch visible before its sync completes.
	wm events.Watermark

	// mu guards closed. Every call holds it for reading for its whole
	// duration, so Close, which takes it for writing, waits for in-flight
	// calls (appends included) and then sees none start.
	mu     sync.RWMutex
	closed bool

	w *writer

	// ids is the in-memory id filter (nil when disabled); scanStop and
	// scanDone stop and await the goroutine that fills it at Open.
	ids      *idFilter
	scanStop context.CancelFunc
	scanDone chan struct{}
}

// Open opens the store in dir, creating it when needed unless
// cfg.MustExist.
//
// Open does not scan the log: it finds the last global position with one
// seek, and the writer loads each stream's head lazily, with one seek, the
// first time the stream is appended to.
func Open(dir string, cfg Config) (*Store, error) {
	s, err := open(dir, cfg)
	if err != nil {
		return nil, err
	}
	if s.ids != nil {
		ctx, stop := context.WithCancel(context.Background())
		s.scanStop = stop
		go func() {
			defer close(s.scanDone)
			if err := s.ids.scan(ctx, s.db); err != nil && ctx.Err() == nil {
				s.log.Error("pebblestore: id filter scan failed; appends look ids up in Pebble", "err", err)
			}
		}()
	}
	return s, nil
}

// open opens the store without starting the id-filter scan.
func open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.MustExist {
		if err := mustExist(dir); err != nil {
			return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
		}
	}
	db, err := pebble.Open(dir, pebbleOptions(cfg))
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		// Removed between mustExist and Open.
		err = ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	_, epoch, err := checkFormat(db)
	if err == nil {
		err = repairTail(db, cfg.Logger)
	}
	var last uint64
	if err == nil {
		last, err = lastPosition(db)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pebblestore: open %s: %w", dir, err), db.Close())
	}
	s := &Store{
		cfg:      cfg,
		db:       db,
		log:      cfg.Logger,
		epoch:    epoch,
		scanDone: make(chan struct{}),
	}
	if cfg.IDFilterSize > 0 {
		s.ids = newIDFilter(cfg.IDFilterSize)
	}
	s.wm.Advance(last)
	s.w = newWriter(s, last)
	return s, nil
}

// mustExist reports ErrNoStore unless dir holds a Pebble database. It asks
// Pebble (Peek only lists and reads), because pebble.Open with
// ErrorIfNotExists still creates the directory and a LOCK file before it
// finds no database.
func mustExist(dir string) error {
	desc, err := pebble.Peek(dir, vfs.Default)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrNoStore
	case err != nil:
		return err
	case !desc.Exists:
		return ErrNoStore
	}
	return nil
}

// checkFormat writes the format marker and a new epoch into a new store,
// or checks the marker and reads the epoch of an existing one (creating
// the epoch of a store written before epochs), and returns the last global
// position and the epoch. Whatever it writes is synced before it returns.
func checkFormat(db *pebble.DB) (last uint64, epoch string, err error) {
	if last, err = lastPosition(db); err != nil {
		return 0, "", err
	}
	v, closer, err := db.Get(metaFormatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if last != 0 {
			return 0, "", fmt.Errorf("%w: events without a format marker", errCorrupt)
		}
		epoch = events.NewEpoch()
		b := db.NewBatch()
		defer b.Close()
		if err := b.Set(metaFormatKey, binary.AppendUvarint(nil, formatVersion), nil); err != nil {
			return 0, "", err
		}
		if err := b.Set(metaEpochKey, []byte(epoch), nil); err != nil {
			return 0, "", err
		}
		return 0, epoch, b.Commit(pebble.Sync)
	case err != nil:
		return 0, "", err
	}
	f, k := binary.Uvarint(v)
	closer.Close()
	switch {
	case k <= 0:
		return 0, "", fmt.Errorf("pebblestore: store format %x, this build reads %d", v, formatVersion)
	case f == 1 || f == formatUpgrading1:
		if err := upgradeFormat1(db, f); err != nil {
			return 0, "", fmt.Errorf("upgrade from format 1: %w", err)
		}
	case f != formatVersion:
		return 0, "", fmt.Errorf("pebblestore: store format %x, this build reads %d", v, formatVersion)
	}
	if epoch, err = readEpoch(db); err != nil {
		return 0, "", err
	}
	return last, epoch, nil
}

// readEpoch reads the stored epoch, creating (and syncing) one when the
// store predates epochs.
func readEpoch(db *pebble.DB) (string, error) {
	v, closer, err := db.Get(metaEpochKey)
	if errors.Is(err, pebble.ErrNotFound) {
		epoch := events.NewEpoch()
		return epoch, db.Set(metaEpochKey, []byte(epoch), pebble.Sync)
	}
	if err != nil {
		return "", err
	}
	defer closer.Close()
	if len(v) == 0 || len(v) > events.MaxEpochLen {
		return "", fmt.Errorf("%w: epoch of %d bytes", errCorrupt, len(v))
	}
	for _, c := range v {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: epoch %q", errCorrupt, v)
		}
	}
	return string(v), nil // string copies v, which is only valid until closer.Close
}

// lastPosition finds the last key of the global log with one seek.
func lastPosition(db *pebble.DB) (uint64, error) {
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixPos},
		UpperBound: []byte{prefixPos + 1},
	})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, fmt.Errorf("%w: log key %x", errCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// enter starts a call: it fails once the store is closed or ctx is done.
// On success the caller must call s.mu.RUnlock.
func (s *Store) enter(ctx context.Context) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return events.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.mu.RUnlock()
		return err
	}
	return nil
}

// Epoch implements events.Store: the epoch stored under metaEpochKey,
// read (or created) once by Open.
func (s *Store) Epoch() string { return s.epoch }

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, stream string, expected events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	if err := s.enter(ctx); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	if err := events.ValidateAppend(stream, expected, evs); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	r := newAppendRequest(ctx, stream, expected, evs, s.cfg.Now)
	if err := s.precheckIDs(r); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	if err := s.w.appendEvents(r); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	return r.result()
}

// precheckIDs looks the request's ids up on the caller's goroutine,
// outside the writer's mutex: for a new id (nearly every id) assign then
// only checks the ids assigned since the pre-check (see
// writer.addAppend). The id filter rules most new ids out without Pebble.
// Reading the watermark first makes every append up to it visible to the
// lookups, in Pebble and in the filter.
func (s *Store) precheckIDs(r *request) error {
	r.seen = s.w.t.durable.Load()
	var kb []byte
	for i := range r.evs {
		if s.ids != nil {
			// The id goes into the filter now, while its block is in
			// the cache, rather than when it is assigned: the filter
			// must hold every stored id by the time the watermark passes
			// it, and an id added for an append that then fails only
			// costs a later lookup.
			if s.ids.testAndAdd(r.hashes[i]) {
				continue
			}
		}
		kb = idKey(kb[:0], r.evs[i].ID)
		_, closer, err := s.db.Get(kb)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("look up id %s: %w", r.evs[i].ID, err)
		}
		closer.Close()
		r.found = true
		return nil
	}
	return nil
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]events.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	if _, err := events.ParseStreamID(stream); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	out, err := s.readStream(ctx, stream, after, limit, s.wm.Load())
	if err != nil {
		return nil, fmt.Errorf("read %s after %d: %w", stream, after, err)
	}
	return out, nil
}

// ctxCheckEvery is how many events a read decodes between checks of its
// context: often enough to stop a big read promptly, rarely enough to cost
// nothing.
const ctxCheckEvery = 1024

func (s *Store) readStream(ctx context.Context, stream string, after uint64, limit int, wm uint64) ([]events.Event, error) {
	if after == math.MaxUint64 {
		return []events.Event{}, nil
	}
	// Size the result for a page (what IterStream asks for) so that it is
	// not regrown event by event; an unlimited read starts smaller.
	size := 64
	if limit > 0 {
		size = min(limit, 4096)
	}
	out := make([]events.Event, 0, size)
	var lower, upper [128]byte
	idx, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: eventKey(lower[:0], stream, after+1),
		UpperBound: streamUpper(upper[:0], stream),
	})
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	// log resolves the positions the index holds. They only grow, so it
	// only moves forward; it is opened at the first one.
	var log *pebble.Iterator
	defer func() {
		if log != nil {
			log.Close()
		}
	}()
	var key [9]byte
	d := decoder{stream: stream}
	var prev uint64 // position log is at (0: not positioned)
	for ok := idx.First(); ok; ok = idx.Next() {
		v, err := idx.ValueAndErr()
		if err != nil {
			return nil, err
		}
		pos, err := parseStreamRef(v)
		if err != nil {
			return nil, err
		}
		// A stream's positions grow with its versions, so the first event
		// past the watermark ends the durable part of the stream.
		if pos > wm {
			break
		}
		if log == nil {
			var lb, ub [9]byte
			log, err = s.db.NewIter(&pebble.IterOptions{
				LowerBound: posKey(lb[:0], pos),
				UpperBound: posKey(ub[:0], wm+1),
			})
			if err != nil {
				return nil, err
			}
		}
		var found bool
		switch {
		case prev != 0 && pos == prev+1:
			found = log.Next()
		case prev == 0 || pos > prev:
			found = log.SeekGE(posKey(key[:0], pos))
		default:
			return nil, fmt.Errorf("%w: stream %s: position %d after %d", errCorrupt, stream, pos, prev)
		}
		if !found || !bytes.Equal(log.Key(), posKey(key[:0], pos)) {
			if err := log.Error(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: stream %s refers to position %d, which the log lacks", errCorrupt, stream, pos)
		}
		prev = pos
		lv, err := log.ValueAndErr()
		if err != nil {
			return nil, err
		}
		e, err := d.decode(lv)
		if err != nil {
			return nil, err
		}
		if k := idx.Key(); e.Position != pos || e.Stream != stream || e.Version != binary.BigEndian.Uint64(k[len(k)-8:]) {
			return nil, fmt.Errorf("%w: position %d holds %s/%d, not the event of stream key %x", errCorrupt, pos, e.Stream, e.Version, k)
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
		if len(out)%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := idx.Error(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer s.mu.RUnlock()
	out, err := s.readAll(ctx, after, limit, s.wm.Load())
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	return out, nil
}

func (s *Store) readAll(ctx context.Context, after uint64, limit int, wm uint64) ([]events.Event, error) {
	if after >= wm {
		return []events.Event{}, nil
	}
	end := wm
	if limit > 0 && uint64(limit) < wm-after {
		end = after + uint64(limit)
	}
	var lower, upper [9]byte
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: posKey(lower[:0], after+1),
		UpperBound: posKey(upper[:0], end+1),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([]events.Event, 0, min(end-after, 4096))
	var d decoder
	next := after + 1
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		e, err := d.decode(v)
		if err != nil {
			return nil, err
		}
		if e.Position != next {
			return nil, fmt.Errorf("%w: position %d where %d was due", errCorrupt, e.Position, next)
		}
		next++
		out = append(out, e)
		if len(out)%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if next != end+1 {
		return nil, fmt.Errorf("%w: log ends at %d, durable head is %d", errCorrupt, next-1, end)
	}
	return out, nil
}

// StreamVersion implements events.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, fmt.Errorf("stream version %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	if _, err := events.ParseStreamID(stream); err != nil {
		return 0, fmt.Errorf("stream version %s: %w", stream, err)
	}
	v, err := durableVersion(s.db, stream, s.wm.Load())
	if err != nil {
		return 0, fmt.Errorf("stream version %s: %w", stream, err)
	}
	return v, nil
}

// durableVersion is the version of the stream's last event at or below
// the watermark wm; with wm = MaxUint64 it is the last version visible in
// Pebble (what the writer needs).
func durableVersion(r pebble.Reader, stream string, wm uint64) (uint64, error) {
	var lower, upper [128]byte
	it, err := r.NewIter(&pebble.IterOptions{
		LowerBound: streamPrefix(lower[:0], stream),
		UpperBound: streamUpper(upper[:0], stream),
	})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		if wm != math.MaxUint64 {
			v, err := it.ValueAndErr()
			if err != nil {
				return 0, err
			}
			pos, err := parseStreamRef(v)
			if err != nil {
				return 0, err
			}
			if pos > wm {
				continue // committed but not yet durable
			}
		}
		k := it.Key()
		return binary.BigEndian.Uint64(k[len(k)-8:]), nil
	}
	return 0, it.Error()
}

// Head implements events.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	defer s.mu.RUnlock()
	return s.wm.Load(), nil
}

// Follow implements events.Store: catch-up reads, then live events as the
// watermark moves. Close closes the watermark, which ends it with
// ErrClosed.
func (s *Store) Follow(ctx context.Context, after uint64, fn func(events.Event) error) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	s.mu.RUnlock() // each ReadAll of the loop enters on its own
	return events.Follow(ctx, s, &s.wm, after, fn)
}

// SaveSnapshot implements events.Store. It goes through the writer so that
// it is synced and never durable before the events it covers.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, err)
	}
	defer s.mu.RUnlock()
	if _, err := events.ParseStreamID(snap.Stream); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, err)
	}
	r := &request{
		kind:   kindSnapshot,
		ctx:    ctx,
		stream: snap.Stream,
		snap:   snap.Version,
		value:  encodeSnapshot(snap.Version, snap.Data),
	}
	if err := s.w.meta(r); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, err)
	}
	return nil
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, error) {
	if err := s.enter(ctx); err != nil {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	if _, err := events.ParseStreamID(stream); err != nil {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, err)
	}
	var kb [128]byte
	v, closer, err := s.db.Get(snapKey(kb[:0], stream))
	if errors.Is(err, pebble.ErrNotFound) {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, events.ErrNotFound)
	}
	if err != nil {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, err)
	}
	defer closer.Close()
	version, k, err := decodeSnapshotVersion(v)
	if err != nil {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, err)
	}
	return events.Snapshot{Stream: stream, Version: version, Data: bytes.Clone(v[k:])}, nil
}

// SetPending implements events.Store, through the writer so that it is
// synced after every append assigned before it.
func (s *Store) SetPending(ctx context.Context, stream string, pending bool) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("set pending %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	if _, err := events.ParseStreamID(stream); err != nil {
		return fmt.Errorf("set pending %s: %w", stream, err)
	}
	r := &request{kind: kindPending, ctx: ctx, stream: stream, pending: pending}
	if err := s.w.meta(r); err != nil {
		return fmt.Errorf("set pending %s: %w", stream, err)
	}
	return nil
}

// Pending implements events.Store.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixPending},
		UpperBound: []byte{prefixPending + 1},
	})
	if err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	defer it.Close()
	out := []string{}
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[1:]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	return out, nil
}

// Close implements events.Store: it stops accepting calls, waits for
// in-flight ones (each append commits and settles before its call
// returns), ends every Follow with ErrClosed and closes Pebble.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.scanStop != nil {
		s.scanStop()
		<-s.scanDone
	}
	s.wm.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// Streams implements events.Store with a scan of the event keyspace: the
// keys of a kind's streams are one range ('e' kind ':' …), and each stream
// costs a seek to its last event and a seek past it, whatever its length.
// Stream ids never contain 0x00, so the keys' order is the ids' byte
// order. No index is kept, so a store written before Streams existed lists
// the same way.
func (s *Store) Streams(ctx context.Context, kind, after string, limit int) ([]events.StreamInfo, error) {
	if err := s.enter(ctx); err != nil {
		return nil, fmt.Errorf("streams %s: %w", events.Clip(kind, 40), err)
	}
	defer s.mu.RUnlock()
	if err := events.ValidateKind(kind); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	out, err := s.streams(ctx, kind, after, limit, s.wm.Load())
	if err != nil {
		return nil, fmt.Errorf("streams %s: %w", kind, err)
	}
	return out, nil
}

func (s *Store) streams(ctx context.Context, kind, after string, limit int, wm uint64) ([]events.StreamInfo, error) {
	prefix := append([]byte{prefixEvent}, kind...)
	lower := append(bytes.Clone(prefix), ':')
	upper := append(bytes.Clone(prefix), ':'+1)
	// Strictly after the stream `after`: past all of its keys.
	if a := streamUpper(nil, after); bytes.Compare(a, lower) > 0 {
		lower = a
	}
	out := []events.StreamInfo{}
	if bytes.Compare(lower, upper) >= 0 {
		return out, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var bound []byte
	for ok := it.First(); ok; ok = it.SeekGE(bound) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := it.Key()
		end := bytes.IndexByte(k, 0)
		if end < 1 {
			return nil, fmt.Errorf("%w: event key of %d bytes", errCorrupt, len(k))
		}
		stream := string(k[1:end])
		bound = streamUpper(bound[:0], stream)
		v, err := durableVersion(s.db, stream, wm)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			continue // committed, not yet durable
		}
		out = append(out, events.StreamInfo{Stream: stream, Version: v})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return out, nil
}
