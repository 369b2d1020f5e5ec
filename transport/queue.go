package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gofiber/contrib/websocket"

	"github.com/b6368a97/engine/events"
)

// outItem is one frame waiting for a connection's writer: either encoded
// bytes, or an event the writer renders (so that fan-out does not encode
// on the actor's goroutine).
type outItem struct {
	typ  int           // websocket.TextMessage or websocket.BinaryMessage
	data []byte        // the frame, when ev is nil
	ev   *events.Event // an event of sub, rendered by the writer
	sub  *wsSub        // the subscription the item belongs to, or nil
	size int           // bytes counted against the queue's byte cap
}

// eventSize estimates an event frame's size before it is encoded.
func eventSize(ev *events.Event) int {
	return len(ev.Data) + len(ev.Type) + len(ev.ID) + len(ev.Stream) + len(ev.Meta.Correlation) + len(ev.Meta.Causation) + 160
}

// errQueueClosed: the connection is closing; nothing more is sent.
var errQueueClosed = errors.New("connection closing")

// sendQueue sits between everything that produces frames for a connection
// (the reader's replies, command lanes, actor deliveries, catch-up and
// follower goroutines) and the one writer goroutine. Producers never block
// except catch-up, which waits for room on purpose; a live producer that
// finds the queue over its frame or byte cap closes the connection with
// 1008 "slow consumer".
//
// Subscriptions keep their state (active, live, last version, held items)
// under mu so that a delivery, a catch-up push and an unsubscribe are
// ordered with respect to each other.
type sendQueue struct {
	maxFrames, maxBytes int
	onOverflow          func() // called once, under mu: must not block

	mu      sync.Mutex
	items   []outItem // waiting for the writer, in order
	qBytes  int       // bytes of items
	frames  int       // items plus every subscription's held items
	bytes   int       // their bytes
	stopped bool      // nothing more is accepted
	// After stopped: exit tells the writer to end without a close frame;
	// otherwise closeCode and closeText are the close frame to send once
	// items are written.
	exit      bool
	closeCode int
	closeText string

	wake  chan struct{} // capacity 1: there is something for the writer
	space chan struct{} // closed when the writer takes items; nil if no one waits

	// discard is set when what is queued must not be written (overflow,
	// a close without flush, stopNow): the writer then also abandons the
	// batch it holds.
	discard atomic.Bool
}

func newSendQueue(maxFrames, maxBytes int, onOverflow func()) *sendQueue {
	return &sendQueue{maxFrames: maxFrames, maxBytes: maxBytes, onOverflow: onOverflow, wake: make(chan struct{}, 1)}
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *sendQueue) fits(size int) bool {
	return q.frames < q.maxFrames && q.bytes+size <= q.maxBytes
}

func (q *sendQueue) appendLocked(it outItem) {
	q.items = append(q.items, it)
	q.qBytes += it.size
	q.frames++
	q.bytes += it.size
	q.signal()
}

func (q *sendQueue) wakeSpaceLocked() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

func (q *sendQueue) dropLocked() {
	q.discard.Store(true)
	clear(q.items)
	q.items = q.items[:0]
	q.qBytes, q.frames, q.bytes = 0, 0, 0
}

func (q *sendQueue) overflowLocked() {
	if q.stopped {
		return
	}
	q.dropLocked()
	q.stopped = true
	q.closeCode, q.closeText = websocket.ClosePolicyViolation, "slow consumer"
	q.onOverflow()
	q.signal()
	q.wakeSpaceLocked()
}

// push queues a reply. It returns false when the connection is closing,
// or when the queue was full and the connection is now closing with 1008.
func (q *sendQueue) push(it outItem) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	if !q.fits(it.size) {
		q.overflowLocked()
		return false
	}
	q.appendLocked(it)
	return true
}

// discarding reports whether the writer should stop writing the batch it
// took: the connection is closing without flushing.
func (q *sendQueue) discarding() bool { return q.discard.Load() }

// overflow closes the connection as a slow consumer.
func (q *sendQueue) overflow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.overflowLocked()
}

// closeWith ends the connection with a close frame, after the queued
// frames when flush is set. The first close wins.
func (q *sendQueue) closeWith(code int, text string, flush bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	if !flush {
		q.dropLocked()
	}
	q.stopped = true
	q.closeCode, q.closeText = code, text
	q.signal()
	q.wakeSpaceLocked()
}

// stopNow makes the writer end without writing anything more.
func (q *sendQueue) stopNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropLocked()
	q.stopped, q.exit = true, true
	q.signal()
	q.wakeSpaceLocked()
}

// take moves the waiting items to batch for the writer, skipping those of
// ended subscriptions, and says what to do after writing them.
func (q *sendQueue) take(batch []outItem) (_ []outItem, closeCode int, closeText string, exit bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.exit {
		return batch, 0, "", true
	}
	for _, it := range q.items {
		q.frames--
		q.bytes -= it.size
		if it.sub != nil && !it.sub.active {
			continue
		}
		batch = append(batch, it)
	}
	clear(q.items)
	q.items = q.items[:0]
	q.qBytes = 0
	q.wakeSpaceLocked()
	return batch, q.closeCode, q.closeText, false
}

// deliver queues a live delivery of sub. It never blocks. Before sub is
// live (its "subscribed" reply or catch-up is pending) the item is held
// by sub, counted against the caps. Events at or below the last version
// sent are dropped. It returns false only when the queue overflowed.
func (q *sendQueue) deliver(sub *wsSub, it outItem) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || !sub.active {
		return true // the connection or subscription is ending anyway
	}
	if it.ev != nil && sub.live && it.ev.Version <= sub.last {
		return true
	}
	if !q.fits(it.size) {
		q.overflowLocked()
		return false
	}
	if !sub.live {
		sub.held = append(sub.held, it)
		q.frames++
		q.bytes += it.size
		return true
	}
	if it.ev != nil {
		sub.last = it.ev.Version
	}
	q.appendLocked(it)
	return true
}

// pushCatchUp queues a stored event of sub, waiting while the writer has
// half the caps' worth of frames or more, so that a catch-up of any
// length is paced by the client instead of overflowing the queue.
func (q *sendQueue) pushCatchUp(ctx context.Context, sub *wsSub, it outItem) error {
	for {
		q.mu.Lock()
		if q.stopped || !sub.active {
			q.mu.Unlock()
			return errQueueClosed
		}
		if it.ev.Version <= sub.last {
			q.mu.Unlock()
			return nil
		}
		if len(q.items) == 0 || (len(q.items) < q.maxFrames/2 && q.qBytes+it.size <= q.maxBytes/2) {
			sub.last = it.ev.Version
			q.appendLocked(it)
			q.mu.Unlock()
			return nil
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startLive sets the version sub's client has seen (the catch-up start, or
// the subscription's version) and, unless a catch-up follows, makes sub
// live.
func (q *sendQueue) startLive(sub *wsSub, last uint64, live bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	sub.last = last
	if live {
		q.goLiveLocked(sub)
	}
}

// goLive moves sub's held items to the queue, skipping events the client
// already has, and delivers directly from then on.
func (q *sendQueue) goLive(sub *wsSub) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.goLiveLocked(sub)
}

func (q *sendQueue) goLiveLocked(sub *wsSub) {
	held := sub.held
	sub.held = nil
	for _, it := range held {
		q.frames--
		q.bytes -= it.size
	}
	if q.stopped || !sub.active {
		return
	}
	sub.live = true
	for _, it := range held {
		if it.ev != nil {
			if it.ev.Version <= sub.last {
				continue
			}
			sub.last = it.ev.Version
		}
		q.appendLocked(it)
	}
}

// deactivate ends sub's deliveries: held items are dropped, queued ones
// skipped by take, later deliveries ignored.
func (q *sendQueue) deactivate(sub *wsSub) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !sub.active {
		return
	}
	sub.active = false
	for _, it := range sub.held {
		q.frames--
		q.bytes -= it.size
	}
	sub.held = nil
	q.wakeSpaceLocked()
}
