package hub

import (
	"maps"
	"slices"
	"sync"

	"github.com/b6368a97/engine/actors"
)

// entry is the hub's state for one stream with local subscriptions.
type entry struct {
	stream   string
	presence bool // the stream's kind has presence

	mu      sync.Mutex
	subs    map[*sub]struct{} // registered: holding or live
	members map[string]int    // Member names of the joined subscriptions, counted
	merged  []string          // the cluster-wide set last given to SetMembers, sorted
}

func newEntry(stream string, presence bool) *entry {
	e := &entry{stream: stream, presence: presence, subs: make(map[*sub]struct{})}
	if presence {
		e.members = make(map[string]int)
	}
	return e
}

// localLocked is the sorted local member set.
func (e *entry) localLocked() []string {
	return slices.Sorted(maps.Keys(e.members))
}

// viewLocked is what subscribers see: the cluster-wide set ∪ the local
// one, sorted.
func (e *entry) viewLocked() []string {
	view := slices.Clone(e.merged)
	for m := range e.members {
		if _, found := slices.BinarySearch(e.merged, m); !found {
			view = append(view, m)
		}
	}
	if view == nil {
		view = []string{}
	}
	slices.Sort(view)
	return view
}

// joinLocked makes s, which has just gone live, a member of e's presence
// and tells it who is there (and everyone else, when the view changed).
// It returns the subscriptions that overflowed.
func (h *Hub) joinLocked(e *entry, member string) (over []*sub) {
	if member != "" {
		e.members[member]++
		if e.members[member] == 1 {
			h.reportLocked(e)
		}
	}
	gone, over := h.broadcastLocked(e)
	return append(over, h.leaveLocked(e, gone)...)
}

// broadcastLocked delivers the view to every live subscription whose last
// presence list differs (a newcomer's always does). It returns those that
// must leave and, among them, those that overflowed now.
func (h *Hub) broadcastLocked(e *entry) (gone, over []*sub) {
	view := e.viewLocked()
	d := actors.Delivery{Stream: e.stream, Members: view, Presence: true}
	for s := range e.subs {
		keep, overflowed := s.offerPresence(d)
		if !keep {
			gone = append(gone, s)
		}
		if overflowed {
			over = append(over, s)
		}
	}
	return gone, over
}

// leaveLocked takes subscriptions out of e, updates presence and tells
// the remaining subscribers, repeating while that ends more of them. It
// returns the subscriptions that overflowed on the way.
func (h *Hub) leaveLocked(e *entry, gone []*sub) (over []*sub) {
	for len(gone) > 0 {
		changed := false
		for _, s := range gone {
			if _, ok := e.subs[s]; !ok {
				continue
			}
			delete(e.subs, s)
			s.mu.Lock()
			joined, member := s.joined, s.member
			s.entry, s.joined = nil, false
			s.mu.Unlock()
			if !joined || member == "" {
				continue
			}
			if e.members[member]--; e.members[member] <= 0 {
				delete(e.members, member)
				changed = true
			}
		}
		gone = nil
		if changed {
			h.reportLocked(e)
			var more []*sub
			gone, more = h.broadcastLocked(e)
			over = append(over, more...)
		}
	}
	return over
}

// reporter serialises the LocalMembers calls of one stream.
type reporter struct {
	want    []string // the current local set
	sent    []string // the set of the last call (nil: none, or empty)
	running bool     // a goroutine is calling LocalMembers
}

// reportLocked records e's new local member set and starts its stream's
// reporter unless it runs. Called with e.mu held, so that the sets of one
// stream are recorded in the order they happen.
func (h *Hub) reportLocked(e *entry) {
	set := e.localLocked()
	h.rmu.Lock()
	defer h.rmu.Unlock()
	r := h.reporters[e.stream]
	if r == nil {
		r = &reporter{}
		h.reporters[e.stream] = r
	}
	r.want = set
	if r.running {
		return
	}
	if slices.Equal(r.want, r.sent) {
		if len(r.sent) == 0 {
			delete(h.reporters, e.stream)
		}
		return
	}
	r.running = true
	h.rwg.Add(1)
	go h.runReporter(e.stream, r)
}

// runReporter calls LocalMembers until the last call carried the current
// set, then ends.
func (h *Hub) runReporter(stream string, r *reporter) {
	defer h.rwg.Done()
	for {
		h.rmu.Lock()
		if slices.Equal(r.want, r.sent) {
			r.running = false
			if len(r.sent) == 0 {
				delete(h.reporters, stream)
			}
			h.rmu.Unlock()
			return
		}
		want := r.want
		h.rmu.Unlock()
		h.cfg.LocalMembers(stream, slices.Clone(want))
		h.rmu.Lock()
		r.sent = want
		h.rmu.Unlock()
	}
}
