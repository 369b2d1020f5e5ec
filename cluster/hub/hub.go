package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/events"
)

// Config configures a Hub. Zero values take the documented defaults.
type Config struct {
	// Store is the shared event log. Required.
	Store events.Store
	// HasPresence reports whether a stream's kind has presence (rooms).
	// Default: no stream has.
	HasPresence func(stream string) bool
	// LocalMembers is called whenever the set of Member names of this
	// node's live subscriptions to a presence stream changes (also to
	// empty), with the new set, sorted. Calls for one stream are in order
	// and never overlap; they run on a per-stream goroutine with no hub
	// lock held, so they may block briefly (a network request). A set
	// that changes again while a call runs is reported by the next call
	// with its newest value. Default: a no-op.
	LocalMembers func(stream string, members []string)
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// HoldLimit bounds the live deliveries held per subscription during
	// its catch-up; beyond it the subscription ends with Overflow.
	// Default 1024.
	HoldLimit int
	// FollowBackoff is the first wait before the follower restarts after
	// Follow failed; it doubles on each failure in a row, up to 64 times
	// this. Default 250 ms.
	FollowBackoff time.Duration
}

const (
	defaultHoldLimit     = 1024
	defaultFollowBackoff = 250 * time.Millisecond
	maxBackoffFactor     = 64
)

// lifecycle states of a Hub.
const (
	stateNew = iota
	stateStarting
	stateRunning
	stateStopped
)

// Hub is a node-local fan-out of the global log to subscriptions. Create
// it with New, then Start; Stop ends it. Safe for concurrent use.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu      sync.RWMutex
	state   int
	entries map[string]*entry
	ctx     context.Context // the hub's life: set at Start, cancelled by Stop
	cancel  context.CancelFunc
	bg      sync.WaitGroup // the follower and the catch-up readers

	rmu       sync.Mutex
	reporters map[string]*reporter
	rwg       sync.WaitGroup // running reporters

	hooks hooks // tests only
}

// hooks let tests stop at chosen points; nil fields are skipped.
type hooks struct {
	// registered runs after a catch-up reader registered a subscription,
	// before it reads the stream's version.
	registered func(s *sub)
	// followFailed runs after the follower ended the subscriptions for a
	// Follow error, before it waits to restart.
	followFailed func(err error)
}

// New returns a Hub; it does nothing until Start.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("hub: Config.Store is required")
	}
	if cfg.HasPresence == nil {
		cfg.HasPresence = func(string) bool { return false }
	}
	if cfg.LocalMembers == nil {
		cfg.LocalMembers = func(string, []string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HoldLimit <= 0 {
		cfg.HoldLimit = defaultHoldLimit
	}
	if cfg.FollowBackoff <= 0 {
		cfg.FollowBackoff = defaultFollowBackoff
	}
	return &Hub{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "hub"),
		entries:   make(map[string]*entry),
		reporters: make(map[string]*reporter),
	}, nil
}

// Start reads the store's Head and starts the follower from there.
// Subscribe fails until Start has returned nil. A Hub starts once.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.state != stateNew {
		h.mu.Unlock()
		return errors.New("hub: Start called twice, or after Stop")
	}
	h.state = stateStarting
	h.mu.Unlock()

	head, err := h.cfg.Store.Head(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateStarting { // stopped meanwhile
		return fmt.Errorf("hub: %w: stopped while starting", actors.ErrUnavailable)
	}
	if err != nil {
		h.state = stateNew
		return fmt.Errorf("hub: start: %w", err)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.state = stateRunning
	h.bg.Add(1)
	go h.follow(h.ctx, head)
	return nil
}

// Stop ends the follower, the catch-up readers and every subscription.
// It does not call Overflow: the transport closes its connections itself
// on shutdown. The subscriptions' members leave presence, so LocalMembers
// is called with the emptied sets; Stop waits for the follower, the
// readers and those calls, or returns ctx's error when ctx ends first
// (they then end on their own). Stop is idempotent; Subscribe fails with
// actors.ErrUnavailable after it.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	state := h.state
	h.state = stateStopped
	cancel := h.cancel
	h.mu.Unlock()
	if state == stateStopped {
		return nil
	}
	if cancel != nil {
		cancel()
	}
	h.detachAll()
	if err := waitGroup(ctx, &h.bg); err != nil {
		return fmt.Errorf("hub: stop: %w", err)
	}
	if err := waitGroup(ctx, &h.rwg); err != nil {
		return fmt.Errorf("hub: stop: %w", err)
	}
	return nil
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// running reports whether the hub serves subscriptions, and its context.
func (h *Hub) running() (context.Context, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.ctx, h.state == stateRunning
}

// follow is the follower goroutine: Follow from after, dispatching every
// event; on an error, end every registered subscription with Overflow and
// restart from the last dispatched position after a back-off.
func (h *Hub) follow(ctx context.Context, after uint64) {
	defer h.bg.Done()
	backoff := h.cfg.FollowBackoff
	for {
		start := after
		err := h.cfg.Store.Follow(ctx, after, func(e events.Event) error {
			h.dispatch(e)
			after = e.Position
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if after != start {
			backoff = h.cfg.FollowBackoff
		}
		n := h.dropAll()
		h.log.Warn("follower failed; subscriptions ended, restarting after a back-off",
			"after", after, "ended", n, "backoff", backoff, "err", err)
		if f := h.hooks.followFailed; f != nil {
			f(err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoffFactor*h.cfg.FollowBackoff)
	}
}

// dispatch hands one event of the global log to its stream's entry.
func (h *Hub) dispatch(ev events.Event) {
	h.mu.RLock()
	e := h.entries[ev.Stream]
	h.mu.RUnlock()
	if e == nil {
		return
	}
	shared := new(events.Event)
	*shared = ev
	h.deliverAll(e, actors.Delivery{Stream: ev.Stream, Event: shared})
}

// deliverAll offers d to every subscription of e, and removes those that
// ended or overflowed.
func (h *Hub) deliverAll(e *entry, d actors.Delivery) {
	var gone, over []*sub
	e.mu.Lock()
	for s := range e.subs {
		keep, overflowed := s.offer(d, h.cfg.HoldLimit)
		if !keep {
			gone = append(gone, s)
		}
		if overflowed {
			over = append(over, s)
		}
	}
	if len(gone) > 0 {
		over = append(over, h.leaveLocked(e, gone)...)
	}
	empty := len(e.subs) == 0
	e.mu.Unlock()
	overflow(over)
	if empty {
		h.removeIfEmpty(e)
	}
}

// overflow tells each sink it overflowed, with no lock held.
func overflow(list []*sub) {
	for _, s := range list {
		s.sink.Overflow()
	}
}

// register adds s to its stream's entry in holding mode.
func (h *Hub) register(s *sub) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateRunning {
		return errStopped
	}
	e := h.entries[s.stream]
	created := e == nil
	if created {
		e = newEntry(s.stream, h.cfg.HasPresence(s.stream))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endedLocked() {
		return errEnded
	}
	if created {
		h.entries[s.stream] = e
	}
	e.subs[s] = struct{}{}
	s.entry, s.holding = e, true
	return nil
}

// remove takes s out of its entry, if it is in one, and calls Overflow
// for the subscriptions that overflowed on the presence change.
func (h *Hub) remove(s *sub) {
	s.mu.Lock()
	e := s.entry
	s.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	over := h.leaveLocked(e, []*sub{s})
	empty := len(e.subs) == 0
	e.mu.Unlock()
	overflow(over)
	if empty {
		h.removeIfEmpty(e)
	}
}

// removeIfEmpty forgets e when it has no subscription left.
func (h *Hub) removeIfEmpty(e *entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) == 0 && h.entries[e.stream] == e {
		delete(h.entries, e.stream)
	}
}

// dropAll ends every registered subscription with Overflow (the follower
// failed) and returns how many there were.
func (h *Hub) dropAll() int {
	over := h.endAll(func(s *sub) { s.dropLocked() })
	overflow(over)
	return len(over)
}

// detachAll ends every registered subscription without Overflow (Stop).
func (h *Hub) detachAll() {
	h.endAll(func(s *sub) { s.detachLocked() })
}

// endAll ends every registered subscription with end and forgets every
// entry. It holds h.mu throughout, so that no entry for the same stream
// is created (and reports its members) before the old one has reported
// its emptied set.
func (h *Hub) endAll(end func(*sub)) []*sub {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ended []*sub
	for _, e := range h.entries {
		e.mu.Lock()
		ended = append(ended, h.endAllLocked(e, end)...)
		e.mu.Unlock()
	}
	clear(h.entries)
	return ended
}

// endAllLocked ends every subscription of e with end (under its lock),
// empties e and reports its emptied local member set. It returns the
// subscriptions that were not ended before.
func (h *Hub) endAllLocked(e *entry, end func(*sub)) []*sub {
	var ended []*sub
	for s := range e.subs {
		s.mu.Lock()
		if !s.endedLocked() {
			end(s)
			ended = append(ended, s)
		}
		s.entry, s.joined = nil, false
		s.mu.Unlock()
	}
	clear(e.subs)
	if len(e.members) > 0 {
		clear(e.members)
		h.reportLocked(e)
	}
	return ended
}

// SetMembers sets the cluster-wide member set of a presence stream (sent
// by the stream's owner). The live local subscribers whose last presence
// list differs from the new view (members ∪ local members) get it. The
// set is kept while the stream has an entry (a live subscription, or one
// finishing its catch-up); for a stream without one it is ignored, not
// remembered: a later first subscriber sees only the local members until
// the owner sends the set again.
func (h *Hub) SetMembers(stream string, members []string) {
	h.mu.RLock()
	e := h.entries[stream]
	h.mu.RUnlock()
	if e == nil || !e.presence {
		return
	}
	merged := slices.Clone(members)
	slices.Sort(merged)
	merged = slices.Compact(merged)
	e.mu.Lock()
	e.merged = merged
	gone, over := h.broadcastLocked(e)
	over = append(over, h.leaveLocked(e, gone)...)
	empty := len(e.subs) == 0
	e.mu.Unlock()
	overflow(over)
	if empty {
		h.removeIfEmpty(e)
	}
}

// PresenceStreams returns the presence streams with local subscriptions
// (members or watchers without a member name) and each one's local member
// set, sorted (empty for watchers only): what to report again after a
// topology change, and periodically, so that the owners keep sending
// these streams' member sets here.
func (h *Hub) PresenceStreams() map[string][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string][]string)
	for stream, e := range h.entries {
		e.mu.Lock()
		if e.presence && len(e.subs) > 0 {
			out[stream] = append([]string{}, e.localLocked()...)
		}
		e.mu.Unlock()
	}
	return out
}

// Local returns a presence stream's local member set and whether the
// stream has local subscriptions at all (watching).
func (h *Hub) Local(stream string) (members []string, watching bool) {
	h.mu.RLock()
	e := h.entries[stream]
	h.mu.RUnlock()
	if e == nil || !e.presence {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.localLocked(), len(e.subs) > 0
}
