package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/b6368a97/engine/events"
)

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]events.Event, error) {
	done, err := s.beginStream(ctx, "read", stream)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT `+eventCols+` FROM events WHERE stream = $1 AND version > $2 ORDER BY version LIMIT $3`,
		stream, clampAfter(after), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Event, error) {
	done, err := s.begin(ctx, "read log")
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT `+eventCols+` FROM events WHERE position > $1 ORDER BY position LIMIT $2`,
		clampAfter(after), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	return out, nil
}

// StreamVersion implements events.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	done, err := s.beginStream(ctx, "stream version", stream)
	if err != nil {
		return 0, err
	}
	defer done()
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream = $1`, stream).Scan(&v); err != nil {
		return 0, fmt.Errorf("stream version %s: %w", stream, err)
	}
	return uint64(v), nil
}

// Head implements events.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	done, err := s.begin(ctx, "head")
	if err != nil {
		return 0, err
	}
	defer done()
	var h int64
	if err := s.pool.QueryRow(ctx, `SELECT last FROM log_head`).Scan(&h); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return uint64(h), nil
}

// Follow implements events.Store.
func (s *Store) Follow(ctx context.Context, after uint64, fn func(events.Event) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	if s.closed.Load() {
		return fmt.Errorf("follow: %w", events.ErrClosed)
	}
	// ReadAll and the watermark both report ErrClosed once Close ran.
	return events.Follow(ctx, s, &s.wm, after, fn)
}

// SaveSnapshot implements events.Store.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	done, err := s.beginStream(ctx, "save snapshot", snap.Stream)
	if err != nil {
		return err
	}
	defer done()
	if snap.Version > 1<<62 {
		return fmt.Errorf("save snapshot %s: %w: version %d out of range", snap.Stream, events.ErrInvalidEvent, snap.Version)
	}
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream = $1`, snap.Stream).Scan(&v); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, err)
	}
	if snap.Version > uint64(v) {
		return fmt.Errorf("save snapshot %s: %w: snapshot version %d is beyond stream version %d", snap.Stream, events.ErrInvalidEvent, snap.Version, v)
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO snapshots (stream, version, data) VALUES ($1, $2, $3)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, data = excluded.data
		WHERE snapshots.version <= excluded.version`, snap.Stream, int64(snap.Version), data); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, err)
	}
	return nil
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (events.Snapshot, error) {
	done, err := s.beginStream(ctx, "load snapshot", stream)
	if err != nil {
		return events.Snapshot{}, err
	}
	defer done()
	snap := events.Snapshot{Stream: stream}
	var v int64
	err = s.pool.QueryRow(ctx, `SELECT version, data FROM snapshots WHERE stream = $1`, stream).Scan(&v, &snap.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, events.ErrNotFound)
	}
	if err != nil {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", stream, err)
	}
	snap.Version = uint64(v)
	return snap, nil
}

// SetPending implements events.Store.
func (s *Store) SetPending(ctx context.Context, stream string, pending bool) error {
	done, err := s.beginStream(ctx, "set pending", stream)
	if err != nil {
		return err
	}
	defer done()
	q := `DELETE FROM pending WHERE stream = $1`
	if pending {
		q = `INSERT INTO pending (stream) VALUES ($1) ON CONFLICT (stream) DO NOTHING`
	}
	if _, err := s.pool.Exec(ctx, q, stream); err != nil {
		return fmt.Errorf("set pending %s: %w", stream, err)
	}
	return nil
}

// Pending implements events.Store.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	done, err := s.begin(ctx, "pending")
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT stream FROM pending ORDER BY stream`)
	if err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pending: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// Close implements events.Store: it waits for calls in flight, ends every
// Follow with ErrClosed, stops the listener and closes the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	// Every Append has returned; the committer finishes its batch (of
	// appends whose callers gave up waiting) and stops.
	close(s.stop)
	<-s.commitDone
	s.wm.Close()
	s.cancel()
	s.bg.Wait()
	s.pool.Close()
	return nil
}

// streamsQuery lists streams with a loose index scan of events'
// (stream, version) index: each step finds the next stream id above the
// last one, then that stream's last version, so a page costs two index
// probes per stream, however long the streams are. $1 is the exclusive
// lower bound, $2 the exclusive upper bound of the kind's ids ("kind;",
// ';' being ':'+1), $3 the limit (NULL: none).
const streamsQuery = `WITH RECURSIVE s(stream) AS (
	(SELECT stream FROM events WHERE stream > $1 AND stream < $2 ORDER BY stream LIMIT 1)
	UNION ALL
	SELECT (SELECT e.stream FROM events e WHERE e.stream > s.stream AND e.stream < $2 ORDER BY e.stream LIMIT 1)
	FROM s WHERE s.stream IS NOT NULL
)
SELECT s.stream, (SELECT max(version) FROM events e WHERE e.stream = s.stream)
FROM s WHERE s.stream IS NOT NULL LIMIT $3`

// Streams implements events.Store.
func (s *Store) Streams(ctx context.Context, kind, after string, limit int) ([]events.StreamInfo, error) {
	done, err := s.begin(ctx, "streams "+events.Clip(kind, 40))
	if err != nil {
		return nil, err
	}
	defer done()
	if err := events.ValidateKind(kind); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	lower := kind + ":" // no stream id is "kind:" itself
	if after > lower {
		lower = after
	}
	rows, err := s.pool.Query(ctx, streamsQuery, lower, kind+";", limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("streams %s: %w", kind, err)
	}
	out := []events.StreamInfo{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("streams %s: %w", kind, err)
		}
		out = append(out, events.StreamInfo{Stream: id, Version: uint64(v)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("streams %s: %w", kind, err)
	}
	return out, nil
}
