package transport

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Command lanes of a /ws connection.
//
// Commands of one connection to one stream run one at a time, in the order
// received (their acks follow that order); different streams run
// concurrently; at most MaxInflight wait or run at once. A lane is the
// queue of one stream: present in Conn.lanes while something of it runs.
//
// A lane runs two kinds of items. A function (Conn.Submit, and commands
// when the API cannot run them without waiting) runs on a goroutine that
// takes the lane's next functions in turn. A command on an API that
// implements funcExecutor (the actor runtime, actors.Runtime.ExecuteFunc)
// takes no goroutine, context or timer of its own: it is queued for its
// actor, which calls back with the outcome on its own goroutine; the
// callback queues the ack and starts the lane's next item. The command
// deadline is kept by one timer per connection (cmdTracker) over the
// running commands, which are listed by deadline; the first of the
// outcome, the deadline and the connection's end answers the client.

// funcExecutor runs a command without a waiting goroutine: see
// actors.Runtime.ExecuteFunc.
type funcExecutor interface {
	ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(actors.Result, error))
}

// laneItem is one item of a lane: fn, or cmd.
type laneItem struct {
	fn  func()
	cmd *wsCommand
}

// wsCommand is a command running through funcExecutor.
type wsCommand struct {
	c        *Conn
	api      funcExecutor
	cmd      decider.Command
	ref      *string
	deadline time.Time
	// answered is set by the first of the runtime's outcome, the deadline
	// and the connection's end: that one replies, the others do nothing.
	answered atomic.Bool

	prev, next *wsCommand // in cmdTracker, while running
	listed     bool
}

// cmdTracker lists a connection's running commands by deadline (they all
// get CommandTimeout from their start, so the order of starting) and keeps
// one timer for the earliest. Guarded by Conn.mu.
type cmdTracker struct {
	head, tail *wsCommand
	timer      *time.Timer
	armed      bool
	ended      bool        // the connection ended: nothing more starts
	stop       func() bool // unregisters the connection-end callback
}

// submit runs fn on the lane of stream. It waits while MaxInflight
// commands are in flight, and returns false when the connection is
// draining or ending.
func (c *Conn) submit(stream string, fn func()) bool {
	return c.enqueue(stream, laneItem{fn: fn})
}

// submitCommand runs a client's command on its stream's lane and replies
// with its ack or error; false as for submit. The reader calls it; a
// command that can start at once is started by engineFrame (startNext).
func (c *Conn) submitCommand(cmd decider.Command, ref *string) bool {
	api, ok := c.s.cfg.API.(funcExecutor)
	if !ok {
		return c.submit(cmd.Stream, func() {
			res, err := c.s.execute(c.ctx, cmd, events.AnyVersion)
			if err != nil {
				c.replyError(ref, err)
				return
			}
			c.send(appendAck(nil, cmd.Stream, res.Version, ref))
		})
	}
	return c.enqueue(cmd.Stream, laneItem{cmd: &wsCommand{c: c, api: api, cmd: cmd, ref: ref}})
}

func (c *Conn) enqueue(stream string, it laneItem) bool {
	select {
	case c.slots <- struct{}{}:
	case <-c.ctx.Done():
		return false
	}
	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		<-c.slots
		return false
	}
	c.inflight.Add()
	if it.cmd != nil && c.cmds.stop == nil {
		c.cmds.stop = context.AfterFunc(c.ctx, c.endCommands)
	}
	if pending, running := c.lanes[stream]; running {
		c.lanes[stream] = append(pending, it)
		c.mu.Unlock()
		return true
	}
	c.lanes[stream] = nil // running, nothing waiting
	c.mu.Unlock()
	if it.cmd != nil {
		// A command comes from the reader (opCommand), whose frame
		// handler starts it once it has returned (engineFrame).
		if c.startNext != nil {
			c.start(c.startNext)
		}
		c.startNext = it.cmd
		return true
	}
	c.run(stream, it)
	return true
}

// run starts an item of stream's lane.
func (c *Conn) run(stream string, it laneItem) {
	if it.cmd != nil {
		c.start(it.cmd)
		return
	}
	c.wg.Add(1)
	go c.runFuncs(stream, it.fn)
}

// runFuncs runs fn and the lane's next items while they are functions.
func (c *Conn) runFuncs(stream string, fn func()) {
	defer c.wg.Done()
	for {
		fn()
		next, ok := c.finished(stream, nil)
		if !ok {
			return
		}
		if next.cmd != nil {
			c.start(next.cmd)
			return
		}
		fn = next.fn
	}
}

// finished ends an item of stream's lane (w, when it was a command) and
// returns the lane's next one, if any.
func (c *Conn) finished(stream string, w *wsCommand) (laneItem, bool) {
	<-c.slots
	c.inflight.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	if w != nil {
		c.cmds.remove(w)
	}
	pending := c.lanes[stream]
	if len(pending) == 0 {
		delete(c.lanes, stream)
		return laneItem{}, false
	}
	next := pending[0]
	pending[0] = laneItem{}
	c.lanes[stream] = pending[1:]
	return next, true
}

// start hands a command to the runtime, its deadline counting from now.
func (c *Conn) start(w *wsCommand) {
	c.wg.Add(1)
	c.mu.Lock()
	if c.cmds.ended {
		c.mu.Unlock()
		w.complete(actors.Result{}, cmdUnavailable(w.cmd.Stream, context.Canceled))
		return
	}
	w.deadline = time.Now().Add(c.s.cfg.CommandTimeout)
	c.trackCommand(w)
	c.mu.Unlock()
	w.api.ExecuteFunc(c.ctx, w.cmd, events.AnyVersion, w.deadline, w.complete)
}

// complete answers the client, once, and moves the lane on.
func (w *wsCommand) complete(res actors.Result, err error) {
	if !w.answered.CompareAndSwap(false, true) {
		return
	}
	c := w.c
	if err != nil {
		c.replyError(w.ref, fmt.Errorf("%s %s: %w", w.cmd.Stream, w.cmd.Type, err))
	} else {
		c.send(appendAck(nil, w.cmd.Stream, res.Version, w.ref))
	}
	if next, ok := c.finished(w.cmd.Stream, w); ok {
		c.run(w.cmd.Stream, next)
	}
	c.wg.Done()
}

// cmdUnavailable is the runtime's error for a command whose caller
// stopped waiting (see actors.Runtime.Execute).
func cmdUnavailable(stream string, cause error) error {
	return fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, stream, cause)
}

// expireCommands answers the commands whose deadline has passed with 503
// unavailable, as Execute's context would, and sets the timer for the
// next deadline.
func (c *Conn) expireCommands() {
	now := time.Now()
	var expired []*wsCommand
	c.mu.Lock()
	c.cmds.armed = false
	w := c.cmds.head
	for ; w != nil && !now.Before(w.deadline); w = w.next {
		expired = append(expired, w)
	}
	if w != nil {
		c.armCommands(w.deadline)
	}
	c.mu.Unlock()
	for _, w := range expired {
		w.complete(actors.Result{}, cmdUnavailable(w.cmd.Stream, context.DeadlineExceeded))
	}
}

// endCommands runs once the connection's context ends: the running
// commands are answered (into a closed queue) and nothing more starts, so
// that teardown does not wait for the runtime.
func (c *Conn) endCommands() {
	var running []*wsCommand
	c.mu.Lock()
	c.cmds.ended = true
	if c.cmds.timer != nil {
		c.cmds.timer.Stop()
	}
	for w := c.cmds.head; w != nil; w = w.next {
		running = append(running, w)
	}
	c.mu.Unlock()
	for _, w := range running {
		w.complete(actors.Result{}, cmdUnavailable(w.cmd.Stream, context.Canceled))
	}
}

// trackCommand lists a starting command, last (the latest deadline), and
// arms the timer if it is not. Called with c.mu held.
func (c *Conn) trackCommand(w *wsCommand) {
	t := &c.cmds
	w.prev, w.next, w.listed = t.tail, nil, true
	if t.tail != nil {
		t.tail.next = w
	} else {
		t.head = w
	}
	t.tail = w
	if !t.armed {
		c.armCommands(w.deadline)
	}
}

func (t *cmdTracker) remove(w *wsCommand) {
	if !w.listed {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		t.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		t.tail = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
}

// armCommands sets the timer for at. Called with c.mu held.
func (c *Conn) armCommands(at time.Time) {
	t := &c.cmds
	d := time.Until(at)
	if t.timer == nil {
		t.timer = time.AfterFunc(d, c.expireCommands)
	} else {
		t.timer.Reset(d)
	}
	t.armed = true
}

// startDrain refuses further commands (they get 503 unavailable).
func (c *Conn) startDrain() {
	c.mu.Lock()
	c.draining = true
	c.mu.Unlock()
}

// waitIdle waits until no command is in flight; after startDrain, their
// replies are then queued.
func (c *Conn) waitIdle(ctx context.Context) error { return c.inflight.Wait(ctx) }
