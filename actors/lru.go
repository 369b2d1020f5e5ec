package actors

// At most Config.MaxActors activations serve at once: past it, the least
// recently used idle actor is passivated (Akka's "least recently used"
// passivation strategy).
//
// The registry keeps its evictable entries in a list, most recently used
// first. An API call moves its entry to the front under the lock call
// takes anyway: a few pointer writes on the hot path, no extra lock, no
// timer. An actor with a subscriber or a running step is pinned: it tells
// its entry when that changes (setPinned, on the transitions only) and is
// off the list, so the list's tail is always a candidate and choosing
// one costs O(1).
//
// Eviction is asynchronous. When a spawn takes the registry past the limit
// (counting the evictions already asked for), the tail is taken off the
// list and sent an evictMsg; the actor re-checks that it is idle (no
// subscriber, no step, no command waiting, no request queued) and retires
// the way an idle timeout does. An actor that has become busy meanwhile
// refuses: it goes back to the front of the list. The limit is therefore
// exceeded while evictions are in flight, and for as long as more than
// MaxActors actors are pinned (subscribed streams, running steps): pinned
// actors are never evicted, and no request is refused for the limit.

// lruList is an intrusive doubly linked list of entries, most recently used
// at the front. Guarded by Runtime.mu.
type lruList struct {
	front, back *entry
}

func (l *lruList) pushFront(e *entry) {
	e.older, e.newer, e.listed = l.front, nil, true
	if l.front != nil {
		l.front.newer = e
	} else {
		l.back = e
	}
	l.front = e
}

func (l *lruList) remove(e *entry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		l.front = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		l.back = e.newer
	}
	e.older, e.newer, e.listed = nil, nil, false
}

// evictMsg asks an actor to passivate for Config.MaxActors.
type evictMsg struct{}

// touchLocked records a request sent to e: one more in its inbox, and e is
// now the most recently used.
func (r *Runtime) touchLocked(e *entry) {
	e.inbox++
	if e.listed && r.lru.front != e {
		r.lru.remove(e)
		r.lru.pushFront(e)
	}
}

// addLocked registers a new activation as the most recently used, and
// evicts another if that takes the registry past the limit.
func (r *Runtime) addLocked(e *entry) {
	r.entries[e.stream] = e
	r.lru.pushFront(e)
	r.evictLocked(e)
}

// dropLocked removes e from the registry.
func (r *Runtime) dropLocked(e *entry) {
	delete(r.entries, e.stream)
	if e.listed {
		r.lru.remove(e)
	}
	if e.evicting {
		e.evicting = false
		r.evicting--
	}
}

// evictLocked asks the least recently used idle actors, other than except,
// to passivate until the registry, less the evictions in flight, is within
// the limit or no candidate is left.
func (r *Runtime) evictLocked(except *entry) {
	for len(r.entries)-r.evicting > r.cfg.MaxActors && r.state < stateClosing {
		e := r.lru.back
		if e == nil || e == except {
			return
		}
		r.lru.remove(e)
		e.evicting = true
		r.evicting++
		r.system.Root.Send(e.pid, evictMsg{})
	}
}

// setPinned is called by an actor when it gains its first subscriber or
// step (pinned), or loses its last: a pinned actor is never evicted.
func (r *Runtime) setPinned(e *entry, pinned bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.pinned = pinned
	if r.entries[e.stream] != e || e.evicting {
		return
	}
	switch {
	case pinned && e.listed:
		r.lru.remove(e)
	case !pinned && !e.listed:
		r.lru.pushFront(e)
		r.evictLocked(e)
	}
}

// keep is an evicted actor's refusal (it was busy): unless pinned, it is
// listed again as the most recently used, and another actor is asked in
// its place. It is not asked again until another actor is spawned or
// unpinned, so that two busy actors do not pass the request back and forth.
func (r *Runtime) keep(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !e.evicting {
		return
	}
	e.evicting = false
	r.evicting--
	if r.entries[e.stream] == e && !e.pinned {
		r.lru.pushFront(e)
	}
	r.evictLocked(e)
}

// onEvict: the runtime is past Config.MaxActors and this actor was the
// least recently used idle one. It retires if it is still idle with
// nothing queued, else it stays.
func (a *streamActor) onEvict() {
	if a.retired || a.stopping || a.failed != nil {
		return
	}
	if a.idle() && a.passivate() {
		return
	}
	a.r.keep(a.e)
}

// updatePin tells the registry when the actor gains its first or loses its
// last subscriber or step.
func (a *streamActor) updatePin() {
	if pinned := len(a.subs) > 0 || a.step != nil; pinned != a.pinned && !a.retired {
		a.pinned = pinned
		a.r.setPinned(a.e, pinned)
	}
}
