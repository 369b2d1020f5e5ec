package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/b6368a97/engine/events"
)

// Group commit. Append queues a request and waits; one committer goroutine
// per Store takes every request waiting (up to maxBatchEvents events and
// maxBatchBytes bytes) and commits them in one transaction, so the row
// lock on log_head, the round trips and the WAL flush are paid per batch,
// not per append. While a batch commits, the next one gathers.
const (
	maxBatchEvents = 2048
	maxBatchBytes  = 4 << 20
)

// appendReq is one Append waiting for the committer.
type appendReq struct {
	ctx      context.Context
	stream   string
	expected events.ExpectedVersion
	evs      []events.Event
	size     int
	reply    chan appendReply // buffered: the caller may be gone
}

type appendReply struct {
	res events.AppendResult
	err error
}

// enqueue hands r to the committer.
func (s *Store) enqueue(r *appendReq) {
	s.qmu.Lock()
	s.queue = append(s.queue, r)
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeBatch removes the requests of the next batch from the queue: at least
// one, then as many as fit the bounds, in arrival order. A request whose
// context is done by now is answered with its error and left out: it has
// no effect.
func (s *Store) takeBatch() []*appendReq { return s.takeMore(0, 0) }

// takeMore is takeBatch for a batch that holds nEv events of nBytes bytes
// already (when both are 0, it takes at least one request).
func (s *Store) takeMore(nEv, nBytes int) []*appendReq {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	var (
		batch []*appendReq
		i     int
		some  = nEv > 0 || nBytes > 0
	)
	for ; i < len(s.queue); i++ {
		r := s.queue[i]
		if err := r.ctx.Err(); err != nil {
			r.reply <- appendReply{err: fmt.Errorf("append %s: %w", events.Clip(r.stream, 80), err)}
			continue
		}
		if (some || len(batch) > 0) && (nEv+len(r.evs) > maxBatchEvents || nBytes+r.size > maxBatchBytes) {
			break
		}
		batch = append(batch, r)
		nEv += len(r.evs)
		nBytes += r.size
	}
	n := copy(s.queue, s.queue[i:])
	clear(s.queue[n:])
	s.queue = s.queue[:n]
	return batch
}

// commitLoop is the committer goroutine. It stops when stop is closed
// (Close, after every Append returned); requests still queued then were
// abandoned by their callers and are answered with ErrClosed.
func (s *Store) commitLoop() {
	defer close(s.commitDone)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			for _, r := range s.takeAll() {
				r.reply <- appendReply{err: fmt.Errorf("append %s: %w", events.Clip(r.stream, 80), events.ErrClosed)}
			}
			return
		}
		for {
			batch := s.takeBatch()
			if len(batch) == 0 {
				break
			}
			s.commitBatch(batch, true)
		}
	}
}

func (s *Store) takeAll() []*appendReq {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// commitBatch commits batch and answers every request. Checks that fail
// one append (wrong expected version, duplicate ids) answer that append
// alone; an error of the transaction itself (the connection, or a
// constraint violation, which cannot happen while every writer takes
// log_head first) fails the batch, and then each of its appends is tried
// once more on its own, so that one bad append cannot fail the others and
// each gets the error of its own transaction. The retry is safe when the
// failed commit did take effect after all: the ids are then stored, and
// the append is answered as an idempotent duplicate.
//
// grow lets runBatch add appends queued while it waited for log_head; the
// retries alone do not grow.
func (s *Store) commitBatch(batch []*appendReq, grow bool) {
	batch, replies, err := s.runBatch(context.Background(), batch, grow)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			s.commitBatch([]*appendReq{r}, false)
		}
		return
	}
	if err != nil {
		r := batch[0]
		r.reply <- appendReply{err: s.appendError(r, err)}
		return
	}
	for i, r := range batch {
		r.reply <- replies[i]
	}
}

// appendError turns the error of a one-append transaction into the
// append's error.
func (s *Store) appendError(r *appendReq, err error) error {
	op := "append " + events.Clip(r.stream, 80)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "events_stream_version_key":
			var cur int64
			if rerr := s.pool.QueryRow(context.Background(), `SELECT coalesce(max(version), 0) FROM events WHERE stream = $1`, r.stream).Scan(&cur); rerr != nil {
				return fmt.Errorf("%s: %w", op, rerr)
			}
			return &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected, Current: uint64(cur)}
		case "events_id_key":
			return fmt.Errorf("%s: %w: an event id is stored already", op, events.ErrDuplicateID)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// runBatch runs the transaction of one batch, in two round trips when
// log_head is free:
//
//  1. BEGIN; lock log_head (SELECT … FOR UPDATE SKIP LOCKED) and read the
//     head; read the events stored with any of the batch's ids; read the
//     version of each of the batch's streams. Read committed gives each
//     statement a fresh snapshot, so the reads after the lock see every
//     commit of the writers before (PostgreSQL makes a transaction visible
//     before it releases its locks).
//  2. After the checks, made here: insert the accepted events (one
//     multi-row INSERT … SELECT FROM unnest), set the head, NOTIFY,
//     COMMIT. With nothing accepted: ROLLBACK.
//
// When another writer (another node's committer) holds log_head, SKIP
// LOCKED returns no row: the committer then waits for the lock (SELECT …
// FOR UPDATE), adds to the batch (with grow) the appends queued meanwhile, and reads
// again for the whole batch, so that a batch is as big as the wait made
// it rather than as small as it was before the wait.
//
// The appends are checked in stream order (stable: arrival order within a
// stream), each seeing the ones accepted before it, so two appends to one
// stream in a batch are versioned one after the other. An append failing
// its checks inserts nothing, so no statement fails for it and the others
// commit. It returns the batch (grown or not) and one reply per request,
// or the error that failed the transaction.
func (s *Store) runBatch(ctx context.Context, batch []*appendReq, grow bool) ([]*appendReq, []appendReply, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return batch, nil, err
	}
	defer conn.Release()

	var (
		last    int64
		locked  bool
		stored  []events.Event
		current map[string]uint64
	)
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT last FROM log_head FOR UPDATE SKIP LOCKED`)
	queueReads(b, batch)
	err = func() error {
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		switch err := br.QueryRow().Scan(&last); {
		case err == nil:
			locked = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if stored, current, err = scanReads(br); err != nil {
			return err
		}
		return br.Close()
	}()
	if err == nil && !locked {
		err = func() error {
			if err := conn.QueryRow(ctx, `SELECT last FROM log_head FOR UPDATE`).Scan(&last); err != nil {
				return err
			}
			if grow {
				nEv, nBytes := 0, 0
				for _, r := range batch {
					nEv += len(r.evs)
					nBytes += r.size
				}
				batch = append(batch, s.takeMore(nEv, nBytes)...)
			}
			b := &pgx.Batch{}
			queueReads(b, batch)
			br := conn.SendBatch(ctx, b)
			defer br.Close()
			if stored, current, err = scanReads(br); err != nil {
				return err
			}
			return br.Close()
		}()
	}
	if err != nil {
		abort(conn)
		return batch, nil, err
	}
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(batch[a].stream, batch[b].stream) })

	byID := make(map[string]events.Event, len(stored))
	for _, e := range stored {
		byID[e.ID] = e
	}
	now := time.Now()
	clock := func() time.Time { return now }
	replies := make([]appendReply, len(batch))
	var (
		ins  insertRows
		head = last
	)
	for _, i := range order {
		r := batch[i]
		replies[i] = r.check(byID, current[r.stream])
		if replies[i].err != nil || replies[i].res.Duplicate {
			continue
		}
		out := make([]events.Event, len(r.evs))
		cur := current[r.stream]
		for j, e := range r.evs {
			e.Stream = strings.Clone(r.stream)
			e.Version = cur + uint64(j) + 1
			head++
			e.Position = uint64(head)
			e.Time = events.NormalizeTime(e.Time, clock)
			out[j] = e
			byID[e.ID] = e
			ins.add(e)
		}
		current[r.stream] = cur + uint64(len(r.evs))
		replies[i].res = events.AppendResult{Events: out}
	}
	if head == last {
		// Nothing to write: every append was a duplicate or failed.
		if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
			abort(conn)
			return batch, nil, err
		}
		return batch, replies, nil
	}
	w := &pgx.Batch{}
	w.Queue(`INSERT INTO events (position, stream, version, id, type, time_ms, data, correlation, causation)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[], $9::text[])`,
		ins.positions, ins.streams, ins.versions, ins.ids, ins.types, ins.times, ins.datas, ins.corrs, ins.causes)
	w.Queue(`UPDATE log_head SET last = $1`, head)
	w.Queue(`SELECT pg_notify($1, $2)`, s.channel, strconv.FormatInt(head, 10))
	w.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, w).Close(); err != nil {
		abort(conn)
		return batch, nil, err
	}
	s.wm.Advance(uint64(head))
	return batch, replies, nil
}

// queueReads queues the two reads of a batch: the events stored with any
// of its ids, and the current version of each of its streams.
func queueReads(b *pgx.Batch, batch []*appendReq) {
	var ids, streams []string
	for _, r := range batch {
		for _, e := range r.evs {
			ids = append(ids, e.ID)
		}
		streams = append(streams, r.stream)
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)
	b.Queue(`SELECT `+eventCols+` FROM events WHERE id = ANY($1)`, ids)
	b.Queue(`SELECT s, (SELECT coalesce(max(version), 0) FROM events WHERE stream = s) FROM unnest($1::text[]) AS u(s)`, streams)
}

// scanReads reads the results of queueReads.
func scanReads(br pgx.BatchResults) (stored []events.Event, current map[string]uint64, err error) {
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	if stored, err = scanEvents(rows); err != nil {
		return nil, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, err
	}
	current = map[string]uint64{}
	for rows.Next() {
		var st string
		var v int64
		if err := rows.Scan(&st, &v); err != nil {
			rows.Close()
			return nil, nil, err
		}
		current[st] = uint64(v)
	}
	return stored, current, rows.Err()
}

// check answers r from the events stored (or accepted earlier in the
// batch) with r's ids and its stream's current version: an idempotent
// duplicate, an error, or a zero reply when r is to be written.
func (r *appendReq) check(byID map[string]events.Event, current uint64) appendReply {
	var found []events.Event
	for _, e := range r.evs {
		se, ok := byID[e.ID]
		if !ok {
			continue
		}
		if se.Stream != r.stream {
			return appendReply{err: fmt.Errorf("append %s: %w: event %s is stored in %s", events.Clip(r.stream, 80), events.ErrDuplicateID, e.ID, events.Clip(se.Stream, 80))}
		}
		found = append(found, se)
	}
	if len(found) > 0 {
		if len(found) != len(r.evs) {
			return appendReply{err: fmt.Errorf("append %s: %w: %d of %d event ids are stored already", events.Clip(r.stream, 80), events.ErrDuplicateID, len(found), len(r.evs))}
		}
		return appendReply{res: events.AppendResult{Events: found, Duplicate: true}}
	}
	if !r.expected.Matches(current) {
		return appendReply{err: &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected, Current: current}}
	}
	return appendReply{}
}

// insertRows holds the columns of a batch's events for one INSERT.
type insertRows struct {
	positions, versions, times []int64
	streams, ids, types        []string
	corrs, causes              []string
	datas                      [][]byte
}

func (c *insertRows) add(e events.Event) {
	c.positions = append(c.positions, int64(e.Position))
	c.streams = append(c.streams, e.Stream)
	c.versions = append(c.versions, int64(e.Version))
	c.ids = append(c.ids, e.ID)
	c.types = append(c.types, e.Type)
	c.times = append(c.times, e.Time.UnixMilli())
	c.datas = append(c.datas, e.Data)
	c.corrs = append(c.corrs, e.Meta.Correlation)
	c.causes = append(c.causes, e.Meta.Causation)
}

// abort ends a failed transaction; a connection that cannot roll back is
// closed, and the pool then drops it.
func abort(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}
