package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/cluster/hub"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/internal/logx"
)

// Defaults of Config's zero values.
const (
	DefaultName           = "engine"
	DefaultRequestTimeout = 2 * time.Second
	DefaultJoinTimeout    = 30 * time.Second
	DefaultPollInterval   = 500 * time.Millisecond
	// DefaultSweepInterval: how often each node wakes the streams of the
	// pending index on their owners, besides after every membership change.
	DefaultSweepInterval = 10 * time.Second
)

// Config configures a Node.
type Config struct {
	// Name of the cluster: nodes of another name are not members.
	Name string
	// Bind is this node's cluster address, host:port, reachable by the
	// other nodes (not 0.0.0.0). Its membership endpoint listens on the
	// same host at port+1.
	Bind string
	// Peers are the cluster addresses of every node, this one included.
	// A node serves commands only while it sees a majority of them.
	Peers []string
	// Provider, when set, replaces the static-peers membership (for
	// example protoactor's etcd or Kubernetes provider; see
	// docs/deployment.md). Peers may then be empty, and Quorum is the
	// number of members a node must see to serve (default: a majority of
	// Peers, or 1 without them).
	Provider protocluster.ClusterProvider
	Quorum   int
	// Runtime configures the node's runtime; New sets its cluster fields
	// (SkipResume, Commands, Members).
	Runtime actors.Config
	// RequestTimeout bounds one attempt of a request to a stream's owner;
	// a request is retried until the caller's context ends.
	RequestTimeout time.Duration
	// JoinTimeout bounds Start's wait for the other peers; after it a
	// node that sees a majority serves, and one that does not fails.
	JoinTimeout time.Duration
	// PollInterval is how often membership is checked.
	PollInterval  time.Duration
	SweepInterval time.Duration
	// ExcludeGrace: see Excluded. Default DefaultExcludeGrace.
	ExcludeGrace time.Duration
	Logger       *slog.Logger
}

// Node is one engine process of a cluster: it implements actors.API for
// the transport, sending each stream's commands and reads to the node that
// owns it, and serving subscriptions from the shared log through its hub.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store events.Store
	kinds map[string]decider.Kind
	rt    *actors.Runtime
	hub   *hub.Hub

	system   *actor.ActorSystem
	c        *protocluster.Cluster
	hubPID   *actor.PID
	address  string // this node's cluster address (host:port)
	members  atomic.Int32
	quorum   int32
	serving  atomic.Bool
	presence *presenceBook
	view     memberView
	excluded chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	sweep  chan struct{}
	report chan struct{}
	stop   sync.Once
}

var _ actors.API = (*Node)(nil)

// New validates cfg and builds the node's runtime and hub. Call Start.
func New(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.ExcludeGrace <= 0 {
		cfg.ExcludeGrace = DefaultExcludeGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if _, _, err := splitHostPort(cfg.Bind); err != nil {
		return nil, fmt.Errorf("cluster: bind address %q: %w", cfg.Bind, err)
	}
	self := false
	for _, p := range cfg.Peers {
		if _, _, err := splitHostPort(p); err != nil {
			return nil, fmt.Errorf("cluster: peer %q: %w", p, err)
		}
		self = self || p == cfg.Bind
	}
	if !self && cfg.Provider == nil {
		return nil, fmt.Errorf("cluster: the peers %v do not list this node's address %s", cfg.Peers, cfg.Bind)
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = max(len(cfg.Peers)/2+1, 1)
	}
	if cfg.Runtime.Store == nil {
		return nil, errors.New("cluster: no store")
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "cluster"),
		store:    cfg.Runtime.Store,
		kinds:    make(map[string]decider.Kind),
		address:  cfg.Bind,
		quorum:   int32(cfg.Quorum),
		presence: newPresenceBook(),
		sweep:    make(chan struct{}, 1),
		excluded: make(chan struct{}),
		report:   make(chan struct{}, 1),
	}
	for _, k := range cfg.Runtime.Kinds {
		n.kinds[k.Name()] = k
	}
	rc := cfg.Runtime
	rc.SkipResume = true
	rc.Commands = n.executeInternal
	rc.Members = n.presence.union
	rt, err := actors.New(rc)
	if err != nil {
		return nil, err
	}
	n.rt = rt
	h, err := hub.New(hub.Config{
		Store: n.store,
		HasPresence: func(stream string) bool {
			k, err := n.kindOf(stream)
			return err == nil && k.HasPresence()
		},
		LocalMembers: n.localMembers,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.hub = h
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// Runtime is the node's own runtime (for metrics and tests).
func (n *Node) Runtime() *actors.Runtime { return n.rt }

// Start starts the runtime and the hub, joins the cluster and waits until
// it sees every peer (or, after Config.JoinTimeout, a majority of them),
// then wakes the streams owing background steps on their owners.
func (n *Node) Start(ctx context.Context) error {
	if err := n.rt.Start(ctx); err != nil {
		return err
	}
	if err := n.hub.Start(ctx); err != nil {
		return err
	}
	if err := n.join(); err != nil {
		return err
	}
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	for int(n.members.Load()) < max(len(n.cfg.Peers), int(n.quorum)) {
		if time.Now().After(deadline) {
			if n.members.Load() >= n.quorum {
				break
			}
			return fmt.Errorf("cluster: sees %d of %d peers after %s: no majority", n.members.Load(), len(n.cfg.Peers), n.cfg.JoinTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for the peers: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.serving.Store(true)
	n.bg.Add(2)
	go n.sweeper()
	go n.reporter()
	if n.cfg.Provider == nil {
		n.bg.Add(1)
		go n.watchExclusion()
	}
	n.kickSweep()
	n.log.Info("cluster member serving", "address", n.address, "members", n.members.Load(), "peers", len(n.cfg.Peers))
	return nil
}

// join starts the actor system's remote, the membership endpoint and the
// cluster member.
func (n *Node) join() error {
	host, port, _ := splitHostPort(n.cfg.Bind)
	handler := logx.AtLeast(n.cfg.Logger.Handler(), slog.LevelWarn)
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(handler).With("lib", "protoactor")
	}))
	kinds := make([]*protocluster.Kind, 0, len(n.kinds))
	names := make([]string, 0, len(n.kinds))
	for name := range n.kinds {
		props := actor.PropsFromProducer(func() actor.Actor { return &grain{n: n} })
		kinds = append(kinds, protocluster.NewKind(name, props))
		names = append(names, name)
	}
	provider := n.cfg.Provider
	if provider == nil {
		var err error
		if provider, err = newMembership(n, host, port+1, names); err != nil {
			return err
		}
	}
	lookup := newLookup()
	rc := remote.Configure(host, port)
	cc := protocluster.Configure(n.cfg.Name, provider, lookup, rc,
		protocluster.WithKinds(kinds...),
		protocluster.WithRequestTimeout(n.cfg.RequestTimeout))
	n.c = protocluster.New(n.system, cc)
	n.system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*protocluster.ClusterTopology); ok {
			n.onTopology(t)
		}
	})
	n.c.StartMember()
	pid, err := n.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &hubActor{n: n} }), hubActorName)
	if err != nil {
		return fmt.Errorf("cluster: spawn the hub endpoint: %w", err)
	}
	n.hubPID = pid
	return nil
}

// onTopology runs on protoactor's event stream when the membership
// changes: ownership of streams may have moved, so the node wakes the
// pending streams on their (new) owners and tells the owners of its rooms
// who is there.
func (n *Node) onTopology(t *protocluster.ClusterTopology) {
	n.members.Store(int32(len(t.Members)))
	alive := make(map[string]bool, len(t.Members))
	ids := make([]string, 0, len(t.Members))
	for _, m := range t.Members {
		alive[m.Address()] = true
		ids = append(ids, m.Id)
	}
	n.view.set(ids)
	n.presence.forget(alive, n.pushMembers)
	n.log.Info("cluster membership changed", "members", len(t.Members), "joined", len(t.Joined), "left", len(t.Left))
	n.kickSweep()
	select {
	case n.report <- struct{}{}:
	default:
	}
}

// Ready is nil while the node serves: joined, not leaving, and seeing a
// majority of its peers. The engine's /readyz asks it, so that a load
// balancer sends clients to the nodes that can serve them.
func (n *Node) Ready() error {
	switch {
	case !n.serving.Load():
		return errors.New("this node is not serving the cluster (starting or leaving)")
	case !n.quorate():
		return fmt.Errorf("this node sees %d members of the cluster, fewer than the %d it needs", n.members.Load(), n.quorum)
	}
	return nil
}

// quorate reports whether the node sees a majority of its peers: a node
// cut off from the others stops serving commands rather than act as an
// owner beside the one the majority chose.
func (n *Node) quorate() bool { return n.members.Load() >= n.quorum }

// Stop leaves the cluster gracefully: the node stops serving (requests to
// it are retried by their callers elsewhere), its membership endpoint
// closes so that the peers drop it and take over its streams, then its
// runtime and hub stop.
func (n *Node) Stop(ctx context.Context) error {
	var err error
	n.stop.Do(func() {
		n.serving.Store(false)
		n.cancel()
		n.bg.Wait()
		if n.c != nil {
			_ = n.c.Config.ClusterProvider.Shutdown(true)
			// Let the peers notice (they poll every PollInterval) before
			// this node's activations go.
			select {
			case <-time.After(2 * n.cfg.PollInterval):
			case <-ctx.Done():
			}
		}
		if e := n.rt.Stop(ctx); e != nil {
			err = e
		}
		if e := n.hub.Stop(ctx); e != nil && err == nil {
			err = e
		}
		if n.c != nil {
			n.c.Shutdown(false)
		}
	})
	return err
}

// --- actors.API ---

// Check implements actors.API.
func (n *Node) Check(stream string) error {
	_, err := n.kindOf(stream)
	return err
}

// Execute implements actors.API: the command goes to the stream's owner.
// A command without an id gets one here, so that a retry after a lost
// reply (the owner died, or moved) cannot apply it twice.
func (n *Node) Execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (actors.Result, error) {
	return n.execute(ctx, opExecute, cmd, expected)
}

func (n *Node) executeInternal(ctx context.Context, cmd decider.Command) (actors.Result, error) {
	return n.execute(ctx, opInternal, cmd, events.AnyVersion)
}

func (n *Node) execute(ctx context.Context, op string, cmd decider.Command, expected events.ExpectedVersion) (actors.Result, error) {
	if _, err := n.kindOf(cmd.Stream); err != nil {
		return actors.Result{}, err
	}
	if cmd.ID == "" {
		cmd.ID = "c-" + randomID()
	}
	env := &envelope{Op: op, Stream: cmd.Stream, Type: cmd.Type, Data: cmd.Data, ID: cmd.ID,
		User: cmd.User, Time: cmd.Time, Expected: int64(expected), Caller: cmd.Caller}
	backoff := 10 * time.Millisecond
	for {
		rep, err := n.request(ctx, env)
		if err != nil {
			return actors.Result{}, err
		}
		err = decodeError(cmd.Stream, rep.Err)
		if err == nil {
			return actors.Result{Stream: cmd.Stream, Version: rep.Version, Events: rep.Events}, nil
		}
		// A command with no expected version loses a race only to another
		// writer of the stream: two nodes serving it while ownership moves
		// (a stale owner leaves within seconds). Nothing was appended, and
		// the id makes a repeat safe: try again until the caller's
		// deadline.
		if expected != events.AnyVersion || !errors.Is(err, events.ErrWrongExpectedVersion) {
			return actors.Result{}, err
		}
		select {
		case <-ctx.Done():
			return actors.Result{}, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// State implements actors.API.
func (n *Node) State(ctx context.Context, stream string, c decider.Caller) (actors.StateView, error) {
	if _, err := n.kindOf(stream); err != nil {
		return actors.StateView{}, err
	}
	rep, err := n.request(ctx, &envelope{Op: opState, Stream: stream, Caller: c})
	if err != nil {
		return actors.StateView{}, err
	}
	if rep.Err != nil {
		return actors.StateView{}, decodeError(stream, rep.Err)
	}
	return actors.StateView{Stream: stream, Version: rep.Version, JSON: rep.JSON}, nil
}

// CheckRead implements actors.API. Only a private kind asks the owner.
func (n *Node) CheckRead(ctx context.Context, stream string, c decider.Caller) error {
	k, err := n.kindOf(stream)
	if err != nil {
		return err
	}
	if !k.IsPrivate() || c.Anonymous || c.Admin {
		return nil
	}
	rep, err := n.request(ctx, &envelope{Op: opCheckRead, Stream: stream, Caller: c})
	if err != nil {
		return err
	}
	return decodeError(stream, rep.Err)
}

// Subscribe implements actors.API: the subscription is served by this
// node's hub from the shared log, whoever owns the stream.
func (n *Node) Subscribe(ctx context.Context, req actors.SubscribeRequest) (actors.Subscription, error) {
	if err := n.CheckRead(ctx, req.Stream, req.Caller); err != nil {
		return nil, err
	}
	if req.Sink == nil {
		return nil, fmt.Errorf("%w: subscribe to %s without a sink", decider.ErrInvalid, req.Stream)
	}
	sub, err := n.hub.Subscribe(ctx, req)
	if err == nil && req.Member == "" {
		if k, _ := n.kindOf(req.Stream); k != nil && k.HasPresence() {
			// A watcher changes no member set, so the hub reports nothing:
			// ask the owner for the room's members and to keep sending
			// them here.
			go func() {
				members, watching := n.hub.Local(req.Stream)
				n.reportPresence(req.Stream, members, watching)
			}()
		}
	}
	return sub, err
}

func (n *Node) kindOf(stream string) (decider.Kind, error) {
	id, err := events.ParseStreamID(stream)
	if err != nil {
		return nil, err
	}
	k, ok := n.kinds[id.Kind]
	if !ok {
		return nil, events.Refuse(actors.ErrUnknownKind, "unknown stream kind %q", id.Kind)
	}
	return k, nil
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port >= 65535 {
		return "", 0, fmt.Errorf("port %q is not a port below 65535", p)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "", 0, errors.New("the host must be an address the other nodes reach, not empty or unspecified")
	}
	return host, port, nil
}

// StateAt implements actors.API: the read rule as for Subscribe (the
// owner's, for a private kind), then the same fold as a single node's,
// here, from the shared store.
func (n *Node) StateAt(ctx context.Context, stream string, version uint64, c decider.Caller) (actors.StateView, error) {
	k, err := n.kindOf(stream)
	if err != nil {
		return actors.StateView{}, err
	}
	if err := n.CheckRead(ctx, stream, c); err != nil {
		return actors.StateView{}, err
	}
	return actors.FoldAt(ctx, n.store, k, stream, version)
}

// CheckList implements actors.API.
func (n *Node) CheckList(kind string, c decider.Caller) error {
	k, ok := n.kinds[kind]
	if !ok {
		return events.Refuse(actors.ErrUnknownKind, "unknown stream kind %q", events.Clip(kind, 40))
	}
	return actors.ListRule(k, c)
}
