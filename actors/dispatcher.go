package actors

import (
	"time"
)

// dispatcher runs actor mailboxes on reusable goroutines. protoactor's
// default dispatcher starts a new goroutine every time a mailbox gets
// work; each one starts with a small stack that grows (and is copied) on
// the first deep call into a decider or the store, which showed as a
// quarter of the CPU in the command benchmark. Here a goroutine that has
// run a mailbox waits a while for the next one and keeps its grown stack.
//
// It never limits concurrency: when no goroutine is idle, Schedule starts
// one, so an actor blocked in a store call can never hold up another.
// Idle goroutines exit after idleFor, or at once after close.
type dispatcher struct {
	handoff    chan func() // unbuffered: only an idle worker receives
	quit       chan struct{}
	idleFor    time.Duration
	throughput int
}

func newDispatcher(idleFor time.Duration, throughput int) *dispatcher {
	return &dispatcher{
		handoff:    make(chan func()),
		quit:       make(chan struct{}),
		idleFor:    idleFor,
		throughput: throughput,
	}
}

// Schedule implements actor.Dispatcher.
func (d *dispatcher) Schedule(fn func()) {
	select {
	case d.handoff <- fn:
	default:
		go d.worker(fn)
	}
}

// Throughput implements actor.Dispatcher: how many messages a mailbox
// processes before it yields.
func (d *dispatcher) Throughput() int { return d.throughput }

func (d *dispatcher) worker(fn func()) {
	idle := time.NewTimer(d.idleFor)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(d.idleFor)
		select {
		case fn = <-d.handoff:
		case <-idle.C:
			return
		case <-d.quit:
			return
		}
	}
}

// close makes idle workers exit; work scheduled afterwards still runs, on
// a goroutine that exits when it is done.
func (d *dispatcher) close() { close(d.quit) }
