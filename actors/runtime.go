package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/internal/counter"
	"github.com/b6368a97/engine/internal/logx"
)

type runState int

const (
	stateNew      runState = iota
	stateRunning           // serving
	stateStopping          // refusing new calls, waiting for in-flight ones
	stateClosing           // stopping the actors
	stateStopped
)

// Runtime runs one actor per active stream on a protoactor ActorSystem.
// It implements API. Create it with New, call Start once, and Stop it
// before closing the store.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	obs    Observer
	kinds  map[string]decider.Kind
	system *actor.ActorSystem
	disp   *dispatcher

	// ctx bounds the store calls of the actors and of catch-up readers; it
	// ends when Stop has stopped every actor.
	ctx    context.Context
	cancel context.CancelFunc
	// stepCtx bounds background steps; Stop cancels it first, so that a
	// step interrupted by the shutdown is not reported as failed: it is
	// still owed, and runs again after the restart.
	stepCtx    context.Context
	stepCancel context.CancelFunc

	// mu guards the registry and the run state. Messages to stream actors
	// are sent while holding it, which orders every message sent through
	// an entry before that entry's retirement (see retire).
	mu       sync.Mutex
	state    runState
	entries  map[string]*entry // the serving activation of each stream
	retiring map[string]*entry // activations told to stop, until they have
	lru      lruList           // the entries that may be evicted (lru.go)
	evicting int               // entries asked to passivate for MaxActors

	calls    counter.Counter // API calls in flight
	live     counter.Counter // stream actors not yet stopped
	bg       counter.Counter // catch-up goroutines of subscriptions
	shutdown sync.Once

	hooks hooks
}

// entry is one activation of a stream's actor.
type entry struct {
	stream string
	kind   decider.Kind
	pid    *actor.PID
	// prev is the stream's previous activation if it was still stopping
	// when this one was spawned: the new actor waits for it before it
	// loads, so two activations of a stream never overlap in this process.
	prev    *entry
	stopped chan struct{} // closed once the actor has stopped

	// Guarded by Runtime.mu:
	dead bool // the actor has stopped
	// inbox counts the requests sent to this activation (call, send); the
	// actor counts those it has received, so that the two agree exactly
	// when nothing is queued for it (retireQuiet).
	inbox uint64
	// Its place in Runtime.lru (listed), and why it may not be there: a
	// subscriber or a running step (pinned), or an eviction asked for.
	older, newer             *entry
	listed, pinned, evicting bool
}

// hooks let tests observe and pause the runtime at exact points, to make
// races deterministic. All nil in production.
type hooks struct {
	// idle runs on the actor's goroutine when it has decided to passivate
	// (idle timeout, or an empty stream), before it retires.
	idle func(stream string)
	// retired runs on the actor's goroutine right after it retired.
	retired func(stream string)
	// busy runs on the actor's goroutine when an idle actor is kept
	// because of a subscriber or a running step.
	busy func(stream string)
	// sent runs after an API call's message was queued for a stream actor.
	sent func(stream string, msg any)
	// goLive runs on a subscription's reader before each request to go
	// live.
	goLive func(stream string)
}

// New validates cfg, applies its defaults and returns a Runtime ready to
// Start.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Runtime{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "actors"),
		obs:      cfg.Observer,
		kinds:    make(map[string]decider.Kind, len(cfg.Kinds)),
		entries:  make(map[string]*entry),
		retiring: make(map[string]*entry),
	}
	for _, k := range cfg.Kinds {
		r.kinds[k.Name()] = k
	}
	handler := logx.AtLeast(cfg.Logger.Handler(), slog.LevelWarn)
	r.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(handler).With("lib", "protoactor")
	}))
	r.disp = newDispatcher(time.Second, 300)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.stepCtx, r.stepCancel = context.WithCancel(r.ctx)
	return r, nil
}

// Start begins serving and reactivates every stream in the store's pending
// index, so that their unfinished background steps resume. It returns once
// those streams are loaded (their steps run in the background). A stream
// that fails to load is logged and skipped: it is retried on its next
// message or at the next start.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.state != stateNew {
		r.mu.Unlock()
		return errors.New("actors: Start called twice or after Stop")
	}
	r.state = stateRunning
	r.mu.Unlock()

	if r.cfg.SkipResume {
		r.log.Info("runtime started", "resumed", 0)
		return nil
	}
	streams, err := r.cfg.Store.Pending(ctx)
	if err != nil {
		return fmt.Errorf("actors: list pending streams: %w", err)
	}
	waits := make([]*wakeMsg, 0, len(streams))
	defer func() {
		for range waits {
			r.callDone()
		}
	}()
	for _, s := range streams {
		k, err := r.kindOf(s)
		if err != nil {
			r.log.Warn("pending stream not served, skipped", "stream", s, "err", err)
			continue
		}
		m := &wakeMsg{reply: make(chan error, 1)}
		if err := r.call(s, k, m); err != nil {
			return fmt.Errorf("actors: resume %s: %w", s, err)
		}
		waits = append(waits, m)
	}
	for _, m := range waits {
		select {
		case err := <-m.reply:
			if err != nil {
				r.log.Error("resume pending stream", "err", err)
			}
		case <-ctx.Done():
			return fmt.Errorf("actors: resume pending streams: %w", ctx.Err())
		}
	}
	r.log.Info("runtime started", "resumed", len(waits))
	return nil
}

// Stop shuts the runtime down: new calls fail with ErrUnavailable, running
// background steps are interrupted (they are still owed and resume after a
// restart), in-flight calls are answered, then every actor is stopped and
// waited for. The caller closes the store afterwards. If ctx ends first,
// Stop returns its error; calling Stop again continues the shutdown.
func (r *Runtime) Stop(ctx context.Context) error {
	// Steps first: a step whose command is refused because the runtime
	// stops must see its context cancelled, or it would count a failure.
	r.stepCancel()
	r.mu.Lock()
	if r.state == stateStopped {
		r.mu.Unlock()
		return nil
	}
	if r.state < stateStopping {
		r.state = stateStopping
	}
	r.mu.Unlock()

	if err := r.calls.Wait(ctx); err != nil {
		return fmt.Errorf("actors: stop: waiting for in-flight calls: %w", err)
	}

	r.mu.Lock()
	if r.state == stateStopping {
		r.state = stateClosing
		for _, e := range r.entries {
			r.dropLocked(e)
			r.system.Root.Poison(e.pid)
		}
	}
	r.mu.Unlock()
	if err := r.live.Wait(ctx); err != nil {
		return fmt.Errorf("actors: stop: waiting for actors: %w", err)
	}
	r.cancel()
	if err := r.bg.Wait(ctx); err != nil {
		return fmt.Errorf("actors: stop: waiting for subscriptions: %w", err)
	}
	r.shutdown.Do(func() {
		r.system.Shutdown()
		r.disp.close()
	})
	r.mu.Lock()
	r.state = stateStopped
	r.mu.Unlock()
	r.log.Info("runtime stopped")
	return nil
}

// Execute implements API: a client's command.
func (r *Runtime) Execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (Result, error) {
	return r.execute(ctx, cmd, expected, false)
}

// execute runs a command. internal: the engine's own (a step's
// StepCommand), which may be a command the kind marks internal and is not
// subject to a private kind's rule; otherwise a client's.
func (r *Runtime) execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, internal bool) (Result, error) {
	k, err := r.checkCommand(&cmd, expected, internal)
	if err != nil {
		return Result{}, err
	}
	m := &execMsg{ctx: ctx, cmd: cmd, expected: expected, internal: internal, reply: make(chan execReply, 1)}
	rep, err := ask(ctx, r, cmd.Stream, k, m, m.reply)
	if err != nil {
		return Result{}, err
	}
	return rep.res, rep.err
}

// checkCommand validates a command before it is queued, and returns its
// stream's kind.
func (r *Runtime) checkCommand(cmd *decider.Command, expected events.ExpectedVersion, internal bool) (decider.Kind, error) {
	k, err := r.kindOf(cmd.Stream)
	if err != nil {
		return nil, err
	}
	if !internal && k.IsInternal(cmd.Type) {
		return nil, decider.Forbidden("%s is sent by the engine itself, never by clients", events.Clip(cmd.Type, 64))
	}
	if expected < events.AnyVersion {
		return nil, decider.Invalid("expected version %d is not a version", int64(expected))
	}
	if len(cmd.ID) > events.MaxIDLength {
		return nil, decider.Invalid("the command id is longer than %d bytes", events.MaxIDLength)
	}
	if cmd.Time.IsZero() {
		cmd.Time = r.cfg.Now()
	}
	return k, nil
}

// ExecuteFunc is Execute for a caller that does not wait: it queues a
// client's command for its stream's actor and returns at once; done is
// called exactly once with what Execute would return. It runs on the
// stream actor's goroutine, or on the caller's, before ExecuteFunc
// returns, when the command is refused before it is queued; so done must
// not block (it may call ExecuteFunc). It spares a transport a goroutine,
// a context and a timer per command.
//
// Commands queued one after another for one stream (each ExecuteFunc
// returning before the next is called, by one goroutine or by goroutines
// taking turns, as a /ws connection's lane does) are decided in the
// order queued, each on the state the earlier ones leave: the actor's
// mailbox is first in, first out, and a stream's next activation gets
// only what was sent after the previous one retired (see passivate). So a
// caller need not wait for one command's answer before it queues the
// next for the same stream, and the commands queued meanwhile share one
// append (group commit). Their answers come in that order too, except
// that a command answered without being decided (its caller gone, a
// failed reload) or whose kind function failed is answered at once,
// ahead of the commands of its batch decided before it.
//
// ExecuteFunc does not watch ctx nor deadline: a caller that stops
// waiting answers its own client, and done still comes, later. They only
// spare the store: a command whose ctx has ended, or whose deadline (when
// not zero) has passed, when its turn comes is answered with
// ErrUnavailable without being decided, as Execute does when its ctx ends.
func (r *Runtime) ExecuteFunc(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion, deadline time.Time, done func(Result, error)) {
	k, err := r.checkCommand(&cmd, expected, false)
	if err != nil {
		done(Result{}, err)
		return
	}
	m := &execMsg{ctx: ctx, cmd: cmd, expected: expected, done: done, deadline: deadline, r: r}
	if err := r.call(cmd.Stream, k, m); err != nil {
		done(Result{}, err)
	}
}

// ExecuteInternal runs a command with the engine's own authority: a
// command its kind marks internal is allowed, and a private kind's rule
// does not apply. It is for the cluster, which delivers the commands of
// background steps to the node owning their target stream; clients never
// reach it.
func (r *Runtime) ExecuteInternal(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (Result, error) {
	return r.execute(ctx, cmd, expected, true)
}

// Wake activates a stream, which resumes the background steps it owes. It
// returns once the stream is loaded. A stream listed as pending that owes
// nothing is taken off the index.
func (r *Runtime) Wake(ctx context.Context, stream string) error {
	k, err := r.kindOf(stream)
	if err != nil {
		return err
	}
	m := &wakeMsg{reply: make(chan error, 1)}
	err, aerr := ask(ctx, r, stream, k, m, m.reply)
	if aerr != nil {
		return aerr
	}
	return err
}

// Evict passivates a stream's active actor now, whatever it is doing: a
// running background step is interrupted (it is still owed and runs again
// on the stream's next activation, here or on another node). Requests
// already queued for the actor are still answered. It is for the cluster,
// when a stream's ownership moves to another node. A stream not active
// is left alone.
func (r *Runtime) Evict(stream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state >= stateClosing {
		return
	}
	if e := r.entries[stream]; e != nil {
		r.retireLocked(e)
	}
}

// State implements API.
func (r *Runtime) State(ctx context.Context, stream string, c decider.Caller) (StateView, error) {
	k, err := r.kindOf(stream)
	if err != nil {
		return StateView{}, err
	}
	m := &stateMsg{caller: c, reply: make(chan stateReply, 1)}
	rep, err := ask(ctx, r, stream, k, m, m.reply)
	if err != nil {
		return StateView{}, err
	}
	return rep.view, rep.err
}

// Subscribe implements API.
func (r *Runtime) Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error) {
	k, err := r.kindOf(req.Stream)
	if err != nil {
		return nil, err
	}
	if req.Sink == nil {
		return nil, fmt.Errorf("%w: subscribe to %s without a sink", decider.ErrInvalid, req.Stream)
	}
	sub := newSubscription(r, k, req)
	m := &subscribeMsg{sub: sub, caller: &req.Caller, reply: make(chan error, 1)}
	if err := r.call(req.Stream, k, m); err != nil {
		return nil, err
	}
	defer r.callDone()
	select {
	case err := <-m.reply:
		if err != nil {
			return nil, err
		}
		sub.start()
		return sub, nil
	case <-ctx.Done():
		sub.Cancel()
		return nil, unavailable(req.Stream, ctx.Err())
	}
}

// running reports whether the runtime serves calls (started, not
// stopping).
func (r *Runtime) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == stateRunning
}

// Check implements API.
func (r *Runtime) Check(stream string) error {
	_, err := r.kindOf(stream)
	return err
}

func (r *Runtime) kindOf(stream string) (decider.Kind, error) {
	id, err := events.ParseStreamID(stream)
	if err != nil {
		return nil, err
	}
	k, ok := r.kinds[id.Kind]
	if !ok {
		return nil, events.Refuse(ErrUnknownKind, "unknown stream kind %q", id.Kind)
	}
	return k, nil
}

func unavailable(stream string, cause error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, stream, cause)
}

// ask makes an API call: it sends msg to the stream's actor and waits for
// the actor's answer on reply, or for ctx to end.
func ask[T any](ctx context.Context, r *Runtime, stream string, k decider.Kind, msg any, reply <-chan T) (T, error) {
	var zero T
	if err := r.call(stream, k, msg); err != nil {
		return zero, err
	}
	defer r.callDone()
	select {
	case rep := <-reply:
		return rep, nil
	case <-ctx.Done():
		return zero, unavailable(stream, ctx.Err())
	}
}

// call admits an API call and queues msg for the stream's actor, activating
// it if needed. On success the caller must call callDone once it stops
// waiting for the reply; Stop waits for that.
func (r *Runtime) call(stream string, k decider.Kind, msg any) error {
	r.mu.Lock()
	if r.state != stateRunning {
		r.mu.Unlock()
		return unavailable(stream, errors.New("runtime not running"))
	}
	r.calls.Add() // under mu: Stop waits for no call admitted before it
	e := r.entries[stream]
	if e == nil {
		e = r.spawnLocked(stream, k)
	}
	r.touchLocked(e)
	r.system.Root.Send(e.pid, msg)
	r.mu.Unlock()
	if h := r.hooks.sent; h != nil {
		h(stream, msg)
	}
	return nil
}

func (r *Runtime) callDone() { r.calls.Done() }

// send queues a message of the runtime's own (forwarded by a retired
// actor) for the stream's serving actor. It fails once the actors are being
// stopped, or when the stream is not active and activate is false.
func (r *Runtime) send(stream string, k decider.Kind, msg any, activate bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state >= stateClosing {
		return false
	}
	e := r.entries[stream]
	if e == nil {
		if !activate {
			return false
		}
		e = r.spawnLocked(stream, k)
	}
	r.touchLocked(e)
	r.system.Root.Send(e.pid, msg)
	return true
}

// sendTo queues msg for one activation, unless it has stopped (which would
// make protoactor route it to its dead-letter log).
func (r *Runtime) sendTo(e *entry, msg any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !e.dead {
		r.system.Root.Send(e.pid, msg)
	}
}

func (r *Runtime) spawnLocked(stream string, k decider.Kind) *entry {
	e := &entry{stream: stream, kind: k, prev: r.retiring[stream], stopped: make(chan struct{})}
	r.live.Add()
	props := actor.PropsFromProducer(func() actor.Actor { return newStreamActor(r, e) }, actor.WithDispatcher(r.disp))
	e.pid = r.system.Root.Spawn(props)
	r.addLocked(e)
	return e
}

// retire removes an idle actor from the registry and poisons it. Every
// message sent through the entry before was queued ahead of the poison
// pill, so the actor still sees it (and forwards it to the next
// activation); every message sent afterwards goes to a new activation,
// which waits for this one to stop before it loads. It returns false when
// the entry is no longer the serving one (the runtime is stopping).
func (r *Runtime) retire(e *entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries[e.stream] != e {
		return false
	}
	r.retireLocked(e)
	return true
}

// retireQuiet retires e like retire, but only if every request sent to it
// has been received (seen is the actor's count): an actor that decided to
// passivate while a request was queued for it stays and serves it.
func (r *Runtime) retireQuiet(e *entry, seen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries[e.stream] != e || e.inbox != seen {
		return false
	}
	r.retireLocked(e)
	return true
}

func (r *Runtime) retireLocked(e *entry) {
	r.dropLocked(e)
	r.retiring[e.stream] = e
	r.system.Root.Poison(e.pid)
}

// actorStopped is called by an actor as its last act.
func (r *Runtime) actorStopped(e *entry) {
	r.mu.Lock()
	e.dead = true
	if r.retiring[e.stream] == e {
		delete(r.retiring, e.stream)
	}
	if r.entries[e.stream] == e {
		r.dropLocked(e)
	}
	r.mu.Unlock()
	close(e.stopped)
	r.live.Done()
}
