package actors

import "time"

// Passivation. The actor arms one timer at a time and checks on each tick
// how long it has really been idle, so a busy actor costs no timer resets.

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
	if h := a.r.hooks.idle; h != nil {
		h(a.stream)
	}
	if !a.r.retire(a.e) {
		return // the runtime is stopping and poisons us itself
	}
	a.retired = true
	if h := a.r.hooks.retired; h != nil {
		h(a.stream)
	}
}
