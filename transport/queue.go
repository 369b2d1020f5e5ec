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
// /live-score follower) and the connection's writer, capped in frames and
// in bytes. It knows nothing of subscriptions or versions.
//
// No writer waits on an empty queue: the push that finds the queue idle
// starts one (start), which takes what is queued, writes it, and ends
// once it finds the queue empty (take). The decision to end is made under
// the queue's lock, so exactly one writer runs at a time and none is
// missing while something waits. Pings (the connection's timer) and pongs
// (the reader) are queued the same way and written before the frames.
//
// push never blocks: a push that finds the queue over a cap closes the
// connection with 1008 "slow consumer". waitRoom lets a producer that can
// wait (a subscription's catch-up, through the runtime) wait until the
// queue is below half its caps, so that a backlog of any length is paced
// by the client and live frames keep room to arrive.
type sendQueue struct {
	maxFrames, maxBytes int
	onOverflow          func() // called once, under mu: must not block
	// start starts a writer goroutine. It is called under mu, when there
	// is work and no writer runs; nil in tests, which call take
	// themselves.
	start func()

	mu      sync.Mutex
	items   []outItem // waiting for the writer, in order
	spare   []outItem // the writer's last batch, emptied, for reuse
	bytes   int       // their sizes
	running bool      // a writer runs, or was started
	stopped bool      // nothing more is accepted
	// After stopped: exit tells the writer to end without a close frame;
	// otherwise closeCode and closeText are the close frame to send once
	// items are written, and closeTaken says a writer took it.
	exit       bool
	closeCode  int
	closeText  string
	closeTaken bool
	ping       bool   // a ping is due
	pong       bool   // a pong is due, with pongData
	pongData   []byte //

	room chan struct{} // closed when the writer takes items; nil if no one waits

	// discard is set when what is queued must not be written (overflow,
	// a close without flush, stopNow): the writer then also abandons the
	// batch it holds.
	discard atomic.Bool
}

// idleSpare is the largest batch array an idle queue keeps for reuse: a
// connection that once had a backlog does not keep its memory.
const idleSpare = 16

func newSendQueue(maxFrames, maxBytes int, onOverflow func()) *sendQueue {
	return &sendQueue{maxFrames: maxFrames, maxBytes: maxBytes, onOverflow: onOverflow}
}

// kickLocked starts a writer if none runs and the queue may still write.
func (q *sendQueue) kickLocked() {
	if q.running || q.exit || q.closeTaken {
		return
	}
	q.running = true
	if q.start != nil {
		q.start()
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
	q.ping, q.pong, q.pongData = false, false, nil
}

func (q *sendQueue) overflowLocked() {
	if q.stopped {
		return
	}
	q.dropLocked()
	q.stopped = true
	q.closeCode, q.closeText = websocket.ClosePolicyViolation, "slow consumer"
	q.onOverflow()
	q.kickLocked()
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
	q.kickLocked()
	return true
}

// pingDue queues a ping. It returns false once the connection is closing.
func (q *sendQueue) pingDue() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	q.ping = true
	q.kickLocked()
	return true
}

// pongDue queues a pong with data, replacing one not yet written (RFC
// 6455 5.5.3: answering the last ping is enough).
func (q *sendQueue) pongDue(data string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.pong, q.pongData = true, append(q.pongData[:0], data...)
	q.kickLocked()
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
	q.kickLocked()
	q.wakeRoomLocked()
}

// stopNow makes the writer end without writing anything more, and keeps
// any other from starting.
func (q *sendQueue) stopNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropLocked()
	q.stopped, q.exit = true, true
	q.wakeRoomLocked()
}

// work is what take hands the writer: the frames to write, in order, and
// what to write before and after them.
type work struct {
	items      []outItem
	ping, pong bool
	pongData   []byte
	// closeCode, when not 0, is the close frame to write after items;
	// the writer then ends.
	closeCode int
	closeText string
	// exit: the writer ends now, writing nothing (the queue is empty, or
	// the connection ends).
	exit bool
}

// take hands the writer what is queued. done is the writer's previous
// batch, written: its array is reused. When nothing is queued the writer
// is done: take returns exit, and the next push starts another.
func (q *sendQueue) take(done []outItem) work {
	q.mu.Lock()
	defer q.mu.Unlock()
	if done != nil && q.spare == nil {
		clear(done)
		q.spare = done[:0]
	}
	if q.exit {
		return work{exit: true}
	}
	closing := q.stopped && q.closeCode != 0 && !q.closeTaken
	if len(q.items) == 0 && !q.ping && !q.pong && !closing {
		q.running = false
		if cap(q.spare) > idleSpare {
			q.spare = nil
		}
		if cap(q.items) > idleSpare {
			q.items = nil
		}
		return work{exit: true}
	}
	w := work{items: q.items, ping: q.ping, pong: q.pong, pongData: q.pongData}
	q.items, q.spare = q.spare, nil
	q.bytes = 0
	q.ping, q.pong, q.pongData = false, false, nil
	if closing {
		q.closeTaken = true
		w.closeCode, w.closeText = q.closeCode, q.closeText
	}
	q.wakeRoomLocked()
	return w
}
