package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/b6368a97/engine/events"
)

// Subscription is one subscribed stream. Its handler runs on the
// subscription's own delivery goroutine, one call at a time, in version
// order, each version exactly once — across reconnects too.
type Subscription struct {
	c          *Client
	stream     string
	user       string
	handler    func(events.Event)
	onPresence func(members []string)
	onEpoch    func(EpochChange)

	ready     chan struct{} // closed at the first subscribed reply, a refusal or the end
	readyOnce sync.Once
	wake      chan struct{} // cap 1: the queue has items
	stopCh    chan struct{} // closed by end
	done      chan struct{} // closed when the delivery goroutine has exited
	stopped   atomic.Bool   // set by end; checked before each handler call

	handled      atomic.Uint64 // Version(): the last version whose handler call returned
	subscribedAt atomic.Uint64

	mu         sync.Mutex
	sess       *session // the connection the latest subscribe went out on
	hasBase    bool     // last is meaningful (from given, or a subscribed reply came)
	last       uint64   // the last version queued for the handler: the resume point
	resyncing  bool     // a gap was seen; waiting for the re-subscribe's reply
	needResync bool     // a gap was seen; the connection goroutine has yet to re-subscribe
	confirmed  bool
	ended      bool
	err        error
	queue      []item
	// epoch is the server's store epoch from the latest subscribed reply
	// (or WithEpoch's before the first); it goes out with from. "" while
	// unknown, and after an epoch change until the next reply.
	epoch string
	// reset is set when the server refused a resume with epoch_changed:
	// the subscription starts over from 0 and the change is queued for
	// the handler with the next subscribed reply, which tells the new
	// epoch.
	reset *EpochChange
}

// item is one thing for the delivery goroutine: an event or, when
// presence is set, a presence change, or, when epoch is set, an epoch
// change.
type item struct {
	ev       events.Event
	members  []string
	presence bool
	epoch    *EpochChange
}

// EpochChange tells that the server's store is no longer the one whose
// events a subscription had delivered: it was wiped, restored or replaced,
// so versions counted under the old epoch mean nothing in the new one.
// The client does not resume from its old version; it subscribes again
// from 0, and the events that follow the EpochChange start at version 1
// of the new store. An application that keeps state built from the
// stream should drop it when it gets one and rebuild it from those events.
type EpochChange struct {
	Stream string
	// Old is the epoch the delivered events were read under, New the
	// store's epoch now.
	Old, New string
	// LastVersion is the last version queued for the handler under Old
	// (every event up to it is delivered before the EpochChange).
	LastVersion uint64
}

// SubscribeOption tunes one Subscribe call.
type SubscribeOption func(*Subscription)

// WithPresence sets a callback for the stream's presence frames (rooms: the
// member list after every change). It runs on the delivery goroutine, in
// order with the events.
func WithPresence(fn func(members []string)) SubscribeOption {
	return func(s *Subscription) { s.onPresence = fn }
}

// WithEpochChange sets a callback for epoch changes (see EpochChange). It
// runs on the delivery goroutine, in order with the events: after the
// last event of the old epoch and before the first of the new one, and
// Version() is 0 once it has returned. Without it, an epoch change is
// only logged and the handler sees versions start again at 1.
func WithEpochChange(fn func(EpochChange)) SubscribeOption {
	return func(s *Subscription) { s.onEpoch = fn }
}

// WithEpoch gives the epoch under which the from of Subscribe was read
// (Subscription.Epoch of an earlier subscription, kept by the application
// with the version, e.g. across a restart of the process). The server then
// refuses the subscribe with an *Error of code CodeEpochChanged when its
// store has another epoch, rather than resume from a version of other
// data. Without it, the first subscribe cannot be checked; once confirmed,
// the client sends the epoch the server reported with every resume itself.
func WithEpoch(epoch string) SubscribeOption {
	return func(s *Subscription) { s.epoch = epoch }
}

// From returns &v, for Subscribe's from argument: From(0) is the whole
// stream, nil is live events only.
func From(v uint64) *uint64 { return &v }

// Subscribe subscribes to stream and returns once the server has confirmed
// (op subscribed). With from set the handler first sees every event with a
// version above *from, then live events; with from nil only events after
// the subscription. user, if not empty, joins a room's presence.
//
// The client remembers the last version it has seen and, after a
// reconnect, subscribes again from there; events already seen are dropped
// by version, and a gap (a version skipped) makes it subscribe again from
// the last one seen. So the handler sees each version exactly once, in
// order, however often the connection drops. It runs on a goroutine of
// the subscription, so it may call the client (Command, Unsubscribe); it
// must not call Close. Events wait in an unbounded queue while it runs.
//
// The server's store epoch comes with each confirmation, and every resume
// sends it back with from. If the server's store has been replaced since
// (a wiped or restored data directory: the server refuses with
// epoch_changed), the client does not resume from its old version: it
// subscribes again from 0, tells the application through WithEpochChange,
// and the handler then sees the new store's events from version 1.
//
// A client has at most one subscription per stream (ErrAlreadySubscribed).
// A refusal is returned as *Error.
func (c *Client) Subscribe(ctx context.Context, stream string, from *uint64, user string, handler func(events.Event), opts ...SubscribeOption) (*Subscription, error) {
	sub := &Subscription{
		c:       c,
		stream:  stream,
		user:    user,
		handler: handler,
		ready:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopCh:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(sub)
	}
	if from != nil {
		sub.hasBase = true
		sub.last = *from
		sub.handled.Store(*from)
	}

	c.mu.Lock()
	if c.stopped {
		err := c.stopErr
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s: %w", stream, err)
	}
	if _, dup := c.subs[stream]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s: %w", stream, ErrAlreadySubscribed)
	}
	// Registered under the same lock that guards sess: either the
	// connection goroutine's re-subscribe pass sees this subscription or
	// this call sees the new session, so none is missed.
	c.subs[stream] = sub
	s := c.sess
	c.wg.Add(1)
	c.mu.Unlock()
	go sub.deliver()

	if s != nil {
		c.sendSubscribe(sub, s)
	}
	select {
	case <-sub.ready:
		sub.mu.Lock()
		err, ok := sub.err, sub.confirmed
		sub.mu.Unlock()
		if ok && err == nil {
			return sub, nil
		}
		if err == nil {
			err = ErrClosed
		}
		c.removeSub(sub)
		sub.end(err)
		return nil, fmt.Errorf("subscribe %s: %w", stream, err)
	case <-ctx.Done():
		c.removeSub(sub)
		sub.end(ctx.Err())
		c.abandon(sub)
		return nil, fmt.Errorf("subscribe %s: %w", stream, ctx.Err())
	}
}

// Stream is the subscribed stream.
func (s *Subscription) Stream() string { return s.stream }

// Version is the version of the last event whose handler call has
// returned; before any, the from given to Subscribe or, for a live-only
// subscription, the stream's version when it was confirmed.
func (s *Subscription) Version() uint64 { return s.handled.Load() }

// SubscribedAt is the stream's version that the server reported with the
// latest confirmation (op subscribed).
func (s *Subscription) SubscribedAt() uint64 { return s.subscribedAt.Load() }

// Epoch is the server's store epoch reported with the latest confirmation
// (before the first, the one given with WithEpoch). It is "" while the
// client starts over after an epoch change, and with a server that does
// not report one. An application that stores Version() to resume later
// stores Epoch() with it and passes it back with WithEpoch.
func (s *Subscription) Epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Done is closed once the subscription has ended (Unsubscribe, Close, the
// client giving up, or a refusal when re-subscribing) and its handler will
// not be called again.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: nil after Unsubscribe, ErrClosed,
// the client's failure, or the server's *Error.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Unsubscribe ends the subscription and tells the server (op unsubscribe),
// which also leaves the room's presence. No handler call starts after it
// returns; a call already running may still be finishing (wait on Done,
// from outside the handler, to be sure). A connection lost meanwhile is not
// an error: the server forgets subscriptions with the connection.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.removeSub(s)
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	s.end(nil)
	// Read the connection only now: once ended, a re-subscribe racing with
	// this call can no longer move the subscription to a newer one.
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if ended || sess == nil {
		return nil
	}
	ref := c.nextRef()
	frame, err := marshal(outFrame{Op: opUnsubscribe, Ref: ref, Stream: s.stream})
	if err != nil {
		return err
	}
	f, err := sess.roundTrip(ctx, ref, frame)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("unsubscribe %s: %w", s.stream, ctx.Err())
		}
		return nil
	}
	if err := replyError(f, opUnsubscribed); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", s.stream, err)
	}
	return nil
}

func (c *Client) subscription(stream string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[stream]
}

func (c *Client) removeSub(sub *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[sub.stream] == sub {
		delete(c.subs, sub.stream)
	}
}

// abandon tells the server to forget a subscription whose Subscribe call
// gave up, so that a later Subscribe to the stream starts clean.
func (c *Client) abandon(sub *Subscription) {
	sub.mu.Lock()
	s := sub.sess
	sub.mu.Unlock()
	if s == nil {
		return
	}
	if frame, err := marshal(outFrame{Op: opUnsubscribe, Stream: sub.stream}); err == nil {
		_ = s.write(c.ctx, frame)
	}
}

// sendSubscribe sends sub's subscribe on s unless it already went out on
// s or a newer connection: the connection goroutine and Subscribe may both
// try after a reconnect, and Subscribe may come late with a connection that
// has since been replaced.
func (c *Client) sendSubscribe(sub *Subscription, s *session) {
	sub.mu.Lock()
	if sub.ended || sub.sess != nil && sub.sess.seq >= s.seq {
		sub.mu.Unlock()
		return
	}
	sub.sess = s
	sub.resyncing, sub.needResync = false, false
	frame, err := c.subscribeFrame(sub, s)
	sub.mu.Unlock()
	if err == nil {
		_ = s.write(c.ctx, frame) // a failure means s is gone; the next connection re-subscribes
	}
}

// subscriptions is a snapshot of the client's subscriptions.
func (c *Client) subscriptions() []*Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	return subs
}

// resyncGaps re-subscribes, on s, every subscription that saw a gap.
func (c *Client) resyncGaps(s *session) {
	for _, sub := range c.subscriptions() {
		sub.mu.Lock()
		if sub.ended || !sub.needResync || sub.sess != s {
			sub.mu.Unlock()
			continue
		}
		sub.needResync = false
		last := sub.last
		frame, err := c.subscribeFrame(sub, s)
		sub.mu.Unlock()
		if err != nil {
			continue
		}
		c.log.Info("client: gap in stream, re-subscribing", "stream", sub.stream, "from", last)
		// The server keys subscriptions by stream; leave before joining
		// again so that it cannot take the second subscribe for a mistake.
		unsub, err := marshal(outFrame{Op: opUnsubscribe, Stream: sub.stream})
		if err != nil || s.write(c.ctx, unsub) != nil || s.write(c.ctx, frame) != nil {
			return // s is gone; the next connection re-subscribes anyway
		}
	}
}

// subscribeFrame registers a subscribe request of sub on s and encodes it,
// from the last version seen. Called with sub.mu held.
func (c *Client) subscribeFrame(sub *Subscription, s *session) ([]byte, error) {
	ref := c.nextRef()
	if s.register(ref, sub) == nil {
		return nil, errNotSent
	}
	f := outFrame{Op: opSubscribe, Ref: ref, Stream: sub.stream, User: sub.user}
	if sub.hasBase {
		// A resume: the epoch lets the server refuse it if the versions
		// counted so far are another store's.
		f.From = From(sub.last)
		f.Epoch = sub.epoch
	}
	return marshal(f)
}

// resubscribeAll sends every subscription again on a new connection.
func (c *Client) resubscribeAll(s *session) {
	for _, sub := range c.subscriptions() {
		c.sendSubscribe(sub, s)
	}
}

func (c *Client) nudgeResync() {
	select {
	case c.resync <- struct{}{}:
	default:
	}
}

// offerEvent runs on the reader: it queues ev if it is the next version,
// drops a version already seen, and asks for a re-subscribe on a gap.
func (s *Subscription) offerEvent(from *session, ev events.Event) {
	s.mu.Lock()
	if s.ended || !s.hasBase {
		// No base: an event before the first subscribed reply of a
		// live-only subscription, which the protocol does not send.
		s.mu.Unlock()
		return
	}
	switch {
	case ev.Version <= s.last:
		s.mu.Unlock()
		return
	case ev.Version == s.last+1:
		s.last = ev.Version
		s.queue = append(s.queue, item{ev: ev})
		s.mu.Unlock()
		s.signal()
		return
	}
	nudge := !s.resyncing && s.sess == from
	if nudge {
		s.resyncing, s.needResync = true, true
	}
	last := s.last
	s.mu.Unlock()
	if nudge {
		s.c.log.Warn("client: gap in stream", "stream", s.stream, "last", last, "got", ev.Version)
		s.c.nudgeResync()
	}
}

func (s *Subscription) offerPresence(members []string) {
	if s.onPresence == nil {
		return
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, item{members: members, presence: true})
	s.mu.Unlock()
	s.signal()
}

// applyReply runs on the reader for a reply to one of sub's subscribe
// requests, before any later frame is read: a live-only subscription's base
// version is set before its first event can arrive.
func (s *Subscription) applyReply(from *session, f *inFrame) {
	s.mu.Lock()
	if s.sess != from || s.ended {
		s.mu.Unlock()
		return
	}
	if f.Op == opSubscribed {
		s.subscribedAt.Store(f.Version)
		if !s.hasBase {
			s.hasBase = true
			s.last = f.Version
			s.handled.Store(f.Version)
		}
		if f.Version < s.last {
			s.c.log.Warn("client: server is behind the subscription", "stream", s.stream, "server", f.Version, "seen", s.last)
		}
		if f.Epoch != "" {
			s.epoch = f.Epoch
		}
		signal := false
		if r := s.reset; r != nil {
			// The subscription from 0 that replaces the refused resume:
			// the change goes before its first event.
			s.reset = nil
			r.New = f.Epoch
			s.queue = append(s.queue, item{epoch: r})
			signal = true
		}
		s.resyncing = false
		s.confirmed = true
		s.mu.Unlock()
		if signal {
			s.signal()
		}
		s.readyOnce.Do(func() { close(s.ready) })
		return
	}
	if f.Op != opError {
		s.mu.Unlock()
		return
	}
	e := &Error{Code: f.Code, Message: f.Message}
	if !s.confirmed {
		s.err = e // Subscribe returns it and cleans up
		s.mu.Unlock()
		s.readyOnce.Do(func() { close(s.ready) })
		return
	}
	if f.Code == CodeEpochChanged {
		// The store is not the one the delivered versions came from:
		// start over from 0, on this connection, through the gap path.
		if s.reset == nil {
			s.reset = &EpochChange{Stream: s.stream, Old: s.epoch, LastVersion: s.last}
		}
		old, last := s.reset.Old, s.reset.LastVersion
		s.last, s.epoch = 0, ""
		s.resyncing, s.needResync = true, true
		s.mu.Unlock()
		s.c.log.Warn("client: the server's store changed epoch, subscribing again from 0", "stream", s.stream, "old_epoch", old, "last", last)
		s.c.nudgeResync()
		return
	}
	s.mu.Unlock()
	switch f.Code {
	case "unavailable", "rate_limited":
		// Passing (the server is draining or busy): reconnect with backoff
		// and subscribe again rather than give up the subscription.
		s.c.log.Warn("client: re-subscribe refused for now, reconnecting", "stream", s.stream, "err", e)
		_ = from.conn.CloseNow()
	default:
		s.c.log.Error("client: re-subscribe refused, subscription ended", "stream", s.stream, "err", e)
		s.c.removeSub(s)
		s.end(e)
	}
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end stops the subscription with err (first call wins).
func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.err = err
	s.queue = nil
	s.mu.Unlock()
	s.stopped.Store(true)
	close(s.stopCh)
	s.readyOnce.Do(func() { close(s.ready) })
}

// deliver is the subscription's goroutine: it drains the queue into the
// handler in batches, so the reader never waits for a handler.
func (s *Subscription) deliver() {
	defer s.c.wg.Done()
	defer close(s.done)
	var batch []item
	for {
		select {
		case <-s.wake:
		case <-s.stopCh:
			return
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		for i := range batch {
			if s.stopped.Load() {
				return
			}
			it := &batch[i]
			if it.presence {
				s.onPresence(it.members)
				continue
			}
			if it.epoch != nil {
				if s.onEpoch != nil {
					s.onEpoch(*it.epoch)
				}
				s.handled.Store(0)
				continue
			}
			if s.handler != nil {
				s.handler(it.ev)
			}
			s.handled.Store(it.ev.Version)
		}
		clear(batch)
	}
}
