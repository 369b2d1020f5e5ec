package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/b6368a97/engine/actors/decider"
)

// A subscription delivers one stream's events to a Sink with no gap and no
// duplicate. It is the only place that knows which versions the sink has:
// the actor hands it live events, its reader hands it stored ones, and it
// passes each event on at most once, in version order.
//
// Between the subscription and the stream's actor every step is a
// subscribeMsg answered on a buffered channel (onSubscribe → register):
//
//  1. Subscribe: the actor reports its version V. When there is nothing
//     to read (From nil, or From ≥ V) it registers the subscription at
//     once; what it delivers before the subscriber's goroutine has called
//     SubscribeRequest.Subscribed is held and handed over right after.
//     Otherwise nothing is registered yet, and a reader goroutine starts.
//  2. The reader reads the stored events after the last version the sink
//     has, up to the version the actor last reported, a page at a time,
//     waiting for Sink.WaitRoom before each; then it asks the actor to go
//     live at the version X it has reached. The actor registers it only if
//     its own version is still ≤ X: the actor runs one message at a time,
//     so every event it publishes from then on has a higher version and
//     reaches the subscription. Otherwise it answers its version, and the
//     reader reads the rest and asks again.
//  3. After liveAttempts refusals (a stream busier than one round trip),
//     the reader asks once more with hold set, and the actor registers the
//     subscription whatever its version. Its deliveries are then held (at
//     most holdLimit; beyond, the subscriber has overflowed) while the
//     reader reads the last stretch, and handed over after it, at the
//     sink's pace.
//
// Live deliveries never block the actor. A full sink, a full hold or a
// store error ends the subscription with Sink.Overflow, and the subscriber
// resumes with From. mu serialises every call of Sink.Enqueue.
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
	version    uint64 // the actor's version when it answered Subscribe
	known      uint64 // the actor's version at its latest answer
	last       uint64 // highest event version the sink has (or From, or version)
	answered   bool   // the actor has answered Subscribe
	holdNext   bool   // the next go-live request asks to be registered held
	registered bool
	holding    bool // deliveries go to held until release
	held       []Delivery
	maxHeld    int  // the most deliveries held at once (tests)
	cancelled  bool // Cancel was called
	dropped    bool // the subscription overflowed (Overflow called)
	detached   bool // the actor stopped with the runtime
	stopRead   context.CancelFunc
}

const (
	// holdLimit bounds the deliveries a subscription holds (steps 1 and 3
	// above); beyond it the subscriber is treated as too slow.
	holdLimit = 1024
	// liveAttempts is how many times the reader asks to go live at the
	// version it has reached before it asks to be registered held.
	liveAttempts = 4
	// catchUpPage is how many stored events the reader reads at a time.
	catchUpPage = 256
)

var (
	// errEnded: the subscription ended (Cancel, an overflow already
	// reported, the actor stopping) while its reader ran.
	errEnded = errors.New("subscription ended")
	// errFull: the sink refused a delivery.
	errFull = errors.New("sink full")
)

func newSubscription(r *Runtime, k decider.Kind, req SubscribeRequest) *subscription {
	s := &subscription{
		r:          r,
		stream:     req.Stream,
		kind:       k,
		sink:       req.Sink,
		subscribed: req.Subscribed,
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

func (s *subscription) endedLocked() bool { return s.cancelled || s.dropped || s.detached }

// register is called by the actor, with its version, for Subscribe and
// for each go-live request. It reports whether the actor must now add the
// subscription to its subscribers; an error (it ended meanwhile) is the
// answer to the request.
func (s *subscription) register(owner *entry, version uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endedLocked() {
		return false, errEnded
	}
	s.known = version
	first := !s.answered
	if first {
		s.answered, s.version, s.last = true, version, version
		if s.from != nil {
			s.last = *s.from
		}
	}
	behind := s.last < version
	if behind && (first || !s.holdNext) {
		return false, nil // the reader reads up to version first
	}
	// Held until Subscribed has run, or until the reader has read up to
	// version.
	s.holding = first || behind
	s.registered, s.owner = true, owner
	return true, nil
}

// start runs on the subscriber's goroutine once the actor has answered
// Subscribe: the Subscribed callback first, then either the deliveries
// held since the registration or the reader.
func (s *subscription) start() {
	if s.subscribed != nil {
		s.subscribed(s.Version())
	}
	s.mu.Lock()
	if s.endedLocked() {
		s.mu.Unlock()
		return
	}
	if s.registered {
		s.mu.Unlock()
		ctx := context.Background()
		s.finish(ctx, s.release(ctx, false))
		return
	}
	ctx, cancel := context.WithCancel(s.r.ctx)
	s.stopRead = cancel
	s.mu.Unlock()
	s.r.bg.Add()
	go s.catchUp(ctx, cancel)
}

// catchUp is the reader goroutine. Cancel, an overflow and the runtime's
// Stop end it through ctx.
func (s *subscription) catchUp(ctx context.Context, cancel context.CancelFunc) {
	defer s.r.bg.Done()
	defer cancel()
	s.finish(ctx, s.readThenGoLive(ctx))
}

func (s *subscription) readThenGoLive(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		if err := s.readUp(ctx); err != nil {
			return err
		}
		live, err := s.goLive(ctx, attempt > liveAttempts)
		if err != nil {
			return err
		}
		if live {
			break
		}
	}
	// Registered held (step 3): the last stretch, then what was held.
	if err := s.readUp(ctx); err != nil {
		return err
	}
	return s.release(ctx, true)
}

// readUp hands the sink the stored events after the last version it has
// up to the actor's latest reported version, a page at a time, at the
// sink's pace.
func (s *subscription) readUp(ctx context.Context) error {
	for {
		s.mu.Lock()
		last, to := s.last, s.known
		s.mu.Unlock()
		if last >= to {
			return nil
		}
		page, err := s.r.cfg.Store.ReadStream(ctx, s.stream, last, int(min(to-last, catchUpPage)))
		if err != nil {
			return fmt.Errorf("read %s after %d: %w", s.stream, last, err)
		}
		if len(page) == 0 {
			return fmt.Errorf("read %s after %d: no events, the actor is at %d", s.stream, last, to)
		}
		for i := range page {
			if err := s.sink.WaitRoom(ctx); err != nil {
				return err
			}
			if err := s.put(Delivery{Stream: s.stream, Event: &page[i]}); err != nil {
				return err
			}
		}
	}
}

func (s *subscription) put(d Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endedLocked() {
		return errEnded
	}
	if !s.enqueueLocked(d) {
		return errFull
	}
	return nil
}

// goLive asks the actor to register the subscription at the version the
// sink has reached (step 2), or whatever its version when hold is set
// (step 3), and reports whether it did.
func (s *subscription) goLive(ctx context.Context, hold bool) (bool, error) {
	s.mu.Lock()
	s.holdNext = hold
	s.mu.Unlock()
	if h := s.r.hooks.goLive; h != nil {
		h(s.stream)
	}
	m := &subscribeMsg{sub: s, reply: make(chan error, 1)}
	if !s.r.send(s.stream, s.kind, m, true) {
		return false, errEnded // the runtime is stopping
	}
	select {
	case err := <-m.reply:
		if err != nil {
			return false, err
		}
	case <-ctx.Done():
		return false, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registered, nil
}

// release hands the held deliveries to the sink, waiting for room before
// each when wait is set, then switches to direct delivery.
func (s *subscription) release(ctx context.Context, wait bool) error {
	waited := !wait
	for {
		s.mu.Lock()
		if s.endedLocked() {
			s.mu.Unlock()
			return errEnded
		}
		if len(s.held) == 0 {
			s.held, s.holding = nil, false
			s.mu.Unlock()
			return nil
		}
		if !waited {
			s.mu.Unlock()
			if err := s.sink.WaitRoom(ctx); err != nil {
				return err
			}
			waited = true
			continue
		}
		d := s.held[0]
		s.held[0] = Delivery{}
		s.held = s.held[1:]
		ok := s.enqueueLocked(d)
		s.mu.Unlock()
		if !ok {
			return errFull
		}
		waited = !wait
	}
}

// finish ends a hand-over (the reader, or the release after Subscribe).
// An error other than the subscription's own end means that the
// subscriber cannot get a gap-free stream: it is dropped the way a slow
// one is, so that it resumes from what it has.
func (s *subscription) finish(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil || errors.Is(err, errEnded) || !s.r.running() {
		return
	}
	if !errors.Is(err, errFull) {
		s.r.log.Warn("subscription catch-up failed", "stream", s.stream, "err", err)
	}
	s.drop()
}

// drop ends the subscription as overflowed, from a goroutine other than
// the actor: it tells the sink and asks the actor to forget it.
func (s *subscription) drop() {
	s.mu.Lock()
	if s.endedLocked() {
		s.mu.Unlock()
		return
	}
	s.dropped, s.held = true, nil
	var owner *entry
	if s.registered {
		owner = s.owner
	}
	stop := s.stopRead
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.sink.Overflow()
	if owner != nil {
		s.r.sendTo(owner, &unsubscribeMsg{sub: s})
	}
}

// deliver is called by the actor for a live event or a presence change.
// It never blocks; false means the subscription is over and the actor
// must forget it.
func (s *subscription) deliver(d Delivery) bool {
	s.mu.Lock()
	if s.endedLocked() {
		s.mu.Unlock()
		return false
	}
	if s.holding && len(s.held) < holdLimit {
		s.held = append(s.held, d)
		s.maxHeld = max(s.maxHeld, len(s.held))
		s.mu.Unlock()
		return true
	}
	if !s.holding && s.enqueueLocked(d) {
		s.mu.Unlock()
		return true
	}
	s.dropped, s.held = true, nil
	stop := s.stopRead
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.sink.Overflow()
	return false
}

// enqueueLocked hands d to the sink unless it is an event the sink has
// already had; false means the sink is full.
func (s *subscription) enqueueLocked(d Delivery) bool {
	if d.Event != nil && d.Event.Version <= s.last {
		return true
	}
	if !s.sink.Enqueue(d) {
		return false
	}
	if d.Event != nil {
		s.last = d.Event.Version
	}
	return true
}

// detach is called by the actor as it stops with the runtime.
func (s *subscription) detach() {
	s.mu.Lock()
	s.detached, s.held = true, nil
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
	s.cancelled, s.held = true, nil
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
