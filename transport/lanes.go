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
// A lane is the queue of one stream's items of one connection: present in
// Conn.lanes while something of it runs or waits. At most MaxInflight
// items of a connection wait or run at once; different streams' lanes run
// concurrently.
//
// A lane runs two kinds of items. A function (Conn.Submit, and commands
// when the API cannot run them without waiting, as the cluster's) runs on
// a goroutine, alone: it starts once every item before it has finished,
// and the items after it wait for it. A command on an API that implements
// funcExecutor (the actor runtime, actors.Runtime.ExecuteFunc) is handed
// to the runtime at once, without waiting for the commands before it:
// the runtime decides a stream's commands in the order handed over (see
// ExecuteFunc), and the lane hands them over in the order received, one
// goroutine at a time (lane.busy). So commands pipeline, and those queued
// at the actor during an append share the next one; their acks come in
// order, except an error of a command answered without being decided or
// whose kind function failed, which may come ahead of the earlier ones.
//
// A command takes no goroutine, context or timer of its own: the actor
// calls back with the outcome on its own goroutine; the callback queues
// the ack and, when it was the last command running before a function,
// starts that. The command deadline is kept by one timer per connection
// (cmdTracker) over the running commands, which are listed by deadline;
// the first of the outcome, the deadline and the connection's end answers
// the client and ends the command for its lane.

// lane is one stream's lane. Guarded by Conn.mu.
type lane struct {
	cmds    int        // commands handed to the runtime and not answered
	busy    bool       // a goroutine runs a function or hands over commands
	pending []laneItem // what waits, in the order received
}

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

// enqueue adds it to stream's lane: a command is handed over at once
// unless a function waits or runs before it, a function runs at once when
// nothing of the lane runs or waits; else it waits its turn.
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
	l := c.lanes[stream]
	if l == nil {
		l = &lane{}
		c.lanes[stream] = l
	}
	switch {
	case l.busy || len(l.pending) > 0 || (it.fn != nil && l.cmds > 0):
		// behind what waits or runs: the owner of the lane, or the
		// last command before it, takes it in turn
		l.pending = append(l.pending, it)
		c.mu.Unlock()
		return true
	case it.cmd != nil:
		l.cmds++
	}
	l.busy = true
	c.mu.Unlock()
	if it.cmd != nil {
		// A command comes from the reader (opCommand), whose frame
		// handler drives the lane once it has returned (engineFrame).
		if n := c.startNext; n.l != nil {
			c.drive(n.stream, n.l, n.it)
		}
		c.startNext = laneStart{stream: stream, l: l, it: it}
		return true
	}
	c.drive(stream, l, it)
	return true
}

// laneStart is a lane the reader has taken and will drive once the
// frame's handling has returned (Conn.startNext).
type laneStart struct {
	stream string
	l      *lane
	it     laneItem
}

// drive runs it, an item of stream's lane taken by the caller, which owns
// the lane (l.busy), and then the lane's next items while it may: a
// command is handed to the runtime here; functions run on a goroutine of
// their own, which takes over the lane.
func (c *Conn) drive(stream string, l *lane, it laneItem) {
	if it.fn != nil {
		c.wg.Add(1)
		go c.runFuncs(stream, l, it.fn)
		return
	}
	for {
		c.start(it.cmd)
		var ok bool
		if it, ok = c.take(stream, l); !ok {
			return
		}
		if it.fn != nil {
			c.wg.Add(1)
			go c.runFuncs(stream, l, it.fn)
			return
		}
	}
}

// runFuncs runs fn, and the lane's next items while they are functions;
// commands after them are handed over here.
func (c *Conn) runFuncs(stream string, l *lane, fn func()) {
	defer c.wg.Done()
	for {
		fn()
		<-c.slots
		c.inflight.Done()
		it, ok := c.take(stream, l)
		if !ok {
			return
		}
		if it.cmd != nil {
			c.drive(stream, l, it)
			return
		}
		fn = it.fn
	}
}

// take gives the owner of stream's lane its next item: the first waiting
// one, unless that is a function and commands still run (the last of them
// takes it). Else the lane has no owner any more, and is dropped when
// nothing of it runs or waits.
func (c *Conn) take(stream string, l *lane) (laneItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(l.pending) > 0 && (l.pending[0].cmd != nil || l.cmds == 0) {
		return l.pop(), true
	}
	l.busy = false
	if l.cmds == 0 && len(l.pending) == 0 {
		delete(c.lanes, stream)
	}
	return laneItem{}, false
}

// pop takes the first waiting item. Called with Conn.mu held.
func (l *lane) pop() laneItem {
	it := l.pending[0]
	l.pending[0] = laneItem{}
	l.pending = l.pending[1:]
	if it.cmd != nil {
		l.cmds++
	}
	return it
}

// finished ends command w of stream's lane; when it was the last one
// running before a waiting function, the caller starts that (as the lane's
// owner).
func (c *Conn) finished(stream string, w *wsCommand) (l *lane, fn func(), ok bool) {
	<-c.slots
	c.inflight.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmds.remove(w)
	l = c.lanes[stream]
	l.cmds--
	if l.cmds > 0 || l.busy {
		return nil, nil, false
	}
	if len(l.pending) == 0 {
		delete(c.lanes, stream)
		return nil, nil, false
	}
	// only a function waits while commands run and no one owns the lane
	l.busy = true
	return l, l.pop().fn, true
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
	if l, fn, ok := c.finished(w.cmd.Stream, w); ok {
		c.wg.Add(1)
		go c.runFuncs(w.cmd.Stream, l, fn)
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
