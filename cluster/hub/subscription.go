package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

const (
	// catchUpPage is how many stored events a reader reads at a time, and
	// how far behind the stream's version a reader may be when it
	// registers.
	catchUpPage = 256
	// readRounds bounds the rounds a reader reads unregistered before it
	// registers however far behind it is (a stream faster than the sink).
	readRounds = 8
)

var (
	// errEnded: the subscription ended (Cancel, Overflow, Stop, a Follow
	// error) while it was being served.
	errEnded = errors.New("subscription ended")
	// errFull: the sink refused a delivery.
	errFull = errors.New("sink full")
	// errStopped: the hub does not serve subscriptions.
	errStopped = fmt.Errorf("hub: %w: not running", actors.ErrUnavailable)
)

// sub is one subscription. Its state moves from reading (not registered)
// to holding (registered, deliveries held) to live (registered,
// deliveries handed to the sink), and ends at most once: cancelled,
// dropped (Overflow called) or detached (Stop). mu guards the state and
// serialises every Sink.Enqueue; last is the highest event version the
// sink has (or From, or the version read at subscription).
type sub struct {
	h          *Hub
	stream     string
	sink       actors.Sink
	member     string // "" unless the stream has presence
	from       *uint64
	subscribed func(uint64)

	mu        sync.Mutex
	version   uint64
	last      uint64
	entry     *entry // the entry it is registered with, nil when not
	holding   bool
	held      []*events.Event
	live      bool
	joined    bool     // counted in entry.members
	told      bool     // a presence list was delivered
	presence  []string // the last presence list delivered
	cancelled bool
	dropped   bool
	detached  bool
	stopRead  context.CancelFunc
}

// Subscribe starts a subscription with the semantics of
// actors.Runtime.Subscribe (see actors.SubscribeRequest); see the package
// documentation for how. It checks no access: the caller does. Errors:
// decider.ErrInvalid without a sink, events.ErrInvalidStream,
// actors.ErrUnavailable when the hub is not running or the store cannot
// tell the stream's version.
func (h *Hub) Subscribe(ctx context.Context, req actors.SubscribeRequest) (actors.Subscription, error) {
	if req.Sink == nil {
		return nil, fmt.Errorf("%w: subscribe to %s without a sink", decider.ErrInvalid, req.Stream)
	}
	if _, err := events.ParseStreamID(req.Stream); err != nil {
		return nil, err
	}
	hctx, ok := h.running()
	if !ok {
		return nil, errStopped
	}
	s := &sub{h: h, stream: req.Stream, sink: req.Sink, subscribed: req.Subscribed}
	if h.cfg.HasPresence(req.Stream) {
		s.member = req.Member
	}
	var err error
	if req.From == nil {
		err = s.startLive(ctx, hctx)
	} else {
		from := *req.From
		s.from = &from
		err = s.startCatchUp(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// unavailable wraps a store error met while subscribing.
func unavailable(stream string, err error) error {
	return fmt.Errorf("%w: subscribe to %s: %w", actors.ErrUnavailable, stream, err)
}

// startLive serves a subscription without From: registered before its
// version is read, it has nothing to read, and what was held meanwhile
// is handed over on the caller's goroutine right after Subscribed.
func (s *sub) startLive(ctx, hctx context.Context) error {
	if err := s.h.register(s); err != nil {
		return err
	}
	v, err := s.h.cfg.Store.StreamVersion(ctx, s.stream)
	if err != nil {
		s.Cancel()
		return unavailable(s.stream, err)
	}
	s.mu.Lock()
	s.version, s.last = v, v
	s.mu.Unlock()
	if s.subscribed != nil {
		s.subscribed(v)
	}
	s.finish(hctx, s.goLive(hctx, false))
	return nil
}

// startCatchUp serves a subscription with From: it reads the version,
// calls Subscribed and starts the reader.
func (s *sub) startCatchUp(ctx context.Context) error {
	v, err := s.h.cfg.Store.StreamVersion(ctx, s.stream)
	if err != nil {
		return unavailable(s.stream, err)
	}
	h := s.h
	h.mu.Lock()
	if h.state != stateRunning {
		h.mu.Unlock()
		return errStopped
	}
	rctx, cancel := context.WithCancel(h.ctx)
	h.bg.Add(1)
	h.mu.Unlock()
	s.mu.Lock()
	s.version, s.last, s.stopRead = v, *s.from, cancel
	s.mu.Unlock()
	if s.subscribed != nil {
		s.subscribed(v)
	}
	go func() {
		defer h.bg.Done()
		defer cancel()
		s.finish(rctx, s.catchUp(rctx))
	}()
	return nil
}

// catchUp is the reader: it reads unregistered up to close to the
// stream's version, registers, reads the last stretch and goes live.
func (s *sub) catchUp(ctx context.Context) error {
	to := s.Version()
	for round := 1; ; round++ {
		before := s.lastVersion()
		if err := s.readUp(ctx, to); err != nil {
			return err
		}
		last := s.lastVersion()
		if last-before <= catchUpPage || round >= readRounds {
			break // a short round: few events can have come meanwhile
		}
		v, err := s.h.cfg.Store.StreamVersion(ctx, s.stream)
		if err != nil {
			return fmt.Errorf("stream version of %s: %w", s.stream, err)
		}
		if v <= last+catchUpPage {
			break
		}
		to = v
	}
	if err := s.h.register(s); err != nil {
		return err
	}
	if f := s.h.hooks.registered; f != nil {
		f(s)
	}
	v, err := s.h.cfg.Store.StreamVersion(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("stream version of %s: %w", s.stream, err)
	}
	if err := s.readUp(ctx, v); err != nil {
		return err
	}
	return s.goLive(ctx, true)
}

// readUp hands the sink the stored events after last up to version to, a
// page at a time, waiting for room before each.
func (s *sub) readUp(ctx context.Context, to uint64) error {
	for {
		s.mu.Lock()
		if s.endedLocked() {
			s.mu.Unlock()
			return errEnded
		}
		last := s.last
		s.mu.Unlock()
		if last >= to {
			return nil
		}
		page, err := s.h.cfg.Store.ReadStream(ctx, s.stream, last, int(min(to-last, catchUpPage)))
		if err != nil {
			return fmt.Errorf("read %s after %d: %w", s.stream, last, err)
		}
		if len(page) == 0 {
			return fmt.Errorf("read %s after %d: no events, its version is at least %d", s.stream, last, to)
		}
		for i := range page {
			if err := s.sink.WaitRoom(ctx); err != nil {
				return err
			}
			if err := s.put(&page[i]); err != nil {
				return err
			}
		}
	}
}

// put hands a stored event to the sink unless it has it already.
func (s *sub) put(e *events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endedLocked() {
		return errEnded
	}
	return s.enqueueEventLocked(e)
}

// enqueueEventLocked hands e to the sink when it is the next version,
// skips it when the sink has it, and fails on a gap.
func (s *sub) enqueueEventLocked(e *events.Event) error {
	switch {
	case e.Version <= s.last:
		return nil
	case e.Version != s.last+1:
		return fmt.Errorf("%s: version %d follows %d", s.stream, e.Version, s.last)
	case !s.sink.Enqueue(actors.Delivery{Stream: s.stream, Event: e}):
		return errFull
	}
	s.last = e.Version
	return nil
}

// goLive hands over what was held, reading from the store what is
// missing before it (waiting for room before each event when wait is
// set), then switches to direct delivery under the entry's lock, where no
// delivery is in flight, and joins presence.
func (s *sub) goLive(ctx context.Context, wait bool) error {
	for {
		if err := s.release(ctx, wait); err != nil {
			return err
		}
		s.mu.Lock()
		e := s.entry
		s.mu.Unlock()
		if e == nil {
			return errEnded
		}
		e.mu.Lock()
		s.mu.Lock()
		if s.endedLocked() || s.entry != e {
			s.mu.Unlock()
			e.mu.Unlock()
			return errEnded
		}
		if len(s.held) > 0 {
			s.mu.Unlock()
			e.mu.Unlock()
			continue
		}
		s.holding, s.held, s.live = false, nil, true
		join := e.presence && s.member != ""
		s.joined = join
		s.mu.Unlock()
		var over []*sub
		if e.presence {
			member := ""
			if join {
				member = s.member
			}
			over = s.h.joinLocked(e, member)
		}
		empty := len(e.subs) == 0
		e.mu.Unlock()
		overflow(over)
		if empty {
			s.h.removeIfEmpty(e)
		}
		return nil
	}
}

// release hands the held events to the sink until none is left.
func (s *sub) release(ctx context.Context, wait bool) error {
	for {
		s.mu.Lock()
		if s.endedLocked() {
			s.mu.Unlock()
			return errEnded
		}
		if len(s.held) == 0 {
			s.mu.Unlock()
			return nil
		}
		next, last := s.held[0].Version, s.last
		if next <= last {
			s.popLocked()
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		if next > last+1 {
			// Dispatched before the registration, so stored: read them.
			if err := s.readUp(ctx, next-1); err != nil {
				return err
			}
			continue
		}
		if wait {
			if err := s.sink.WaitRoom(ctx); err != nil {
				return err
			}
		}
		s.mu.Lock()
		if s.endedLocked() {
			s.mu.Unlock()
			return errEnded
		}
		err := s.enqueueEventLocked(s.popLocked())
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

func (s *sub) popLocked() *events.Event {
	e := s.held[0]
	s.held[0] = nil
	s.held = s.held[1:]
	return e
}

// offer is called with the entry's lock held for a live event: a holding
// subscription keeps it, a live one hands it to the sink. keep false means
// the subscription must leave the entry; overflowed means it ended now
// and the caller must call Overflow once no lock is held.
func (s *sub) offer(d actors.Delivery, holdLimit int) (keep, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.endedLocked():
		return false, false
	case s.holding:
		if len(s.held) >= holdLimit {
			s.dropLocked()
			return false, true
		}
		s.held = append(s.held, d.Event)
		return true, false
	}
	if err := s.enqueueEventLocked(d.Event); err != nil {
		if !errors.Is(err, errFull) {
			s.h.log.Error("live event out of order", "stream", s.stream, "err", err)
		}
		s.dropLocked()
		return false, true
	}
	return true, false
}

// offerPresence is offer for a presence list: only live subscriptions
// get it, and only when their last list differs.
func (s *sub) offerPresence(d actors.Delivery) (keep, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.endedLocked():
		return false, false
	case !s.live || (s.told && slices.Equal(s.presence, d.Members)):
		return true, false
	case !s.sink.Enqueue(d):
		s.dropLocked()
		return false, true
	}
	s.told, s.presence = true, d.Members
	return true, false
}

func (s *sub) endedLocked() bool { return s.cancelled || s.dropped || s.detached }

// dropLocked ends s as overflowed; the caller calls Sink.Overflow once no
// lock is held.
func (s *sub) dropLocked() {
	s.dropped, s.held = true, nil
	if s.stopRead != nil {
		s.stopRead()
	}
}

// detachLocked ends s for Stop, without Overflow.
func (s *sub) detachLocked() {
	s.detached, s.held = true, nil
	if s.stopRead != nil {
		s.stopRead()
	}
}

// finish ends a hand-over (the reader, or goLive on Subscribe's
// goroutine): an error other than the subscription's own end means that
// the subscriber cannot get a gap-free stream, so it is dropped the way a
// slow one is, and resumes from what it has.
func (s *sub) finish(ctx context.Context, err error) {
	if err == nil || errors.Is(err, errEnded) {
		return
	}
	if _, ok := s.h.running(); !ok {
		return // Stop detaches it
	}
	s.mu.Lock()
	if s.endedLocked() {
		s.mu.Unlock()
		return
	}
	s.dropLocked()
	s.mu.Unlock()
	if !errors.Is(err, errFull) && ctx.Err() == nil {
		s.h.log.Warn("subscription catch-up failed", "stream", s.stream, "err", err)
	}
	s.h.remove(s)
	s.sink.Overflow()
}

func (s *sub) lastVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Version implements actors.Subscription.
func (s *sub) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Cancel implements actors.Subscription: it ends the subscription and
// leaves presence; once it returns nothing more is enqueued. Idempotent.
func (s *sub) Cancel() {
	s.mu.Lock()
	if s.cancelled {
		s.mu.Unlock()
		return
	}
	s.cancelled, s.held = true, nil
	if s.stopRead != nil {
		s.stopRead()
	}
	s.mu.Unlock()
	s.h.remove(s)
}

var _ actors.Subscription = (*sub)(nil)
