package actors

import (
	"context"
	"sync"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// holdLimit bounds the live deliveries a subscription buffers while its
// catch-up runs; beyond it the subscriber is treated as too slow
// (Overflow) and resumes with From.
const holdLimit = 8192

// subscription delivers one stream's events to a Sink with no gap and no
// duplicate. The actor registers it at its version V and from then on
// hands it every live event (version > V). Events up to V come from the
// store, read by a catch-up goroutine that the subscription owns; live
// deliveries are held while it runs and flushed after it, skipping
// versions already sent. mu serialises every call of Sink.Enqueue.
type subscription struct {
	r          *Runtime
	stream     string
	kind       decider.Kind
	sink       Sink
	member     string
	from       *uint64
	subscribed func(uint64)

	mu         sync.Mutex
	owner      *entry // the activation it is registered with
	version    uint64
	registered bool
	cancelled  bool // Cancel was called
	dropped    bool // the sink overflowed (Overflow called)
	detached   bool // the actor stopped with the runtime
	holding    bool // buffering live deliveries until start/catch-up ends
	buf        []Delivery
	last       uint64 // highest event version handed to the sink
	stopRead   context.CancelFunc
}

func newSubscription(r *Runtime, k decider.Kind, req SubscribeRequest) *subscription {
	s := &subscription{
		r:          r,
		stream:     req.Stream,
		kind:       k,
		sink:       req.Sink,
		subscribed: req.Subscribed,
		holding:    true,
	}
	if k.HasPresence() {
		s.member = req.Member
	}
	if req.From != nil {
		from := *req.From
		s.from = &from
	}
	return s
}

// register is called by the actor; false if Cancel came first.
func (s *subscription) register(owner *entry, version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		return false
	}
	s.registered, s.owner, s.version = true, owner, version
	s.last = version
	if s.from != nil {
		s.last = *s.from
	}
	return true
}

// start runs on the subscriber's goroutine once the actor has registered
// the subscription.
func (s *subscription) start() {
	if s.subscribed != nil {
		s.subscribed(s.version)
	}
	if s.from == nil || *s.from >= s.version {
		s.release()
		return
	}
	ctx, cancel := context.WithCancel(s.r.ctx)
	s.mu.Lock()
	if s.cancelled || s.dropped || s.detached {
		s.mu.Unlock()
		cancel()
		return
	}
	s.stopRead = cancel
	s.mu.Unlock()
	s.r.bg.add()
	go s.catchUp(ctx, cancel)
}

// catchUp delivers the stored events in (from, version], then the held
// live ones. It ends early on Cancel or when the runtime stops.
func (s *subscription) catchUp(ctx context.Context, cancel context.CancelFunc) {
	defer s.r.bg.done()
	defer cancel()
	for ev, err := range events.IterStream(ctx, s.r.cfg.Store, s.stream, *s.from) {
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The subscriber cannot get a gap-free stream: end it the way
			// a slow one ends, so that it resumes from what it has.
			s.r.log.Warn("subscription catch-up failed", "stream", s.stream, "err", err)
			s.mu.Lock()
			first := !s.dropped && !s.cancelled && !s.detached
			s.dropped = true
			s.mu.Unlock()
			if first {
				s.overflowed()
			}
			return
		}
		if ev.Version > s.version {
			break
		}
		s.mu.Lock()
		if s.cancelled || s.dropped || s.detached {
			s.mu.Unlock()
			return
		}
		ok := s.enqueueLocked(Delivery{Stream: s.stream, Event: &ev})
		s.mu.Unlock()
		if !ok {
			s.overflowed()
			return
		}
	}
	s.release()
}

// release flushes the held deliveries and switches to direct delivery.
func (s *subscription) release() {
	s.mu.Lock()
	if s.cancelled || s.dropped || s.detached {
		s.buf = nil
		s.mu.Unlock()
		return
	}
	for _, d := range s.buf {
		if !s.enqueueLocked(d) {
			s.buf = nil
			s.mu.Unlock()
			s.overflowed()
			return
		}
	}
	s.buf, s.holding = nil, false
	s.mu.Unlock()
}

// deliver is called by the actor for a live event or a presence change.
// It never blocks; false means the subscription is over and the actor
// must forget it.
func (s *subscription) deliver(d Delivery) bool {
	s.mu.Lock()
	if s.cancelled || s.dropped || s.detached {
		s.mu.Unlock()
		return false
	}
	if s.holding {
		if len(s.buf) >= holdLimit {
			s.dropped, s.buf = true, nil
			s.mu.Unlock()
			s.sink.Overflow()
			return false
		}
		s.buf = append(s.buf, d)
		s.mu.Unlock()
		return true
	}
	ok := s.enqueueLocked(d)
	s.mu.Unlock()
	if !ok {
		s.sink.Overflow()
	}
	return ok
}

// enqueueLocked hands d to the sink unless it is an event already sent.
// A full sink drops the subscription; the caller then calls Overflow
// (outside the lock), exactly once since dropped is set only here and in
// the paths that call it themselves.
func (s *subscription) enqueueLocked(d Delivery) bool {
	if d.Event != nil && d.Event.Version <= s.last {
		return true
	}
	if !s.sink.Enqueue(d) {
		s.dropped = true
		return false
	}
	if d.Event != nil {
		s.last = d.Event.Version
	}
	return true
}

// overflowed tells the sink and, from a goroutine other than the actor,
// asks the actor to forget the subscription.
func (s *subscription) overflowed() {
	s.sink.Overflow()
	s.mu.Lock()
	owner := s.owner
	s.mu.Unlock()
	if owner != nil {
		s.r.sendTo(owner, &unsubscribeMsg{sub: s})
	}
}

// detach is called by the actor as it stops with the runtime.
func (s *subscription) detach() {
	s.mu.Lock()
	s.detached, s.buf = true, nil
	stop := s.stopRead
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Version implements Subscription.
func (s *subscription) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Cancel implements Subscription.
func (s *subscription) Cancel() {
	s.mu.Lock()
	if s.cancelled {
		s.mu.Unlock()
		return
	}
	s.cancelled, s.buf = true, nil
	tell := s.registered && !s.dropped && !s.detached
	owner, stop := s.owner, s.stopRead
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if tell {
		s.r.sendTo(owner, &unsubscribeMsg{sub: s})
	}
}

var _ Subscription = (*subscription)(nil)
