package cluster

import (
	"context"
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Presence across nodes. A room's members are the member names of the
// live subscriptions on every node. Each node's hub knows its own (its
// local members) and reports them to the room's owner whenever they
// change, after every membership change of the cluster (a new owner knows
// nothing yet) and every SweepInterval (a lost report heals). The owner
// keeps the reports in its presenceBook, and sends the union to every
// reporting node's hub endpoint, which tells its subscribers. A node that
// leaves the cluster is dropped from every room of the book.

type presenceBook struct {
	mu    sync.Mutex
	rooms map[string]map[string]nodeMembers // stream → node address →
}

type nodeMembers struct {
	hub     *actor.PID
	members []string
}

func newPresenceBook() *presenceBook {
	return &presenceBook{rooms: make(map[string]map[string]nodeMembers)}
}

// set records a node's local members of a room and returns the room's
// union and the hubs to tell.
func (b *presenceBook) set(stream, node string, hub *actor.PID, members []string) ([]string, []*actor.PID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.rooms[stream]
	if room == nil {
		room = make(map[string]nodeMembers)
		b.rooms[stream] = room
	}
	if len(members) == 0 {
		delete(room, node)
	} else {
		room[node] = nodeMembers{hub: hub, members: slices.Clone(members)}
	}
	union, hubs := unionOf(room), hubsOf(room)
	if len(members) == 0 {
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
	type change struct {
		stream string
		union  []string
		hubs   []*actor.PID
	}
	var changes []change
	b.mu.Lock()
	for stream, room := range b.rooms {
		changed := false
		for node := range room {
			if !alive[node] {
				delete(room, node)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if len(room) == 0 {
			delete(b.rooms, stream)
			continue
		}
		changes = append(changes, change{stream, unionOf(room), hubsOf(room)})
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
	union, hubs := n.presence.set(env.Stream, env.Node, hub, env.Members)
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
	if !n.serving.Load() {
		return // the reporter sends everything once the node serves
	}
	ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.RequestTimeout)
	defer cancel()
	env := &envelope{Op: opPresence, Stream: stream, Node: n.address, HubID: hubActorName, Members: members}
	if _, err := n.request(ctx, env); err != nil {
		n.log.Warn("report room members to the owner", "stream", stream, "err", err)
	}
}
