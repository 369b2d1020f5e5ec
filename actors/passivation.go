package actors

import "time"

// Passivation. The actor arms one timer at a time and checks on each tick
// how long it has really been idle, so a busy actor costs no timer resets.
//
// An actor whose stream has no events (version 0: a read of a stream that
// does not exist, a rejected or no-op command on it, a subscription since
// cancelled) does not wait for the timer: once it has answered, with no
// subscriber, no running step and nothing queued, it retires at once, so
// that requests for streams that do not exist cost no lasting actor.

func (a *streamActor) armIdle(d time.Duration) {
	r, e := a.r, a.e
	a.timer = time.AfterFunc(d, func() { r.sendTo(e, idleTick{}) })
}

func (a *streamActor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

func (a *streamActor) onIdle() {
	a.timer = nil
	if a.retired || a.stopping || a.failed != nil {
		return
	}
	timeout := a.r.cfg.IdleTimeout
	if idle := time.Since(a.lastMsg); idle < timeout {
		a.armIdle(timeout - idle)
		return
	}
	if len(a.subs) > 0 || a.step != nil {
		if h := a.r.hooks.busy; h != nil {
			h(a.stream)
		}
		a.armIdle(timeout)
		return
	}
	if !a.passivate() {
		// A request is queued (or the runtime is stopping and poisons
		// us itself): serve it, and look again a timeout after it.
		a.armIdle(timeout)
	}
}

// afterMessage runs after each message the actor handled (not after its
// lifecycle messages): it tells the registry whether the actor may be
// evicted, and an actor left with an empty stream and nothing to do
// retires at once.
func (a *streamActor) afterMessage() {
	a.updatePin()
	if a.version != 0 || a.retired || a.stopping || a.failed != nil || !a.idle() {
		return
	}
	a.passivate()
}

// idle reports whether the actor has no subscriber, no running step and no
// command waiting for its flush. Requests still in its mailbox are
// checked by Runtime.retireQuiet.
func (a *streamActor) idle() bool {
	return len(a.subs) == 0 && a.step == nil && len(a.queue) == 0
}

// passivate retires an idle actor unless a request is queued for it (the
// actor then stays and serves it; the check runs again after it). So a
// retired actor's mailbox holds no request, and every request sent after
// its retirement goes to the next activation, which starts once it has
// stopped: the requests sent for a stream are received in the order they
// were sent, across activations (see Runtime.ExecuteFunc).
func (a *streamActor) passivate() bool {
	if h := a.r.hooks.idle; h != nil {
		h(a.stream)
	}
	if !a.r.retireQuiet(a.e, a.seen) {
		return false
	}
	a.stopTimer()
	a.retired = true
	if h := a.r.hooks.retired; h != nil {
		h(a.stream)
	}
	return true
}
