package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// A grain is a stream's virtual actor in protoactor's cluster: the
// cluster activates it on the member that owns the stream, and its
// existence is that member's ownership. It holds no state: each request
// goes to the node's runtime, whose stream actor holds the state, loaded
// from the shared store. When ownership moves (a member joined or left)
// the cluster stops the grain, and the grain evicts the runtime's actor,
// so that a stream is served by one node at a time; should two nodes
// briefly both serve it, the store's expected-version check refuses the
// stale one's append and its runtime reloads the stream and decides again.
type grain struct {
	n      *Node
	stream string
	last   time.Time
	timer  *time.Timer
	idle   bool // stopping itself after IdleTimeout: keep the runtime's actor
}

// grainTick is the grain's own idle timer firing.
type grainTick struct{}

func (g *grain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		if ci := protocluster.GetClusterIdentity(c); ci != nil {
			g.stream = ci.Identity
		}
		g.last = time.Now()
		g.arm(c)
	case *actor.Stopping:
		if g.timer != nil {
			g.timer.Stop()
		}
		if !g.idle && g.stream != "" {
			g.n.rt.Evict(g.stream)
			g.n.presence.drop(g.stream)
		}
	case grainTick:
		g.onTick(c)
	case *wrapperspb.BytesValue:
		g.last = time.Now()
		g.onRequest(c, m)
	}
}

// arm schedules the idle check with the actor's own message (not
// SetReceiveTimeout, whose timer touches the context from its goroutine).
func (g *grain) arm(c actor.Context) {
	self, root := c.Self(), c.ActorSystem().Root
	g.timer = time.AfterFunc(g.n.idleTimeout(), func() { root.Send(self, grainTick{}) })
}

// onTick stops an idle grain: a stream untouched for the runtime's idle
// timeout costs no activation in the cluster. Its runtime actor passivates
// by its own rule (it may still run a background step).
func (g *grain) onTick(c actor.Context) {
	if idle := time.Since(g.last); idle < g.n.idleTimeout() {
		self, root := c.Self(), c.ActorSystem().Root
		g.timer = time.AfterFunc(g.n.idleTimeout()-idle, func() { root.Send(self, grainTick{}) })
		return
	}
	g.idle = true
	c.Poison(c.Self())
}

func (g *grain) onRequest(c actor.Context, m *wrapperspb.BytesValue) {
	sender := c.Sender()
	if sender == nil {
		return
	}
	var env envelope
	if err := json.Unmarshal(m.GetValue(), &env); err != nil {
		g.n.log.Error("undecodable cluster request", "stream", g.stream, "err", err)
		g.n.respond(sender, &reply{Err: &wireError{Class: "internal"}})
		return
	}
	if !g.n.serving.Load() || !g.n.quorate() {
		g.n.respond(sender, &reply{Moved: true})
		return
	}
	// The runtime answers on its own; the grain takes the next request.
	// One connection's commands to a stream come one at a time (the
	// transport's lanes), so their order holds.
	go g.n.serve(&env, sender)
}

// serve runs one request on the node's runtime and sends the reply.
func (n *Node) serve(env *envelope, sender *actor.PID) {
	ctx, cancel := n.requestContext(env)
	defer cancel()
	rep := &reply{}
	var err error
	switch env.Op {
	case opExecute, opInternal:
		cmd := decider.Command{Stream: env.Stream, Type: env.Type, Data: env.Data, ID: env.ID,
			User: env.User, Caller: env.Caller, Time: env.Time}
		var res actors.Result
		if env.Op == opInternal {
			res, err = n.rt.ExecuteInternal(ctx, cmd, events.ExpectedVersion(env.Expected))
		} else {
			res, err = n.rt.Execute(ctx, cmd, events.ExpectedVersion(env.Expected))
		}
		rep.Version, rep.Events = res.Version, res.Events
	case opState:
		var v actors.StateView
		v, err = n.rt.State(ctx, env.Stream, env.Caller)
		rep.Version, rep.JSON = v.Version, v.JSON
	case opCheckRead:
		err = n.rt.CheckRead(ctx, env.Stream, env.Caller)
	case opWake:
		err = n.rt.Wake(ctx, env.Stream)
	case opPresence:
		n.onPresence(env)
	default:
		err = decider.Invalid("unknown cluster operation %q", events.Clip(env.Op, 32))
	}
	if err != nil && errors.Is(err, actors.ErrUnavailable) && !n.serving.Load() {
		rep = &reply{Moved: true}
	} else if err != nil {
		rep.Err = encodeError(err)
		if rep.Err.Class == "internal" || rep.Err.Class == "corrupt" {
			n.log.Error("cluster request failed", "op", env.Op, "stream", env.Stream, "err", err)
		}
	}
	n.respond(sender, rep)
}

// requestContext bounds a request served for another node by the caller's
// deadline, and by the node's life.
func (n *Node) requestContext(env *envelope) (context.Context, context.CancelFunc) {
	if env.Deadline > 0 {
		return context.WithDeadline(n.ctx, time.UnixMilli(env.Deadline))
	}
	return context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
}

func (n *Node) respond(to *actor.PID, rep *reply) {
	msg, err := pack(rep)
	if err != nil {
		n.log.Error("encode cluster reply", "err", err)
		msg, _ = pack(&reply{Err: &wireError{Class: "internal"}})
	}
	n.system.Root.Send(to, msg)
}

func (n *Node) idleTimeout() time.Duration {
	if d := n.cfg.Runtime.IdleTimeout; d > 0 {
		return d
	}
	return actors.DefaultIdleTimeout
}

// hubActorName names each node's endpoint for presence pushes from the
// owners of its rooms.
const hubActorName = "engine-hub"

type hubActor struct{ n *Node }

func (h *hubActor) Receive(c actor.Context) {
	m, ok := c.Message().(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	var env envelope
	if err := json.Unmarshal(m.GetValue(), &env); err != nil || env.Op != opMembers {
		h.n.log.Warn("unexpected message at the hub endpoint", "err", err)
		return
	}
	h.n.hub.SetMembers(env.Stream, env.Members)
}
