package actors

import "slices"

// Presence, for kinds that have it (Kind.HasPresence): the members of a
// stream are the Member names of its live subscriptions, counted in
// streamActor.members by onSubscribe and removeSubs; every subscriber is
// told when the set changes, a newcomer who is there.

// broadcastPresence sends the member list to every subscriber and returns
// those that could not take it.
func (a *streamActor) broadcastPresence() (dropped []*subscription) {
	d := Delivery{Stream: a.stream, Members: a.memberList(), Presence: true}
	for s := range a.subs {
		if !s.deliver(d) {
			dropped = append(dropped, s)
		}
	}
	return dropped
}

func (a *streamActor) memberList() []string {
	list := make([]string, 0, len(a.members))
	for m := range a.members {
		list = append(list, m)
	}
	slices.Sort(list)
	return list
}
