package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b6368a97/engine/events"
)

// Store is an in-memory events.Store. Create it with New or NewWithClock;
// the zero value is not usable.
type Store struct {
	now   func() time.Time
	epoch string // set by NewWithClock, never changed

	// wm is advanced after every commit and closed by Close; Follow waits
	// on it. It has its own lock, so waiters never hold mu.
	wm events.Watermark

	// closed is set under mu by Close. It is atomic so that calls can
	// fail fast before validating input or taking the lock; they check it
	// again under the lock.
	closed atomic.Bool

	mu sync.RWMutex
	// log holds every event in position order, in chunks of chunkSize so
	// that growing it never copies what is stored: position p is
	// log[(p-1)/chunkSize][(p-1)%chunkSize], and head is the number of
	// events, which makes positions gap-free by construction.
	log  [][]events.Event
	head uint64
	// streams maps a stream id to the positions of its events: version v
	// is at positions[v-1].
	streams map[string]*stream
	// ids maps every stored event id to its position, for idempotent
	// retries and ErrDuplicateID.
	ids       map[string]uint64
	snapshots map[string]events.Snapshot
	pending   map[string]struct{}
}

type stream struct {
	positions []uint64
}

// chunkSize is how many events one chunk of the log holds.
const chunkSize = 4096

// at returns the event at position p (1 ≤ p ≤ head). Callers hold mu.
func (s *Store) at(p uint64) *events.Event {
	return &s.log[(p-1)/chunkSize][(p-1)%chunkSize]
}

// push stores e at position head+1. Callers hold mu exclusively.
func (s *Store) push(e events.Event) {
	if s.head%chunkSize == 0 {
		s.log = append(s.log, make([]events.Event, 0, chunkSize))
	}
	last := len(s.log) - 1
	s.log[last] = append(s.log[last], e)
	s.head++
}

var _ events.Store = (*Store)(nil)

// New returns an empty store that stamps events with time.Now.
func New() *Store { return NewWithClock(time.Now) }

// NewWithClock returns an empty store that stamps events without a time
// with now(). A nil now means time.Now.
func NewWithClock(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:       now,
		epoch:     events.NewEpoch(),
		streams:   make(map[string]*stream),
		ids:       make(map[string]uint64),
		snapshots: make(map[string]events.Snapshot),
		pending:   make(map[string]struct{}),
	}
}

// Epoch implements events.Store: a new random epoch per store, since the
// data lives and dies with the Store value.
func (s *Store) Epoch() string { return s.epoch }

// Append implements events.Store.
func (s *Store) Append(ctx context.Context, streamID string, expected events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", events.Clip(streamID, 80), err)
	}
	if s.closed.Load() {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", events.Clip(streamID, 80), events.ErrClosed)
	}
	if err := events.ValidateAppend(streamID, expected, evs); err != nil {
		return events.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	// Copy the payloads before taking the lock, in one allocation per
	// batch: the caller may reuse its buffers as soon as we return.
	size := 0
	for i := range evs {
		size += len(events.NormalizeData(evs[i].Data))
	}
	buf := make([]byte, 0, size)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return events.AppendResult{}, fmt.Errorf("append %s: %w", streamID, events.ErrClosed)
	}
	st := s.streams[streamID]

	if res, dup, err := s.retried(streamID, evs); err != nil || dup {
		return res, err
	}
	var current uint64
	if st != nil {
		current = uint64(len(st.positions))
	}
	if !expected.Matches(current) {
		return events.AppendResult{}, &events.WrongExpectedVersionError{Stream: streamID, Expected: expected, Current: current}
	}
	if st == nil {
		// Clone: the id becomes part of every stored event and must not
		// alias a caller's buffer.
		streamID = strings.Clone(streamID)
		st = &stream{}
		s.streams[streamID] = st
	}

	now := s.now()
	clock := func() time.Time { return now }
	out := make([]events.Event, len(evs))
	pos := s.head
	for i, e := range evs {
		start := len(buf)
		buf = append(buf, events.NormalizeData(e.Data)...)
		pos++
		current++
		e.Stream = streamID
		e.Version = current
		e.Position = pos
		e.Time = events.NormalizeTime(e.Time, clock)
		e.Data = buf[start:len(buf):len(buf)]
		out[i] = e
		s.push(e)
		s.ids[e.ID] = pos
		st.positions = append(st.positions, pos)
	}
	s.wm.Advance(pos)
	return events.AppendResult{Events: out}, nil
}

// retried applies the idempotency rule: when every id of evs is stored in
// streamID it returns the stored events with dup set; when some are stored,
// or stored elsewhere, ErrDuplicateID. Callers hold mu.
func (s *Store) retried(streamID string, evs []events.Event) (events.AppendResult, bool, error) {
	found := 0
	for _, e := range evs {
		pos, ok := s.ids[e.ID]
		if !ok {
			continue
		}
		if other := s.at(pos).Stream; other != streamID {
			return events.AppendResult{}, false, fmt.Errorf("append %s: %w: event %s is stored in %s", streamID, events.ErrDuplicateID, e.ID, other)
		}
		found++
	}
	switch found {
	case 0:
		return events.AppendResult{}, false, nil
	case len(evs):
		out := make([]events.Event, len(evs))
		for i, e := range evs {
			out[i] = *s.at(s.ids[e.ID])
		}
		return events.AppendResult{Events: out, Duplicate: true}, true, nil
	}
	return events.AppendResult{}, false, fmt.Errorf("append %s: %w: %d of %d event ids are stored already", streamID, events.ErrDuplicateID, found, len(evs))
}

// ReadStream implements events.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, after uint64, limit int) ([]events.Event, error) {
	if err := s.check(ctx, "read", streamID); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("read %s: %w", streamID, events.ErrClosed)
	}
	st := s.streams[streamID]
	if st == nil || after >= uint64(len(st.positions)) {
		return []events.Event{}, nil
	}
	positions := st.positions[after:]
	if limit > 0 && limit < len(positions) {
		positions = positions[:limit]
	}
	out := make([]events.Event, len(positions))
	for i, p := range positions {
		out[i] = *s.at(p)
	}
	return out, nil
}

// ReadAll implements events.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "read log"); err != nil {
		return nil, err
	}
	if after >= s.head {
		return []events.Event{}, nil
	}
	n := s.head - after
	if limit > 0 && uint64(limit) < n {
		n = uint64(limit)
	}
	out := make([]events.Event, 0, n)
	for p := after + 1; uint64(len(out)) < n; {
		// Copy the rest of p's chunk, or as much of it as is wanted.
		chunk := s.log[(p-1)/chunkSize][(p-1)%chunkSize:]
		chunk = chunk[:min(uint64(len(chunk)), n-uint64(len(out)))]
		out = append(out, chunk...)
		p += uint64(len(chunk))
	}
	return out, nil
}

// StreamVersion implements events.Store.
func (s *Store) StreamVersion(ctx context.Context, streamID string) (uint64, error) {
	if err := s.check(ctx, "stream version", streamID); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("stream version %s: %w", streamID, events.ErrClosed)
	}
	if st := s.streams[streamID]; st != nil {
		return uint64(len(st.positions)), nil
	}
	return 0, nil
}

// Head implements events.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "head"); err != nil {
		return 0, err
	}
	return s.head, nil
}

// Follow implements events.Store.
func (s *Store) Follow(ctx context.Context, after uint64, fn func(events.Event) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	// ReadAll and the watermark both report ErrClosed once Close ran, so
	// events.Follow ends with it whether it is reading or waiting.
	return events.Follow(ctx, s, &s.wm, after, fn)
}

// SaveSnapshot implements events.Store.
func (s *Store) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := s.check(ctx, "save snapshot", snap.Stream); err != nil {
		return err
	}
	data := slices.Clone(snap.Data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("save snapshot %s: %w", snap.Stream, events.ErrClosed)
	}
	var version uint64
	st := s.streams[snap.Stream]
	if st != nil {
		version = uint64(len(st.positions))
	}
	if snap.Version > version {
		return fmt.Errorf("save snapshot %s: %w: snapshot version %d is beyond stream version %d", snap.Stream, events.ErrInvalidEvent, snap.Version, version)
	}
	if old, ok := s.snapshots[snap.Stream]; ok && old.Version > snap.Version {
		return nil
	}
	name := snap.Stream
	if st == nil {
		name = strings.Clone(name)
	}
	s.snapshots[name] = events.Snapshot{Stream: name, Version: snap.Version, Data: data}
	return nil
}

// LoadSnapshot implements events.Store.
func (s *Store) LoadSnapshot(ctx context.Context, streamID string) (events.Snapshot, error) {
	if err := s.check(ctx, "load snapshot", streamID); err != nil {
		return events.Snapshot{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", streamID, events.ErrClosed)
	}
	snap, ok := s.snapshots[streamID]
	if !ok {
		return events.Snapshot{}, fmt.Errorf("load snapshot %s: %w", streamID, events.ErrNotFound)
	}
	return snap, nil
}

// SetPending implements events.Store.
func (s *Store) SetPending(ctx context.Context, streamID string, pending bool) error {
	if err := s.check(ctx, "set pending", streamID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("set pending %s: %w", streamID, events.ErrClosed)
	}
	if pending {
		if _, ok := s.pending[streamID]; !ok {
			s.pending[strings.Clone(streamID)] = struct{}{}
		}
	} else {
		delete(s.pending, streamID)
	}
	return nil
}

// Pending implements events.Store.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx, "pending"); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(s.pending))
	for id := range s.pending {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// Close implements events.Store. Appends hold the lock for their whole
// commit, so taking it here waits for those in flight.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil
	}
	s.closed.Store(true)
	// Drop the data so a closed store that is still referenced does not
	// pin it; every method checks closed first.
	s.log, s.streams, s.ids, s.snapshots, s.pending = nil, nil, nil, nil, nil
	s.wm.Close()
	return nil
}

// usable is the prologue of calls that name no stream: a done context or
// a closed store fail them.
func (s *Store) usable(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, events.ErrClosed)
	}
	return nil
}

// check is the common prologue of calls that name a stream: a done
// context, a closed store and a malformed stream id all fail before the
// lock is taken.
func (s *Store) check(ctx context.Context, op, streamID string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, events.Clip(streamID, 80), err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s %s: %w", op, events.Clip(streamID, 80), events.ErrClosed)
	}
	if _, err := events.ParseStreamID(streamID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Streams implements events.Store. It sorts the kind's streams on every
// call: the reference store is for tests and small deployments.
func (s *Store) Streams(ctx context.Context, kind, after string, limit int) ([]events.StreamInfo, error) {
	if err := s.usable(ctx, "streams "+events.Clip(kind, 40)); err != nil {
		return nil, err
	}
	if err := events.ValidateKind(kind); err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	prefix := kind + ":"
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return nil, fmt.Errorf("streams %s: %w", kind, events.ErrClosed)
	}
	out := []events.StreamInfo{}
	for id, st := range s.streams {
		if strings.HasPrefix(id, prefix) && id > after && len(st.positions) > 0 {
			out = append(out, events.StreamInfo{Stream: id, Version: uint64(len(st.positions))})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b events.StreamInfo) int { return strings.Compare(a.Stream, b.Stream) })
	if limit > 0 && len(out) > limit {
		out = out[:limit:limit]
	}
	return out, nil
}
