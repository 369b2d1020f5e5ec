package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/b6368a97/engine/events"
)

type requestKind uint8

const (
	kindAppend requestKind = iota
	kindSnapshot
	kindPending
)

// request is one call that changes the store. The caller fills the input
// fields, the writer fills the output fields and then sends on done; the
// caller reads the outputs only after receiving from done.
type request struct {
	kind     requestKind
	ctx      context.Context
	stream   string
	expected events.ExpectedVersion
	evs      []events.Event // the caller's events, Time normalised (appends)
	buf      []byte         // every event value, back to back (appends)
	offs     []int          // where event i's value starts in buf; offs[len(evs)] = len(buf)
	dataOffs []int          // where event i's data starts in buf
	hashes   []uint64       // hashID of each event's id (appends)
	snap     uint64         // snapshot version (snapshots)
	value    []byte         // snapshot value (snapshots)
	pending  bool           // (pending)

	// The caller's idempotency pre-check (appends): seen is the last group
	// applied to Pebble before the caller looked its ids up, found whether
	// it found any of them.
	seen  uint64
	found bool

	// Outputs.
	version   uint64 // first version assigned (appends)
	position  uint64 // first position assigned (appends)
	duplicate []events.Event
	err       error
	done      chan struct{}

	// Storage for the slices above when the append holds one event (the
	// common case), so that it costs no allocations of its own.
	offs1     [2]int
	dataOffs1 [1]int
	hashes1   [1]uint64
}

// newAppendRequest encodes the events on the caller's goroutine, so that
// the single writer only patches in versions and positions.
func newAppendRequest(ctx context.Context, stream string, expected events.ExpectedVersion, evs []events.Event, now func() time.Time) *request {
	r := &request{
		kind:     kindAppend,
		ctx:      ctx,
		stream:   stream,
		expected: expected,
		evs:      make([]events.Event, len(evs)),
		done:     make(chan struct{}, 1),
	}
	if len(evs) == 1 {
		r.offs, r.dataOffs, r.hashes = r.offs1[:], r.dataOffs1[:], r.hashes1[:]
	} else {
		ints := make([]int, 2*len(evs)+1)
		r.offs, r.dataOffs = ints[:len(evs)+1], ints[len(evs)+1:]
		r.hashes = make([]uint64, len(evs))
	}
	n := 0
	for i := range evs {
		e := evs[i]
		e.Time = events.NormalizeTime(e.Time, now)
		r.evs[i] = e
		r.hashes[i] = hashID(e.ID)
		n += encodedLen(stream, &e)
	}
	r.buf = make([]byte, 0, n)
	for i := range r.evs {
		r.offs[i] = len(r.buf)
		var off int
		r.buf, off = encodeEvent(r.buf, stream, &r.evs[i])
		r.dataOffs[i] = off
	}
	r.offs[len(evs)] = len(r.buf)
	return r
}

func (r *request) eventValue(i int) []byte { return r.buf[r.offs[i]:r.offs[i+1]] }

// result builds the caller's AppendResult once the writer has replied.
// Data in the result is the stored copy, not the caller's slice.
func (r *request) result() (events.AppendResult, error) {
	if r.err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", r.stream, r.err)
	}
	if r.duplicate != nil {
		return events.AppendResult{Events: r.duplicate, Duplicate: true}, nil
	}
	out := r.evs
	for i := range out {
		out[i].Stream = r.stream
		out[i].Version = r.version + uint64(i)
		out[i].Position = r.position + uint64(i)
		out[i].Data = r.buf[r.dataOffs[i]:r.offs[i+1]:r.offs[i+1]]
	}
	return events.AppendResult{Events: out}, nil
}

// group is what the writer applies as one Pebble batch: requests taken
// from the queue together, in order. The writes of those that succeeded are
// put into the batch only when it is applied, grouped by keyspace (see
// build).
type group struct {
	reqs   []*request
	writes []*request // requests with something to write, in queue order
	events int
	bytes  int    // approximate size of the batch
	seq    uint64 // numbers the group once its batch is applied
	// hashes of the ids written by this group (hashID), so that a later
	// request of the same group that reuses one of them is noticed before
	// Pebble can see it. A collision only sends a request to the next
	// group.
	ids map[uint64]struct{}
	// snaps holds the snapshot versions written by this group.
	snaps map[string]uint64
}

// reset empties g for reuse once it has been applied and its requests
// handed to a round.
func (g *group) reset() {
	clear(g.reqs)
	clear(g.writes)
	g.reqs, g.writes = g.reqs[:0], g.writes[:0]
	g.events, g.bytes, g.seq = 0, 0, 0
	clear(g.ids)
	g.snaps = nil
}

func (g *group) full(maxEvents, maxBytes int) bool {
	return g.events >= maxEvents || g.bytes >= maxBytes
}

// round is what one WAL sync acknowledges: every request whose batch was
// applied since the previous round was sealed.
type round struct {
	reqs    []*request
	lastPos uint64        // the last position applied in the round (0: none)
	marker  *pebble.Batch // the sync request; nil when nothing was written
	written bool          // some batch of the round was applied
	seals   int           // sync slots the round holds (see committer.merge)
}

// commit is what the writer hands the committer for one group: its batch
// (nil when it writes nothing), its requests, in queue order, and whether
// the round ends with it.
type commit struct {
	batch   *pebble.Batch
	reqs    []*request
	lastPos uint64 // the writer's last position after this group
	seq     uint64 // the group's sequence number (0: it writes nothing)
	seal    bool
	seals   int           // sealed rounds merged into this commit (merge)
	flushed chan struct{} // set: no group; closed once every earlier one is applied
}

// writer owns every write, in three goroutines.
//
// The writer goroutine (run) takes whatever requests are queued, checks
// them against the stream heads it caches, assigns versions and positions,
// builds each group's writes (stream keys, log keys, id keys, snapshots,
// the pending index) into one Pebble batch and hands it to the committer
// goroutine. The committer applies the batches one after another, in the
// writer's order, so the WAL holds the log in position order, and a
// group's events and ids are one atomic batch. Applying is mostly memtable
// inserts (three per event, two of them at random places in a large
// skiplist) and Pebble's per-commit work, so the split lets validation and
// batch building run beside it on the other core, and when the committer
// falls behind it folds the batches queued for it into one (merge), paying
// the per-commit costs once for all of them.
//
// Pebble makes an applied batch visible to readers at once, which is why
// every read is capped at the watermark. Each round's last batch is
// committed with a WAL sync request that nobody waits for there, and the
// round is handed to the acknowledger. Pebble's WAL writer syncs back to
// back: when a sync finishes it starts the next one for every sync request
// queued meanwhile, with no goroutine hop in between, so the rounds that
// arrived during one sync all ride the next. That keeps the disk busy and
// each request waits for at most the sync in progress plus its own, like
// concurrent raw Pebble commits, but with one batch per drain of the queue
// instead of one per append. If MaxPendingSyncs rounds are already
// waiting, the writer keeps taking requests, applies them without a sync
// every applyChunk events, and seals them as one round when a slot frees:
// the last batch carries the sync request, or an empty LogData record does
// (the WAL is synced in order, so a synced record means everything before
// it is durable).
//
// The acknowledger goroutine (ack) waits for each round's sync in order,
// advances the watermark past the round and replies to its requests.
// There is no timer: a lone append is applied and synced at once.
//
// The writer runs ahead of the committer: what the writer reads from
// Pebble (a stored snapshot, a stored id and its events) may be in a group
// the committer has not applied yet, so it first waits for the committer
// to catch up (flush). That only happens on rare paths: a retry or a
// reused id, a snapshot. Stream heads need no wait: the writer loads from
// Pebble only the heads it does not cache, and it drops cached heads only
// after a flush (evictHeads), so an uncached stream has nothing in flight.
type writer struct {
	s       *Store
	db      *pebble.DB
	heads   map[string]uint64 // stream -> last applied version
	lastPos uint64            // last applied position
	slots   chan struct{}     // one token per sealed, not yet acknowledged round (MaxPendingSyncs)
	rounds  chan *round       // sealed rounds, in order, to acknowledge
	failed  error             // set after a write failed; every later request gets it

	// commits carries groups to the committer goroutine; nil until run
	// starts it (tests drive the writer without goroutines, and then the
	// committer's work is done inline). unsealed counts the commits sent
	// since the last seal.
	commits  chan commit
	unsealed int
	c        committer

	// applied is the sequence number of the last group applied to Pebble
	// (visible to Get), published by the committer; callers read it before
	// their id pre-check. seq numbers the groups the writer builds.
	applied atomic.Uint64
	seq     uint64
	// recent maps the ids (hashID) written by the last groups to their
	// group's sequence number, so that the writer can tell whether a
	// caller's pre-check could have missed an id written after it looked
	// (see addAppend). recentLog lists them oldest first, a ring of
	// recentMax entries; recentFloor is the newest group with an id
	// dropped from recent. A hash collision only makes the writer look an
	// id up in Pebble.
	recent      map[uint64]uint64
	recentLog   []recentID
	recentHead  int // index of the oldest entry of recentLog
	recentIDs   int // entries in recentLog
	recentFloor uint64
	recentMax   int // recentMaxIDs; tests lower it

	// syncFailed is set by ack when a WAL sync failed, commitFailed by the
	// committer when applying a batch failed.
	syncFailed   atomic.Bool
	commitFailed atomic.Bool
	key          []byte // scratch for keys
	maxBatch     int
	maxBytes     int
	chunk        int // applyChunk
}

// committer applies the writer's batches in order and seals
// rounds. It runs on its own goroutine, or inline in tests.
type committer struct {
	w      *writer
	cur    *round
	failed error
}

// recentID is one id in writer.recent.
type recentID struct {
	hash, seq uint64
}

// recentMaxIDs bounds how many ids writer.recent holds. A caller's pre-check
// is usable while no more than that many ids were written between it and
// the writer reaching the request; past it the writer looks the ids up
// itself.
const recentMaxIDs = 1 << 16

func newWriter(s *Store, lastPos uint64) *writer {
	w := &writer{
		s:         s,
		db:        s.db,
		recent:    make(map[uint64]uint64),
		recentMax: recentMaxIDs,
		heads:     make(map[string]uint64),
		lastPos:   lastPos,
		slots:     make(chan struct{}, s.cfg.MaxPendingSyncs),
		rounds:    make(chan *round, s.cfg.MaxPendingSyncs),
		key:       make([]byte, 0, 256),
		maxBatch:  s.cfg.MaxBatchEvents,
		maxBytes:  s.cfg.MaxBatchBytes,
		chunk:     applyChunk,
	}
	w.c = committer{w: w, cur: &round{}}
	return w
}

// applyChunk is how many events the writer collects before applying them
// while it waits for a sync slot (see take).
const applyChunk = 32

// run is the writer goroutine. It returns once the queue is closed and
// every request taken from it is in a sealed round; it then closes
// commits, so the committer returns after the last round and closes
// rounds, and ack returns after the last reply.
func (w *writer) run() {
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		w.ack()
	}()
	w.commits = make(chan commit, 2*w.s.cfg.MaxPendingSyncs)
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		var next *commit
		for {
			var c commit
			if next != nil {
				c, next = *next, nil
			} else if cc, ok := <-w.commits; ok {
				c = cc
			} else {
				break
			}
			c, next = w.c.merge(c)
			w.c.handle(c)
		}
		close(w.rounds)
	}()
	defer func() {
		close(w.commits)
		<-commitDone
		<-ackDone
		close(w.s.done)
	}()

	g := &group{}
	open := true
	for open || w.unsealed > 0 || len(g.reqs) > 0 {
		if open && w.unsealed == 0 && len(g.reqs) == 0 {
			// Nothing to seal: wait for work.
			r, ok := <-w.s.reqs
			if !ok {
				open = false
				continue
			}
			g = w.take(g, r)
		}
		// Take whatever else is queued.
	drain:
		for open {
			select {
			case r, ok := <-w.s.reqs:
				if !ok {
					open = false
					break drain
				}
				g = w.take(g, r)
			default:
				break drain
			}
		}
		// Seal as soon as a sync slot is free; until then keep taking what
		// arrives, so that it rides the next sync.
		if open {
			select {
			case w.slots <- struct{}{}:
			case r, ok := <-w.s.reqs:
				if !ok {
					open = false
				} else {
					g = w.take(g, r)
				}
				continue
			}
		} else {
			w.slots <- struct{}{}
		}
		w.seal(g)
		g.reset()
	}
}

// take adds r to the pending group g and returns the pending group. It
// applies g first when r must start a new group (see add), and applies it
// once it holds applyChunk events: applying in chunks while a sync is in
// progress leaves little to apply when the round is sealed, and chunks
// keep Pebble's per-batch cost amortised.
func (w *writer) take(g *group, r *request) *group {
	if !w.add(g, r) {
		w.apply(g, false)
		g.reset()
		w.add(g, r) // an empty group takes any request
	}
	if g.events >= w.chunk || g.full(w.maxBatch, w.maxBytes) {
		w.apply(g, false)
		g.reset()
	}
	return g
}

// seal applies g and ends the round with it (the caller holds a slot for
// the round).
func (w *writer) seal(g *group) { w.apply(g, true) }

// apply builds g into one batch and hands it to the committer, with seal
// when the round ends with g.
func (w *writer) apply(g *group, seal bool) {
	c := commit{reqs: append([]*request(nil), g.reqs...), seal: seal, lastPos: w.lastPos}
	if w.failed == nil && w.commitFailed.Load() {
		w.failed = errors.New("an earlier write failed")
	}
	switch {
	case w.failed != nil:
		w.fail(g, w.failed)
	case len(g.writes) == 0:
	default:
		c.batch = w.db.NewBatchWithSize(g.bytes + 64)
		if err := w.build(g, c.batch); err != nil {
			c.batch.Close()
			c.batch = nil
			w.fail(g, fmt.Errorf("build batch: %w", err))
			break
		}
		w.remember(g)
		c.seq = g.seq
	}
	if len(c.reqs) > 0 || seal {
		w.send(c)
	}
	if len(w.heads) > w.s.cfg.MaxCachedStreams {
		w.flush()
		w.evictHeads()
	}
}

// send hands c to the committer, or handles it inline when no committer
// goroutine runs (tests).
func (w *writer) send(c commit) {
	if c.seal {
		w.unsealed = 0
	} else {
		w.unsealed++
	}
	if w.commits == nil {
		w.c.handle(c)
		return
	}
	w.commits <- c
}

// flush waits until the committer has applied every group sent to it.
func (w *writer) flush() {
	if w.commits == nil {
		return
	}
	done := make(chan struct{})
	w.commits <- commit{flushed: done}
	<-done
}

// maxMerge caps how many queued commits merge folds into one.
const maxMerge = 256

// merge folds the commits already queued behind c into c, while the
// committer is behind the writer: one Pebble batch and one round for all
// of them instead of one each, which is what made the committer the
// bottleneck under load (each commit costs Pebble's commit pipeline, a
// WAL record and, when sealed, a sync request and a round for the
// acknowledger). Copying a batch's few hundred bytes per event is cheap
// next to that. It stops before a flush, before a commit that would
// reopen a sealed round, and at maxMerge commits or the batch size limit;
// the commit it stopped at, if it took one off the queue, is returned as
// next.
func (m *committer) merge(c commit) (commit, *commit) {
	w := m.w
	if c.flushed != nil || w.commits == nil {
		return c, nil
	}
	if c.seal {
		c.seals = 1
	}
	for range maxMerge {
		if len(w.commits) == 0 || (c.batch != nil && c.batch.Len() >= w.maxBytes) {
			return c, nil
		}
		n := <-w.commits
		if n.flushed != nil || (c.seal && !n.seal) {
			return c, &n
		}
		if n.batch != nil {
			if c.batch == nil {
				c.batch = n.batch
			} else {
				err := c.batch.Apply(n.batch, nil)
				n.batch.Close()
				if err != nil {
					// Cannot happen for batches built by build; fail
					// n's requests rather than write them partly.
					m.fail(n.reqs, fmt.Errorf("merge batches: %w", err))
				}
			}
		}
		c.reqs = append(c.reqs, n.reqs...)
		c.lastPos = n.lastPos
		c.seq = max(c.seq, n.seq)
		if n.seal {
			c.seal = true
			c.seals++
		}
	}
	return c, nil
}

// handle applies one group's batch and adds its requests to the
// current round; with c.seal it ends the round: the batch is committed
// with a WAL sync request when it is all the round wrote, else an empty
// LogData record carries the request, and the round goes to the
// acknowledger.
func (m *committer) handle(c commit) {
	w := m.w
	if c.flushed != nil {
		close(c.flushed)
		return
	}
	cur := m.cur
	if c.batch != nil {
		sync := c.seal && !cur.written
		var err error
		switch {
		case m.failed != nil:
			err = m.failed
		case sync:
			if err = w.db.ApplyNoSyncWait(c.batch, pebble.Sync); err != nil {
				err = fmt.Errorf("commit batch: %w", err)
			}
		default:
			if err = w.db.Apply(c.batch, pebble.NoSync); err != nil {
				err = fmt.Errorf("apply batch: %w", err)
			}
		}
		if err != nil {
			m.fail(c.reqs, err)
			c.batch.Close()
		} else {
			cur.written = true
			cur.lastPos = c.lastPos
			// The ids are visible in Pebble now (see remember).
			w.applied.Store(c.seq)
			if sync {
				cur.marker = c.batch
			} else {
				c.batch.Close()
			}
		}
	}
	cur.reqs = append(cur.reqs, c.reqs...)
	if !c.seal {
		return
	}
	if cur.written && cur.marker == nil {
		cur.marker = w.db.NewBatch()
		if err := cur.marker.LogData(nil, nil); err != nil {
			m.failRound(cur, fmt.Errorf("sync marker: %w", err))
		} else if err := w.db.ApplyNoSyncWait(cur.marker, pebble.Sync); err != nil {
			m.failRound(cur, fmt.Errorf("sync marker: %w", err))
		}
	}
	cur.seals = max(c.seals, 1)
	w.rounds <- cur
	m.cur = &round{}
}

// fail fails reqs after applying their batch failed, and every later
// request: the writer's heads and positions are then ahead of Pebble.
func (m *committer) fail(reqs []*request, err error) {
	if m.failed == nil {
		m.w.s.log.Error("pebblestore: write failed; the store rejects every further write", "err", err)
		m.failed = err
		m.w.commitFailed.Store(true)
	}
	for _, r := range reqs {
		if r.err == nil {
			r.err = err
			r.duplicate = nil
		}
	}
}

// failRound fails every request of a round whose sync could not be
// requested.
func (m *committer) failRound(cur *round, err error) {
	cur.marker.Close()
	cur.marker = nil
	cur.lastPos = 0
	m.fail(cur.reqs, err)
}

// remember numbers a group about to be handed to the committer and
// records its ids in recent, dropping the oldest ids beyond recentMax.
func (w *writer) remember(g *group) {
	w.seq++
	g.seq = w.seq
	if w.recentLog == nil {
		w.recentLog = make([]recentID, w.recentMax)
	}
	for _, r := range g.writes {
		if r.kind != kindAppend {
			continue
		}
		for _, h := range r.hashes {
			if w.recentIDs == len(w.recentLog) {
				old := w.recentLog[w.recentHead]
				if w.recent[old.hash] == old.seq {
					delete(w.recent, old.hash)
				}
				w.recentFloor = old.seq
				w.recentHead = (w.recentHead + 1) % len(w.recentLog)
				w.recentIDs--
			}
			w.recentLog[(w.recentHead+w.recentIDs)%len(w.recentLog)] = recentID{hash: h, seq: g.seq}
			w.recentIDs++
			w.recent[h] = g.seq
			if w.s.ids != nil {
				w.s.ids.addHash(h)
			}
		}
	}
	// g.seq is published as applied by the committer once g's batch is
	// applied: a caller that reads g.seq as applied skips looking for g's
	// ids in recent, so they must be visible in Pebble by then, and in the
	// id filter, added just above.
}

// fail poisons the writer: after a failed write its cached heads and
// position may be ahead of what Pebble holds, so no further write is safe.
// Nothing of g is written and the watermark does not pass it.
func (w *writer) fail(g *group, err error) {
	if w.failed == nil {
		w.s.log.Error("pebblestore: write failed; the store rejects every further write", "err", err)
		w.failed = err
	}
	for _, r := range g.reqs {
		if r.err == nil {
			r.err = err
			r.duplicate = nil
		}
	}
}

// evictHeads drops about half of the cached heads (map iteration order is
// random). It runs once the committer has applied every group (flush),
// when every cached head is also visible in Pebble, so a dropped head
// reloads correctly.
func (w *writer) evictHeads() {
	n := len(w.heads) / 2
	for k := range w.heads {
		if n == 0 {
			break
		}
		delete(w.heads, k)
		n--
	}
}

// ack is the acknowledger goroutine: it waits for each round's sync in
// order, advances the watermark and replies.
func (w *writer) ack() {
	var broken error // a sync failed: nothing later may become visible
	for r := range w.rounds {
		broken = w.ackRound(r, broken)
	}
}

// ackRound waits for r's sync, advances the watermark past r and replies
// to r's requests. broken is the error of an earlier failed sync, if any;
// ackRound returns it, or the error of r's own failed sync.
func (w *writer) ackRound(r *round, broken error) error {
	if r.marker != nil {
		err := r.marker.SyncWait()
		r.marker.Close()
		if err != nil && broken == nil {
			// Pebble normally treats a failed WAL sync as fatal; this is
			// the path for an error it returns instead.
			w.s.log.Error("pebblestore: WAL sync failed; the store rejects every further write", "err", err)
			broken = fmt.Errorf("sync: %w", err)
			w.syncFailed.Store(true)
		}
	}
	if broken != nil {
		for _, req := range r.reqs {
			if req.err == nil {
				req.err = broken
				req.duplicate = nil
			}
		}
	} else {
		w.s.wm.Advance(r.lastPos)
	}
	for range max(r.seals, 1) {
		<-w.slots
	}
	for _, req := range r.reqs {
		req.done <- struct{}{}
	}
	return broken
}

// build writes g's changes into b one keyspace at a time: stream keys,
// then log keys, then id keys, then snapshots and the pending index. The
// order within a batch does not matter to readers (the batch becomes
// visible at once), but it matters to Pebble's memtable: its skiplist
// inserter reuses the previous insert's position, so the log keys, which
// are consecutive, are inserted almost for free when they come one after
// another instead of interleaved with the other keyspaces. Each event's
// value goes under its log key only; its stream key holds its position
// (codec.go).
func (w *writer) build(g *group, b *pebble.Batch) error {
	for _, r := range g.writes {
		if r.kind != kindAppend {
			continue
		}
		for i := range r.evs {
			w.key = eventKey(w.key[:0], r.stream, r.version+uint64(i))
			op := b.SetDeferred(len(w.key), streamRefLen)
			copy(op.Key, w.key)
			streamRef(op.Value[:0], r.position+uint64(i))
			if err := op.Finish(); err != nil {
				return err
			}
		}
	}
	for _, r := range g.writes {
		if r.kind != kindAppend {
			continue
		}
		for i := range r.evs {
			w.key = posKey(w.key[:0], r.position+uint64(i))
			if err := b.Set(w.key, r.eventValue(i), nil); err != nil {
				return err
			}
		}
	}
	for _, r := range g.writes {
		if r.kind != kindAppend {
			continue
		}
		for i := range r.evs {
			w.key = idKey(w.key[:0], r.evs[i].ID)
			op := b.SetDeferred(len(w.key), len(r.stream)+9)
			copy(op.Key, w.key)
			idRef(op.Value[:0], r.stream, r.version+uint64(i))
			if err := op.Finish(); err != nil {
				return err
			}
		}
	}
	// Snapshots and pending updates in queue order, so the later of two
	// changes to the same key wins.
	for _, r := range g.writes {
		var err error
		switch r.kind {
		case kindSnapshot:
			w.key = snapKey(w.key[:0], r.stream)
			err = b.Set(w.key, r.value, nil)
		case kindPending:
			w.key = pendingKey(w.key[:0], r.stream)
			if r.pending {
				err = b.Set(w.key, nil, nil)
			} else {
				err = b.Delete(w.key, nil)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// add puts r into the group: it validates r against the cached heads and
// assigns versions and positions; build later writes r's keys. A
// request that fails gets its error and writes nothing. add returns false,
// leaving r untouched, when r must start a new group instead (it reuses an
// id written by this group, which Pebble cannot see yet).
func (w *writer) add(g *group, r *request) bool {
	if w.failed == nil && w.syncFailed.Load() {
		w.failed = errors.New("an earlier WAL sync failed")
	}
	if w.failed != nil {
		r.err = w.failed
	} else if err := r.ctx.Err(); err != nil {
		r.err = err // still queued when its caller gave up: no effect
	} else {
		switch r.kind {
		case kindAppend:
			if !w.addAppend(g, r) {
				return false
			}
		case kindSnapshot:
			r.err = w.addSnapshot(g, r)
		case kindPending:
			r.err = w.addPending(g, r)
		}
	}
	g.reqs = append(g.reqs, r)
	return true
}

// head returns the stream's last committed version, loading it with one
// seek the first time.
func (w *writer) head(stream string) (uint64, error) {
	if v, ok := w.heads[stream]; ok {
		return v, nil
	}
	v, err := durableVersion(w.db, stream, math.MaxUint64)
	if err != nil {
		return 0, fmt.Errorf("load head: %w", err)
	}
	w.heads[stream] = v
	return v, nil
}

func (w *writer) addAppend(g *group, r *request) bool {
	// Idempotency. Ids written by this group are not in Pebble yet: such a
	// request goes into the next group, where they are.
	conflict := r.found || r.seen < w.recentFloor
	for i, h := range r.hashes {
		if _, ok := g.ids[h]; ok {
			if len(g.reqs) == 0 {
				// Cannot happen: an empty group has written no ids.
				r.err = fmt.Errorf("internal: id %s in an empty group", r.evs[i].ID)
				return true
			}
			return false
		}
		// The caller's pre-check saw every group up to r.seen; recent holds
		// the ids of every later group (r.seen >= recentFloor).
		if seq, ok := w.recent[h]; ok && seq > r.seen {
			conflict = true
		}
	}
	// Rare: a retry, a reused id, or a pre-check too old to trust. Look
	// every id up in Pebble, which holds every earlier group.
	if conflict && w.settleStoredIDs(r) {
		return true
	}

	head, err := w.head(r.stream)
	if err != nil {
		r.err = err
		return true
	}
	if !r.expected.Matches(head) {
		r.err = &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected, Current: head}
		return true
	}
	r.version = head + 1
	r.position = w.lastPos + 1
	if g.ids == nil {
		g.ids = make(map[uint64]struct{}, 64)
	}
	for i := range r.evs {
		patchValue(r.eventValue(i), r.position+uint64(i), r.version+uint64(i))
		g.ids[r.hashes[i]] = struct{}{}
		g.bytes += len(r.eventValue(i)) + 3*len(r.stream) + len(r.evs[i].ID) + 64
	}
	g.writes = append(g.writes, r)
	w.heads[r.stream] = head + uint64(len(r.evs))
	w.lastPos += uint64(len(r.evs))
	g.events += len(r.evs)
	return true
}

// settleStoredIDs looks r's ids up in Pebble and settles r when any is
// stored: a duplicate (every id stored on r's stream) gets the original
// events, anything else ErrDuplicateID. It returns false when no id is
// stored and r proceeds.
func (w *writer) settleStoredIDs(r *request) bool {
	w.flush() // the ids' events may not be applied yet
	found := 0
	other := false
	for i := range r.evs {
		stream, _, ok, err := w.lookupID(r.evs[i].ID)
		if err != nil {
			r.err = err
			return true
		}
		if ok {
			found++
			if stream != r.stream {
				other = true
			}
		}
	}
	switch {
	case found == len(r.evs) && !other:
		r.duplicate, r.err = w.originals(r)
		return true
	case found > 0:
		r.err = fmt.Errorf("%w: %d of %d ids are stored already (or on another stream)", events.ErrDuplicateID, found, len(r.evs))
		return true
	}
	return false
}

// lookupID returns the stream and version an id is stored at. The caller
// has flushed the committer.
func (w *writer) lookupID(id string) (string, uint64, bool, error) {
	w.key = idKey(w.key[:0], id)
	v, closer, err := w.db.Get(w.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("look up id %s: %w", id, err)
	}
	defer closer.Close()
	stream, version, err := parseIDRef(v)
	if err != nil {
		return "", 0, false, err
	}
	return string(stream), version, true, nil
}

// storedEvent reads one event by stream and version.
func (w *writer) storedEvent(stream string, version uint64) (events.Event, bool, error) {
	w.key = eventKey(w.key[:0], stream, version)
	v, closer, err := w.db.Get(w.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return events.Event{}, false, nil
	}
	if err != nil {
		return events.Event{}, false, fmt.Errorf("read event %s/%d: %w", stream, version, err)
	}
	pos, err := parseStreamRef(v)
	closer.Close()
	if err != nil {
		return events.Event{}, false, err
	}
	w.key = posKey(w.key[:0], pos)
	v, closer, err = w.db.Get(w.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return events.Event{}, false, nil
	}
	if err != nil {
		return events.Event{}, false, fmt.Errorf("read event %s/%d at %d: %w", stream, version, pos, err)
	}
	defer closer.Close()
	d := decoder{stream: stream}
	e, err := d.decode(v)
	if err != nil {
		return events.Event{}, false, err
	}
	if e.Stream != stream || e.Version != version {
		return events.Event{}, false, fmt.Errorf("%w: %s/%d refers to position %d, which holds %s/%d", errCorrupt, stream, version, pos, e.Stream, e.Version)
	}
	return e, true, nil
}

// originals reads the stored events of a retried append. They are
// committed (maybe by a batch still syncing); the reply waits for this
// group's turn, so they are durable when the caller sees them.
func (w *writer) originals(r *request) ([]events.Event, error) {
	out := make([]events.Event, 0, len(r.evs))
	for i := range r.evs {
		_, version, ok, err := w.lookupID(r.evs[i].ID)
		if err != nil {
			return nil, err
		}
		var e events.Event
		if ok {
			e, ok, err = w.storedEvent(r.stream, version)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: id %s refers to %s/%d, which is not stored", errCorrupt, r.evs[i].ID, r.stream, version)
		}
		out = append(out, e)
	}
	return out, nil
}

func (w *writer) addSnapshot(g *group, r *request) error {
	head, err := w.head(r.stream)
	if err != nil {
		return err
	}
	if r.snap > head {
		return fmt.Errorf("%w: snapshot at version %d, stream %s is at %d", events.ErrInvalidEvent, r.snap, r.stream, head)
	}
	stored, ok := g.snaps[r.stream]
	if !ok {
		w.flush() // an earlier group's snapshot may not be applied yet
		w.key = snapKey(w.key[:0], r.stream)
		v, closer, err := w.db.Get(w.key)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return fmt.Errorf("read snapshot: %w", err)
		default:
			stored, _, err = decodeSnapshotVersion(v)
			closer.Close()
			if err != nil {
				return err
			}
			ok = true
		}
	}
	if ok && r.snap < stored {
		return nil // an older snapshot than the stored one: ignored
	}
	g.writes = append(g.writes, r)
	g.bytes += len(r.value) + len(r.stream) + 16
	if g.snaps == nil {
		g.snaps = make(map[string]uint64)
	}
	g.snaps[r.stream] = r.snap
	return nil
}

func (w *writer) addPending(g *group, r *request) error {
	g.writes = append(g.writes, r)
	g.bytes += len(r.stream) + 16
	return nil
}
