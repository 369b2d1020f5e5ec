package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Presence across nodes. A room's members are the member names of the
// live subscriptions on every node. Each node's hub knows its own (its
// local members) and reports them to the room's owner whenever they
// change, when a subscriber without a member name (a watcher) arrives,
// after every membership change of the cluster (a new owner knows nothing
// yet) and every SweepInterval (a lost report heals). The owner keeps the
// reports in its presenceBook, and sends the union to the hub endpoint of
// every node that has members or watchers, which tells its subscribers. A
// node that leaves the cluster is dropped from every room of the book, and
// so is a report not renewed within three SweepIntervals.

type presenceBook struct {
	mu    sync.Mutex
	rooms map[string]map[string]nodeMembers // stream → node address →
}

type nodeMembers struct {
	hub     *actor.PID
	members []string
	seen    time.Time // the last report
}

func newPresenceBook() *presenceBook {
	return &presenceBook{rooms: make(map[string]map[string]nodeMembers)}
}

// set records a node's local members of a room (watching: the node has
// subscribers of the room, with or without a member name) and returns the
// room's union and the hubs to tell.
func (b *presenceBook) set(stream, node string, hub *actor.PID, members []string, watching bool, now time.Time) ([]string, []*actor.PID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.rooms[stream]
	if room == nil {
		room = make(map[string]nodeMembers)
		b.rooms[stream] = room
	}
	gone := len(members) == 0 && !watching
	if gone {
		delete(room, node)
	} else {
		room[node] = nodeMembers{hub: hub, members: slices.Clone(members), seen: now}
	}
	union, hubs := unionOf(room), hubsOf(room)
	if gone {
		// A node that has left the room still hears who is left.
		hubs = append(hubs, hub)
	}
	if len(room) == 0 {
		delete(b.rooms, stream)
	}
	return union, hubs
}

// union is a room's members on every node, sorted.
func (b *presenceBook) union(stream string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return unionOf(b.rooms[stream])
}

// drop forgets a room whose ownership moved away.
func (b *presenceBook) drop(stream string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.rooms, stream)
}

// forget drops the reports of nodes not alive and calls push for each
// room whose union changed.
func (b *presenceBook) forget(alive map[string]bool, push func(stream string, union []string, hubs []*actor.PID)) {
	b.prune(func(_ string, nm nodeMembers) bool { return alive[nm.hub.GetAddress()] }, push)
}

// expire drops the reports older than before.
func (b *presenceBook) expire(before time.Time, push func(stream string, union []string, hubs []*actor.PID)) {
	b.prune(func(_ string, nm nodeMembers) bool { return !nm.seen.Before(before) }, push)
}

// prune drops the reports keep refuses and calls push for each room whose
// union changed (to the nodes still in it).
func (b *presenceBook) prune(keep func(node string, nm nodeMembers) bool, push func(stream string, union []string, hubs []*actor.PID)) {
	type change struct {
		stream string
		union  []string
		hubs   []*actor.PID
	}
	var changes []change
	b.mu.Lock()
	for stream, room := range b.rooms {
		before := unionOf(room)
		for node, nm := range room {
			if !keep(node, nm) {
				delete(room, node)
			}
		}
		if len(room) == 0 {
			delete(b.rooms, stream)
			continue
		}
		if after := unionOf(room); !slices.Equal(before, after) {
			changes = append(changes, change{stream, after, hubsOf(room)})
		}
	}
	b.mu.Unlock()
	for _, c := range changes {
		push(c.stream, c.union, c.hubs)
	}
}

func hubsOf(room map[string]nodeMembers) []*actor.PID {
	hubs := make([]*actor.PID, 0, len(room))
	for _, nm := range room {
		hubs = append(hubs, nm.hub)
	}
	return hubs
}

func unionOf(room map[string]nodeMembers) []string {
	var all []string
	for _, nm := range room {
		all = append(all, nm.members...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// onPresence runs on a room's owner: a node reports its local members.
func (n *Node) onPresence(env *envelope) {
	hub := actor.NewPID(env.Node, env.HubID)
	union, hubs := n.presence.set(env.Stream, env.Node, hub, env.Members, env.Watching, time.Now())
	n.pushMembers(env.Stream, union, hubs)
}

// pushMembers sends a room's union to the hubs of the nodes in it.
func (n *Node) pushMembers(stream string, union []string, hubs []*actor.PID) {
	msg, err := pack(&envelope{Op: opMembers, Stream: stream, Members: union})
	if err != nil {
		n.log.Error("encode members", "err", err)
		return
	}
	for _, h := range hubs {
		if h.GetAddress() == n.address {
			n.hub.SetMembers(stream, union)
			continue
		}
		n.system.Root.Send(h, msg)
	}
}

// localMembers is the hub's report that this node's members of a room
// changed: it goes to the room's owner.
func (n *Node) localMembers(stream string, members []string) {
	_, watching := n.hub.Local(stream)
	n.reportPresence(stream, members, watching)
}

// reportPresence tells a room's owner this node's members of the room.
func (n *Node) reportPresence(stream string, members []string, watching bool) {
	if !n.serving.Load() {
		return // the reporter sends everything once the node serves
	}
	ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.RequestTimeout)
	defer cancel()
	env := &envelope{Op: opPresence, Stream: stream, Node: n.address, HubID: hubActorName, Members: members, Watching: watching}
	if _, err := n.request(ctx, env); err != nil {
		n.log.Warn("report room members to the owner", "stream", stream, "err", err)
	}
}
