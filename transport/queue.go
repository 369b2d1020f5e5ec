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
	ev   *events.Event // an event, rendered by the writer
	size int           // bytes counted against the queue's byte cap
	// skip, when set, is checked by the writer just before it writes the
	// item: once true the item is dropped (the subscription it belongs to
	// has ended).
	skip *atomic.Bool
}

// skipped reports whether the writer must drop the item.
func (it *outItem) skipped() bool { return it.skip != nil && it.skip.Load() }

// eventSize estimates an event frame's size before it is encoded.
func eventSize(ev *events.Event) int {
	return len(ev.Data) + len(ev.Type) + len(ev.ID) + len(ev.Stream) + len(ev.Meta.Correlation) + len(ev.Meta.Causation) + 160
}

// errQueueClosed: the connection is closing; nothing more is sent.
var errQueueClosed = errors.New("connection closing")

// sendQueue is a FIFO of frames between everything that produces them for
// a connection (the reader's replies, command lanes, subscriptions, the
// /live-score follower) and the one writer goroutine, capped in frames and
// in bytes. It knows nothing of subscriptions or versions.
//
// push never blocks: a push that finds the queue over a cap closes the
// connection with 1008 "slow consumer". waitRoom lets a producer that can
// wait (a subscription's catch-up, through the runtime) wait until the
// queue is below half its caps, so that a backlog of any length is paced
// by the client and live frames keep room to arrive.
type sendQueue struct {
	maxFrames, maxBytes int
	onOverflow          func() // called once, under mu: must not block

	mu      sync.Mutex
	items   []outItem // waiting for the writer, in order
	bytes   int       // their sizes
	stopped bool      // nothing more is accepted
	// After stopped: exit tells the writer to end without a close frame;
	// otherwise closeCode and closeText are the close frame to send once
	// items are written.
	exit      bool
	closeCode int
	closeText string

	wake chan struct{} // capacity 1: there is something for the writer
	room chan struct{} // closed when the writer takes items; nil if no one waits

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

func (q *sendQueue) wakeRoomLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

func (q *sendQueue) dropLocked() {
	q.discard.Store(true)
	clear(q.items)
	q.items = q.items[:0]
	q.bytes = 0
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
	q.wakeRoomLocked()
}

// push queues a frame. It returns false when the connection is closing,
// or when the queue was full and the connection is now closing with 1008.
func (q *sendQueue) push(it outItem) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	if len(q.items) >= q.maxFrames || q.bytes+it.size > q.maxBytes {
		q.overflowLocked()
		return false
	}
	q.items = append(q.items, it)
	q.bytes += it.size
	q.signal()
	return true
}

// waitRoom returns once the queue is empty or below half its caps, or
// with errQueueClosed once the connection is closing, or ctx's error.
func (q *sendQueue) waitRoom(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.stopped {
			q.mu.Unlock()
			return errQueueClosed
		}
		n := len(q.items)
		if n == 0 || (2*n < q.maxFrames && 2*q.bytes < q.maxBytes) {
			q.mu.Unlock()
			return nil
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
	q.wakeRoomLocked()
}

// stopNow makes the writer end without writing anything more.
func (q *sendQueue) stopNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropLocked()
	q.stopped, q.exit = true, true
	q.signal()
	q.wakeRoomLocked()
}

// take moves the waiting items to batch for the writer and says what to
// do after writing them.
func (q *sendQueue) take(batch []outItem) (_ []outItem, closeCode int, closeText string, exit bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.exit {
		return batch, 0, "", true
	}
	batch = append(batch, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	q.bytes = 0
	q.wakeRoomLocked()
	return batch, q.closeCode, q.closeText, false
}
