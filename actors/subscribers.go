package actors

import (
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// A stream's subscribers: registration (with the member it brings into
// presence), live events and removal. Catch-up is in subscription.go.

// onSubscribe answers a subscription's Subscribe and go-live requests
// (see subscription); it adds the subscription to the subscribers once it
// has caught up with a.version.
func (a *streamActor) onSubscribe(m *subscribeMsg) {
	sub := m.sub
	if m.caller != nil {
		if err := a.access(a.state, *m.caller, decider.Read); err != nil {
			m.reply <- err
			return
		}
	}
	live, err := sub.register(a.e, a.version)
	if err != nil {
		m.reply <- unavailable(a.stream, err)
		return
	}
	if !live {
		m.reply <- nil
		return
	}
	if a.subs == nil {
		a.subs = make(map[*subscription]struct{})
	}
	a.subs[sub] = struct{}{}
	m.reply <- nil
	if !a.kind.HasPresence() {
		return
	}
	if sub.member != "" {
		if a.members == nil {
			a.members = make(map[string]int)
		}
		a.members[sub.member]++
		if a.members[sub.member] == 1 {
			a.removeSubs(a.broadcastPresence())
			return
		}
	}
	// Membership did not change: tell the newcomer who is here.
	d := Delivery{Stream: a.stream, Members: a.memberList(), Presence: true}
	if !sub.deliver(d) {
		a.removeSubs([]*subscription{sub})
	}
}

func (a *streamActor) publish(evs []events.Event) {
	if len(a.subs) == 0 {
		return
	}
	var dropped []*subscription
	for i := range evs {
		d := Delivery{Stream: a.stream, Event: &evs[i]}
		for s := range a.subs {
			if !s.deliver(d) {
				dropped = append(dropped, s)
			}
		}
	}
	a.removeSubs(dropped)
}

// removeSubs forgets subscriptions, updates presence and tells the
// remaining subscribers, repeating while that drops more of them.
func (a *streamActor) removeSubs(list []*subscription) {
	for len(list) > 0 {
		changed := false
		for _, s := range list {
			if _, ok := a.subs[s]; !ok {
				continue
			}
			delete(a.subs, s)
			if s.member == "" || !a.kind.HasPresence() {
				continue
			}
			if a.members[s.member]--; a.members[s.member] <= 0 {
				delete(a.members, s.member)
				changed = true
			}
		}
		list = nil
		if changed {
			list = a.broadcastPresence()
		}
	}
}

func (a *streamActor) detachSubs() {
	for s := range a.subs {
		s.detach()
	}
	a.subs = nil
}
