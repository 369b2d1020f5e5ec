package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
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
// fields; assign fills the outputs.
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

	// The caller's idempotency pre-check (appends): seen is the durable
	// position when the caller looked its ids up (everything up to it was
	// visible to the lookups), found whether it found any of them.
	seen  uint64
	found bool

	// The stream's head as read from Pebble by addAppend, and
	// writer.evictions + 1 at the time (0: not read).
	head      uint64
	headEpoch uint64

	// Outputs.
	version   uint64 // first version assigned (appends)
	position  uint64 // first position assigned; 0 when nothing is to be written
	duplicate []events.Event
	err       error
	// after is the last position assigned when the request was settled
	// without writing (an error, a duplicate): its reply waits until that
	// position is durable, so that what the reply reports is readable.
	after uint64

	// Tracking. taken and leadSent are guarded by writer.mu: taken once a
	// leader took r into its batch, leadSent while a lead signal to r's
	// caller is on its way. committed and durable are guarded by
	// tracker.mu: committed once r's leader completed its batch (written
	// or failed), durable once the tracker settled r as written. done
	// carries the signals to r's caller: at most one sigLead and one
	// sigSettled, so it never blocks a sender.
	taken     bool
	leadSent  bool
	committed bool
	durable   bool
	done      chan signal

	// Storage for the slices above when the append holds one event (the
	// common case) of up to inlineValue bytes encoded, so that it costs
	// no allocations of its own.
	evs1      [1]events.Event
	offs1     [2]int
	dataOffs1 [1]int
	hashes1   [1]uint64
	buf1      [inlineValue]byte
}

// inlineValue is how many bytes of encoded events a request holds without
// allocating: a chat message or a game move with room to spare.
const inlineValue = 320

// newAppendRequest encodes the events on the caller's goroutine; assign
// only patches in versions and positions.
func newAppendRequest(ctx context.Context, stream string, expected events.ExpectedVersion, evs []events.Event, now func() time.Time) *request {
	r := &request{
		kind:     kindAppend,
		ctx:      ctx,
		stream:   stream,
		expected: expected,
	}
	if len(evs) == 1 {
		r.evs, r.offs, r.dataOffs, r.hashes = r.evs1[:], r.offs1[:], r.dataOffs1[:], r.hashes1[:]
	} else {
		r.evs = make([]events.Event, len(evs))
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
	if n <= len(r.buf1) {
		r.buf = r.buf1[:0:n]
	} else {
		r.buf = make([]byte, 0, n)
	}
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

// last is the last position assigned to r.
func (r *request) last() uint64 { return r.position + uint64(len(r.evs)) - 1 }

// result builds the caller's AppendResult once r is settled. Data in the
// result is the stored copy, not the caller's slice.
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

// writer orders every change to the store; the callers do the writing.
//
// An append takes three steps, all on callers' goroutines:
//
//  1. assign, under w.mu: check the append against the stream heads the
//     writer caches (and, rarely, against Pebble), give it the next
//     versions of its stream and the next global positions, and queue it
//     in the tracker and among the pending appends. This is the only
//     serial part besides Pebble's own, a few map and slice operations.
//  2. lead: when no caller leads, the caller leads: it takes the pending
//     appends (its own alone, as nobody led), yields the processor once
//     and takes those queued meanwhile too (see gather), and writes them
//     as one Pebble batch with a WAL sync request. As soon as Pebble has
//     applied the batch (WAL record written, memtable updated), the lead
//     passes to the caller of the oldest append queued meanwhile, which
//     takes everything queued by then; the old leader waits for its sync.
//     So a batch is being applied while the previous one syncs, Pebble
//     folds the syncs requested during one sync into the next, and a
//     lone append is written by its own caller after a yield that returns
//     at once, with no timer and no goroutine of the store's in between.
//     A batch's log keys are consecutive, which the memtable inserts
//     almost for free.
//  3. complete: the leader tells the tracker the batch is durable.
//     Batches reach the WAL in position order and a sync covers the log
//     up to its record, so the batch is durable with every batch before
//     it: the tracker advances the watermark to the batch's end and
//     signals every caller it passed, whether or not the leaders of
//     those earlier batches have woken from their own syncs yet.
//
// A batch that cannot be written (build, apply, a panic in Pebble) fails
// the store before the lead passes on, so no later batch is written above
// it. A failed sync is known only after the lead has passed, and later
// batches may be in the log by then; Pebble's log writer keeps its first
// error and fails every later sync with it, so none of them is
// acknowledged either. Should Pebble still hold a position above one it
// does not, Open deletes every event above the first gap (repairTail);
// none of them was acknowledged, since the watermark never passes a gap.
// assign admits an append only while at most maxInFlight positions are
// assigned and not durable (an append larger than that waits for the rest
// to drain and runs alone), which bounds both the memory held by appends
// in flight and how far back repairTail looks.
//
// Snapshots and pending-index updates (meta) wait until every position
// assigned before them is durable, so that a snapshot never survives a
// crash that the events it covers did not; they are committed one at a
// time under metaMu, so two changes of one key land in call order.
//
// Pebble makes a committed batch visible before its sync returns, which
// is why every read is capped at the watermark. assign itself reads
// Pebble only where nothing it needs can be in flight: a stream head the
// cache lacks (heads are dropped only once durable), and the ids of a
// retried append, after waiting with w.mu released until everything
// assigned before it is durable. Nothing waits while holding w.mu: the
// leaders need it to pass the lead on.
type writer struct {
	s  *Store
	db *pebble.DB
	t  tracker

	// mu guards the fields below.
	mu      sync.Mutex
	heads   map[string]*streamHead // stream -> its last assigned version
	lastPos uint64                 // last assigned position
	// recentLog holds the ids (hashID) of the last appends assigned, with
	// their append's last position, oldest first: a ring of recentMax
	// entries, so that assign can tell whether a caller's pre-check could
	// have missed an id assigned after it looked (see addAppend).
	// recentFloor is the newest position of an id dropped from the ring.
	// A hash collision only makes assign look an id up in Pebble.
	recentLog   []recentID
	recentHead  int // index of the oldest entry of recentLog
	recentIDs   int // entries in recentLog
	recentFloor uint64
	recentMax   int // recentMaxIDs; tests lower it
	// recentSlots[h%recentSlotCount] is the last position of the latest
	// append assigned with an id of hash h (or of a hash sharing its
	// slot): when it is at most a caller's seen, none of the caller's ids
	// can have been assigned since its pre-check, whatever recentLog
	// still holds, and assign skips the scan.
	recentSlots []uint64
	// oversized counts the appends waiting in addAppend because they do
	// not fit within maxInFlight, heldBack the appends waiting behind them.
	oversized int
	heldBack  int
	// evictions counts evictHeads calls, so that a head read from Pebble
	// with w.mu released is known to be current (see addAppend).
	evictions   uint64
	key         []byte // scratch for keys
	maxInFlight uint64
	// pending holds the assigned appends no leader has taken yet, in
	// position order. leaders is 1 while a caller leads (builds and
	// applies a batch) or a lead signal is on its way to one, else 0.
	pending  []*request
	leaders  int
	maxBatch int // events a leader takes at most

	// metaMu orders the commits of snapshots and pending updates.
	metaMu sync.Mutex

	// apply writes a leader's batch to Pebble: applyNoSyncWait; tests
	// replace it to inject failures.
	apply func(*pebble.Batch) error
}

// streamHead is a cached stream head: its last version, and the position
// of that version (0 when loaded from Pebble, so durable).
type streamHead struct {
	version, pos uint64
}

// recentID is one id in writer.recentLog.
type recentID struct {
	hash, pos uint64
}

// recentMaxIDs bounds how many ids writer.recentLog holds. A caller's pre-check
// is usable while no more than that many ids were assigned between it and
// assign; past it assign looks the ids up itself. The pre-check reads the
// watermark, so what was assigned since is about what is in flight: a few
// hundred ids under load. Small enough to stay in the CPU's caches.
const recentMaxIDs = 1 << 12

// recentSlotCount is the size of writer.recentSlots: 32 KiB, and with a
// few hundred ids in flight a slot is shared by one in tens.
const recentSlotCount = 1 << 12

func newWriter(s *Store, lastPos uint64) *writer {
	w := &writer{
		s:           s,
		db:          s.db,
		recentMax:   recentMaxIDs,
		heads:       make(map[string]*streamHead),
		lastPos:     lastPos,
		key:         make([]byte, 0, 256),
		maxInFlight: uint64(s.cfg.MaxInFlightEvents),
		maxBatch:    maxBatchEvents,
	}
	w.apply = w.applyNoSyncWait
	w.t.wm = &s.wm
	w.t.durable.Store(lastPos)
	return w
}

// signal is what r.done carries.
type signal uint8

const (
	sigSettled signal = iota // r is durable, or failed: its outputs are final
	sigLead                  // r's caller is to lead (see lead)
)

// maxBatchEvents caps the events one leader takes into its batch.
const maxBatchEvents = 1024

// One caller leads at a time. That keeps batches in position order in
// the WAL, which complete relies on. Two leaders would insert into the
// memtable in parallel, but measured on two cores they paid more in
// smaller batches than they gained.

// appendEvents runs r through assign, a leader's batch and the tracker,
// and settles it: on return r's outputs are final (or the error is the
// caller's context).
func (w *writer) appendEvents(r *request) error {
	// A leader's batch lives here while it leads, unless it is longer.
	var batchBuf [32]*request
	batch, ok := w.assign(r, batchBuf[:0])
	if !ok {
		// Settled without writing. After a validation error or a
		// duplicate, what the reply reports (the stream's head, the
		// original events) may still be in flight: wait for it.
		return w.t.wait(r.ctx, r.after)
	}
	if batch != nil {
		batch = w.gather(batch)
		if w.lead(batch, r) {
			return nil
		}
	}
	for {
		sig, err := w.await(r)
		if err != nil || sig == sigSettled {
			return err
		}
		w.mu.Lock()
		r.leadSent = false
		batch := w.take(batchBuf[:0])
		if batch == nil {
			w.leaders-- // someone else took the pending appends
		}
		w.mu.Unlock()
		if batch != nil && w.lead(batch, r) {
			return nil
		}
	}
}

// await returns the next signal to r's caller, or the caller's context
// error once it may leave: only when a leader took r and no lead signal
// to r is on its way, so that the pending appends always have a caller to
// lead them. r then becomes durable anyway, or the store fails: like a
// lost reply.
func (w *writer) await(r *request) (signal, error) {
	if r.ctx.Done() == nil {
		return <-r.done, nil
	}
	select {
	case sig := <-r.done:
		return sig, nil
	case <-r.ctx.Done():
	}
	w.mu.Lock()
	free := r.taken && !r.leadSent
	w.mu.Unlock()
	if free {
		return 0, r.ctx.Err()
	}
	return <-r.done, nil
}

// assign checks r and, when it is to be written, gives it its versions
// and positions, queues it in the tracker and among the pending appends,
// and reports true. When no caller leads, r's caller becomes the
// leader: assign returns the batch it is to lead. When r is not to be
// written, r.err or r.duplicate says why, and r.after how far the reply
// must wait.
func (w *writer) assign(r *request, dst []*request) (batch []*request, ok bool) {
	done := make(chan signal, 2) // not under w.mu
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := r.ctx.Err(); err != nil {
		r.err = err // its caller gave up first: no effect
		return nil, false
	}
	if !w.addAppend(r) {
		r.after = w.lastPos
		return nil, false
	}
	r.done = done
	w.pending = append(w.pending, r)
	if w.leaders == 0 {
		w.leaders = 1
		return w.take(dst), true
	}
	return nil, true
}

// gather lets the appends made at about the same time as the ones in
// batch join it, and returns batch with them. batch is what a caller that
// found nobody leading took in assign: its own append, alone. Appends
// come in bursts: a WAL sync wakes every writer it carries, and each
// makes its next append at once, so others are usually on their way into
// assign, runnable but not yet run. Yielding the processor once lets them
// queue, and the batch takes them along: one Pebble commit and one WAL
// record where there would be several, each paying Pebble's commit
// overhead and a wake-up at its sync. A lone append loses only the yield,
// which returns at once when nothing else is runnable.
func (w *writer) gather(batch []*request) []*request {
	runtime.Gosched()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range batch {
		n += len(r.evs)
	}
	return w.takeN(batch, w.fits(n))
}

// take removes the oldest pending appends, up to maxBatch events (at
// least one append), and returns them appended to dst, or nil when none
// is pending. The caller holds w.mu and leads.
func (w *writer) take(dst []*request) []*request {
	if len(w.pending) == 0 {
		return nil
	}
	return w.takeN(dst, max(1, w.fits(0)))
}

// fits returns how many of the oldest pending appends fit, together, in a
// batch of n events. The caller holds w.mu.
func (w *writer) fits(n int) int {
	k := 0
	for k < len(w.pending) && n+len(w.pending[k].evs) <= w.maxBatch {
		n += len(w.pending[k].evs)
		k++
	}
	return k
}

// takeN removes the k oldest pending appends and returns them appended to
// dst. The caller holds w.mu and leads.
func (w *writer) takeN(dst []*request, k int) []*request {
	for _, r := range w.pending[:k] {
		r.taken = true
	}
	batch := append(dst, w.pending[:k]...)
	rest := copy(w.pending, w.pending[k:])
	clear(w.pending[rest:])
	w.pending = w.pending[:rest]
	return batch
}

// lead writes batch as one Pebble batch and hands leadership on as soon
// as Pebble has applied it, before its WAL sync returns, so that the next
// leader applies the next batch while this one syncs: to the caller of
// the oldest pending append (one not already signalled), or to nobody
// when none is pending. It then waits for the sync and settles the
// batch's appends in the tracker. self is the leading caller's own
// append; lead reports whether it is settled.
func (w *writer) lead(batch []*request, self *request) bool {
	b, err := w.build(batch)
	if err == nil {
		if err = w.t.err(); err == nil {
			if err = w.apply(b); err != nil {
				err = fmt.Errorf("commit batch: %w", err)
			}
		}
	}
	if errors.Is(err, errPebblePanic) {
		b = nil // Pebble may still hold it: never reused
	}
	settled := false
	if err != nil {
		// The store fails before the lead passes on, so that no later
		// batch's sync is taken to cover this one (see complete).
		settled = w.t.complete(batch, err, self)
	}
	w.mu.Lock()
	var next *request
	for _, p := range w.pending {
		if !p.leadSent {
			next = p
			break
		}
	}
	if next != nil {
		next.leadSent = true // the leader count passes to next's caller
	} else {
		w.leaders--
	}
	w.mu.Unlock()
	if next != nil {
		// Sent with w.mu released: waking a goroutine can cost a system
		// call. next stays pending, and its caller waiting, until then.
		next.done <- sigLead
	}
	if err == nil {
		if err = b.SyncWait(); err != nil {
			err = fmt.Errorf("sync: %w", err)
		}
		settled = w.t.complete(batch, err, self)
	}
	if b != nil {
		b.Close()
	}
	return settled
}

// errPebblePanic marks a batch whose commit panicked in Pebble.
var errPebblePanic = errors.New("pebble panicked")

// applyNoSyncWait commits b with a WAL sync request, without waiting for
// the sync. Pebble panics where it cannot go on (a failed WAL write, a
// log file it cannot create: its Fatalf, options.go); that is returned as
// an error wrapping errPebblePanic, so that the leader fails the store and
// every caller hears of it, instead of leaving the lead held and every
// later append waiting for ever.
func (w *writer) applyNoSyncWait(b *pebble.Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPebblePanic, p)
		}
	}()
	return w.db.ApplyNoSyncWait(b, pebble.Sync)
}

// addAppend checks r and assigns it, holding w.mu, or settles it (false).
// What must wait for in-flight appends to become durable waits with w.mu
// released (the leaders need it to hand on their role), and then checks
// again from the start, since other appends may have been assigned
// meanwhile.
func (w *writer) addAppend(r *request) bool {
	if len(w.heads) >= w.s.cfg.MaxCachedStreams {
		w.evictHeads()
	}
	n := uint64(len(r.evs))
	lookup := r.found // the pre-check found an id: look them all up
	waited := false
	counted := false // r counts in w.oversized
	// head is r's stream's cached head, looked up once w.mu is held for
	// good (below): nothing drops a head between there and the end.
	var head *streamHead
	defer func() {
		if counted {
			w.oversized--
			w.t.nudge() // wake the appends held back, whatever became of r
		}
	}()
	for {
		if err := w.t.err(); err != nil {
			r.err = err
			return false
		}
		// At most maxInFlight positions beyond the watermark; an append
		// that cannot fit waits until nothing is in flight and runs alone.
		d := w.t.durable.Load()
		oversized := w.lastPos != d && w.lastPos+n-d > w.maxInFlight
		if oversized && !counted {
			w.oversized++ // appends after this one hold back (below)
			counted = true
		}
		// An append that does not fit waits for what is in flight to
		// drain; later ones wait until it is through, so that it is not
		// overtaken forever.
		wait := oversized || !counted && w.oversized > 0
		// idWait: wait until target is durable (for the id lookup); else
		// until the watermark moves.
		var target uint64
		idWait := false
		// Idempotency: the caller's pre-check saw every id up to r.seen,
		// and recentLog holds the ids of every later append (when
		// r.seen >= recentFloor). Rare: a retry, a reused id, or a
		// pre-check too old to trust. Then every id is looked up in
		// Pebble, once everything assigned so far is durable.
		if !wait && (lookup && !waited || w.mayHaveAssignedSince(r.seen, r.hashes) && (r.seen < w.recentFloor || w.assignedSince(r.seen, r.hashes))) {
			wait, lookup, target = true, true, w.lastPos
			idWait = true
		}
		if !wait {
			if head = w.heads[r.stream]; head != nil || r.headEpoch == w.evictions+1 {
				break
			}
			// The stream's head is not cached: read it from Pebble with
			// w.mu released, then check again. Nothing is in flight on
			// an uncached stream, and if the cache still lacks it and
			// dropped nothing meanwhile, nothing was assigned to it
			// since, so the head read is current.
			// A second attempt (heads were dropped during the first)
			// reads it holding w.mu, so that it cannot be overtaken again.
			epoch, retry := w.evictions, r.headEpoch != 0
			if !retry {
				w.mu.Unlock()
			}
			v, err := durableVersion(w.db, r.stream, math.MaxUint64)
			if !retry {
				w.mu.Lock()
			}
			if err != nil {
				r.err = fmt.Errorf("load head: %w", err)
				return false
			}
			r.head, r.headEpoch = v, epoch+1
			continue
		}
		held := !oversized && !idWait
		if held {
			w.heldBack++
		}
		w.mu.Unlock()
		var err error
		if idWait {
			err = w.t.waitDurable(target)
		} else {
			err = w.t.waitMoved(d)
		}
		w.mu.Lock()
		if held {
			w.heldBack--
		}
		if err != nil {
			r.err = err
			return false
		}
		if idWait {
			r.seen, waited = max(r.seen, target), true
		}
	}
	// Everything up to r.seen is durable, and no later append holds one
	// of r's ids.
	if lookup && w.settleStoredIDs(r) {
		return false
	}
	if head == nil {
		head = &streamHead{version: r.head}
		w.heads[r.stream] = head
	}
	if !r.expected.Matches(head.version) {
		r.err = &events.WrongExpectedVersionError{Stream: r.stream, Expected: r.expected, Current: head.version}
		return false
	}
	r.version = head.version + 1
	r.position = w.lastPos + 1
	for i := range r.evs {
		patchValue(r.eventValue(i), r.position+uint64(i), r.version+uint64(i))
	}
	w.lastPos += n
	head.version += n
	head.pos = w.lastPos
	w.remember(r)
	w.t.push(r)
	return true
}

// mayHaveAssignedSince reports whether an append of one of hashes may
// have been assigned positions after seen; false is certain.
func (w *writer) mayHaveAssignedSince(seen uint64, hashes []uint64) bool {
	if w.recentSlots == nil {
		return false // nothing assigned since Open
	}
	for _, h := range hashes {
		if w.recentSlots[h%recentSlotCount] > seen {
			return true
		}
	}
	return false
}

// assignedSince reports whether recentLog holds one of hashes for an append
// whose positions end after seen. It scans the ring from the newest entry
// back to seen: about as many entries as were in flight when the caller
// looked, so a few dozen, without the cache misses of a map.
func (w *writer) assignedSince(seen uint64, hashes []uint64) bool {
	n := len(w.recentLog)
	for k := w.recentIDs - 1; k >= 0; k-- {
		e := w.recentLog[(w.recentHead+k)%n]
		if e.pos <= seen {
			return false
		}
		for _, h := range hashes {
			if e.hash == h {
				return true
			}
		}
	}
	return false
}

// remember records r's ids in recentLog, dropping the oldest ids beyond
// recentMax.
func (w *writer) remember(r *request) {
	if w.recentLog == nil {
		w.recentLog = make([]recentID, w.recentMax)
		w.recentSlots = make([]uint64, recentSlotCount)
	}
	last := r.last()
	for _, h := range r.hashes {
		w.recentSlots[h%recentSlotCount] = last
		if w.recentIDs == len(w.recentLog) {
			w.recentFloor = w.recentLog[w.recentHead].pos
			w.recentHead = (w.recentHead + 1) % len(w.recentLog)
			w.recentIDs--
		}
		w.recentLog[(w.recentHead+w.recentIDs)%len(w.recentLog)] = recentID{hash: h, pos: last}
		w.recentIDs++
	}
	// A caller whose pre-check reads the watermark at or past last skips
	// looking for these ids in recentLog: they are in Pebble by then, and
	// in the id filter, which r's own pre-check added them to.
}

// build writes the appends' keys into one batch, one keyspace at a time:
// stream index entries, then log entries (each holding its event's
// value), then id entries. Readers see a batch at once, so the order
// within it only matters to Pebble's memtable, whose skiplist inserter
// starts each insert from the previous one: the log keys of a batch are
// consecutive, and inserted one after another they cost almost nothing.
func (w *writer) build(batch []*request) (*pebble.Batch, error) {
	size := 0
	for _, r := range batch {
		size += len(r.buf) + len(r.evs)*(2*len(r.stream)+48)
		for i := range r.evs {
			size += len(r.evs[i].ID)
		}
	}
	b := w.db.NewBatchWithSize(size)
	var kb [128]byte
	for _, r := range batch {
		for i := range r.evs {
			key := eventKey(kb[:0], r.stream, r.version+uint64(i))
			op := b.SetDeferred(len(key), streamRefLen)
			copy(op.Key, key)
			streamRef(op.Value[:0], r.position+uint64(i))
			if err := op.Finish(); err != nil {
				return b, fmt.Errorf("build batch: %w", err)
			}
		}
	}
	for _, r := range batch {
		for i := range r.evs {
			if err := b.Set(posKey(kb[:0], r.position+uint64(i)), r.eventValue(i), nil); err != nil {
				return b, fmt.Errorf("build batch: %w", err)
			}
		}
	}
	for _, r := range batch {
		for i := range r.evs {
			key := idKey(kb[:0], r.evs[i].ID)
			op := b.SetDeferred(len(key), len(r.stream)+9)
			copy(op.Key, key)
			idRef(op.Value[:0], r.stream, r.version+uint64(i))
			if err := op.Finish(); err != nil {
				return b, fmt.Errorf("build batch: %w", err)
			}
		}
	}
	return b, nil
}

// evictHeads drops about half of the cached heads (map iteration order
// is random), skipping those with appends in flight: a dropped head is
// reloaded from Pebble, which must then hold it.
func (w *writer) evictHeads() {
	n := len(w.heads) / 2
	d := w.t.durable.Load()
	for k, h := range w.heads {
		if n == 0 {
			break
		}
		if h.pos <= d {
			delete(w.heads, k)
			n--
		}
	}
	if n < len(w.heads)/2 {
		w.evictions++
	}
}

// head returns the stream's cached head, loading it with one seek the
// first time. A stream the cache does not hold has nothing in flight (see
// evictHeads), so Pebble has its head.
func (w *writer) head(stream string) (*streamHead, error) {
	if h, ok := w.heads[stream]; ok {
		return h, nil
	}
	v, err := durableVersion(w.db, stream, math.MaxUint64)
	if err != nil {
		return nil, fmt.Errorf("load head: %w", err)
	}
	h := &streamHead{version: v}
	w.heads[stream] = h
	return h, nil
}

// settleStoredIDs looks r's ids up in Pebble and settles r when any is
// stored: a duplicate (every id stored on r's stream) gets the original
// events, anything else ErrDuplicateID. It returns false when no id is
// stored and r proceeds. Every append that could hold one of the ids is
// durable (see addAppend), so what it finds is durable.
func (w *writer) settleStoredIDs(r *request) bool {
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

// lookupID returns the stream and version an id is stored at.
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

// originals reads the stored events of a retried append.
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

// meta writes a snapshot or a pending-index update once every position
// assigned before it is durable, synced, in call order with other meta
// writes.
func (w *writer) meta(r *request) error {
	w.mu.Lock()
	err := w.t.err()
	if err == nil {
		err = r.ctx.Err()
	}
	if err == nil && r.kind == kindSnapshot {
		var head *streamHead
		if head, err = w.head(r.stream); err == nil && r.snap > head.version {
			err = fmt.Errorf("%w: snapshot at version %d, stream %s is at %d", events.ErrInvalidEvent, r.snap, r.stream, head.version)
		}
	}
	after := w.lastPos
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.t.wait(r.ctx, after); err != nil {
		return err // nothing written
	}

	w.metaMu.Lock()
	b := w.db.NewBatch()
	defer b.Close()
	var kb [128]byte
	switch r.kind {
	case kindSnapshot:
		key := snapKey(kb[:0], r.stream)
		v, closer, gerr := w.db.Get(key)
		switch {
		case errors.Is(gerr, pebble.ErrNotFound):
		case gerr != nil:
			w.metaMu.Unlock()
			return fmt.Errorf("read snapshot: %w", gerr)
		default:
			stored, _, derr := decodeSnapshotVersion(v)
			closer.Close()
			if derr != nil {
				w.metaMu.Unlock()
				return derr
			}
			if r.snap < stored {
				w.metaMu.Unlock()
				return nil // older than the stored one: ignored
			}
		}
		err = b.Set(key, r.value, nil)
	case kindPending:
		key := pendingKey(kb[:0], r.stream)
		if r.pending {
			err = b.Set(key, nil, nil)
		} else {
			err = b.Delete(key, nil)
		}
	}
	if err == nil {
		// The WAL order of meta writes is fixed here, under metaMu; the
		// sync is awaited outside it, so concurrent ones share it.
		err = w.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	w.metaMu.Unlock()
	if err == nil {
		err = b.SyncWait()
	}
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		w.t.fail(err)
	}
	return err
}

// tracker holds the assigned appends that are not durable yet, in
// position order, and the durable watermark.
type tracker struct {
	mu    sync.Mutex
	queue []*request // queue[head:] in position order
	head  int
	// failed is the first failed commit: every request then fails and
	// the watermark stops, since what follows the failed positions can
	// never become a gap-free log. broken mirrors failed != nil for
	// lock-free checks.
	failed error
	broken atomic.Bool
	// moved is closed (and dropped) when the watermark advances or the
	// store fails, if anyone waits for that (wait, waitDurable).
	moved chan struct{}

	durable atomic.Uint64     // the watermark: every position up to it is durable
	wm      *events.Watermark // the store's, which readers and Follow use
}

// err returns the failure, if any.
func (t *tracker) err() error {
	if !t.broken.Load() {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// push queues r, whose positions follow every queued request's. The
// caller holds writer.mu, which orders pushes with positions.
func (t *tracker) push(r *request) {
	t.mu.Lock()
	t.queue = append(t.queue, r)
	t.mu.Unlock()
}

// complete records that batch's appends are durable, or failed with err,
// and settles what that decides, signalling the callers except self's
// (the caller of complete); it reports whether self is settled.
//
// A written batch is durable with everything before it: batches reach
// Pebble's WAL one at a time in position order (one leader at a time,
// the lead passing on only once a batch is in the WAL, and the store
// failing before it passes on from a batch that is not), and a WAL sync
// makes the log durable up to the synced record (the WAL is one
// sequential log, and Pebble rotates to a new log file only once the old
// one is synced and closed; a failed sync fails every later one). So the
// watermark advances over every queued append up to batch's last
// position, whether or not the leaders of earlier batches have woken from
// their own syncs yet: the first leader to wake settles the callers of
// every batch its sync covered.
//
// A failed write fails the store: every queued append whose batch was
// completed gets the error, and no position from there on becomes
// durable (later batches are refused here).
func (t *tracker) complete(batch []*request, err error, self *request) bool {
	t.mu.Lock()
	for _, r := range batch {
		r.committed = true
	}
	if err == nil && t.failed != nil {
		err = t.failed // an earlier write failed: batch cannot become durable
	}
	if err != nil {
		for _, r := range batch {
			if r.err == nil && !r.durable {
				r.err = err
				r.duplicate = nil
			}
		}
		t.failLocked(err, self)
		t.mu.Unlock()
		return self != nil && self.committed
	}
	if len(batch) == 0 {
		t.mu.Unlock()
		return self != nil && self.durable
	}
	// Pop the queue up to the batch's end; its callers are signalled once
	// the lock is released (assign pushes under it), into a stack array
	// when few.
	end := batch[len(batch)-1].last()
	var stack [64]*request
	settledReqs := stack[:0]
	q := t.queue
	i := t.head
	for ; i < len(q) && q[i].last() <= end; i++ {
		q[i].durable = true
		if q[i] != self {
			settledReqs = append(settledReqs, q[i])
		}
		q[i] = nil
	}
	if i == t.head {
		// An earlier completion covered batch already.
		t.mu.Unlock()
		return self != nil && self.durable
	}
	t.head = i
	if t.head == len(q) {
		t.queue, t.head = q[:0], 0
	} else if t.head > len(q)/2 {
		n := copy(q, q[t.head:])
		clear(q[n:])
		t.queue, t.head = q[:n], 0
	}
	t.durable.Store(end)
	t.wm.Advance(end) // readers see the events before anyone hears back
	t.broadcast()
	t.mu.Unlock()
	for _, r := range settledReqs {
		r.done <- sigSettled
	}
	return self != nil && self.durable
}

// failLocked records err as the store's failure and fails every queued
// append whose batch has been written (or failed), settling it; self's
// caller is the one calling. Appends not written yet are failed when
// their leader completes them (complete refuses every batch once the
// store failed).
func (t *tracker) failLocked(err error, self *request) {
	if t.failed == nil {
		t.failed = err
		t.broken.Store(true)
	}
	kept := t.queue[:0]
	for _, q := range t.queue[t.head:] {
		if !q.committed {
			kept = append(kept, q)
			continue
		}
		if q.err == nil {
			q.err = t.failed
			q.duplicate = nil
		}
		if q != self {
			q.done <- sigSettled
		}
	}
	clear(t.queue[len(kept):])
	t.queue, t.head = kept, 0
	t.broadcast()
}

// fail records a failed write outside the queue (a meta write).
func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(err, nil)
}

func (t *tracker) broadcast() {
	if t.moved != nil {
		close(t.moved)
		t.moved = nil
	}
}

// nudge wakes whoever waits in waitMoved.
func (t *tracker) nudge() {
	t.mu.Lock()
	t.broadcast()
	t.mu.Unlock()
}

// waitMoved waits until the watermark is no longer d, the store failed,
// or someone nudged.
func (t *tracker) waitMoved(d uint64) error {
	moved, err := t.next(func(v uint64) bool { return v != d })
	if moved != nil {
		<-moved
	}
	return err
}

// waitDurable waits until pos is durable or the store failed. It has no
// context: what it waits for is in flight and finishes on its own.
func (t *tracker) waitDurable(pos uint64) error { return t.wait(context.Background(), pos) }

// wait waits until pos is durable, the store failed or ctx is done.
func (t *tracker) wait(ctx context.Context, pos uint64) error {
	for t.durable.Load() < pos {
		moved, err := t.next(func(v uint64) bool { return v >= pos })
		if moved == nil {
			return err
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// next returns the channel closed at the watermark's next move (or
// nudge), or nil with the store's failure, or nil when ready holds for
// the watermark already.
func (t *tracker) next(ready func(durable uint64) bool) (<-chan struct{}, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil {
		return nil, t.failed
	}
	if ready(t.durable.Load()) {
		return nil, nil
	}
	if t.moved == nil {
		t.moved = make(chan struct{})
	}
	return t.moved, nil
}
