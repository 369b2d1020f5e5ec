package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Messages to a stream actor. Requests carry a reply channel with room for
// exactly one answer, so the actor never blocks on a caller that has gone.
type (
	request interface{ fail(err error) }

	execMsg struct {
		ctx      context.Context
		cmd      decider.Command
		expected events.ExpectedVersion
		// internal: the engine's own command (a step's), which no private
		// kind's rule is asked about.
		internal bool
		// Exactly one of reply and done is set: reply for Execute, which
		// waits for it; done for ExecuteFunc, called with the answer.
		reply chan execReply
		done  func(Result, error)
		// deadline, when set, is when an ExecuteFunc caller stops
		// waiting: a command still queued then is not decided (admit).
		deadline time.Time
		r        *Runtime // for done's callDone
	}
	execReply struct {
		res Result
		err error
	}

	stateMsg struct {
		caller decider.Caller
		reply  chan stateReply
	}
	stateReply struct {
		view StateView
		err  error
	}

	subscribeMsg struct {
		sub *subscription
		// caller is who subscribes, checked against a private kind's rule;
		// nil for the subscription's own go-live requests.
		caller *decider.Caller
		reply  chan error
	}
	// checkMsg asks whether caller may read the stream (CheckRead).
	checkMsg struct {
		caller decider.Caller
		reply  chan error
	}
	unsubscribeMsg struct{ sub *subscription }

	// wakeMsg activates a stream from the pending index at start-up.
	wakeMsg struct{ reply chan error }

	// idleTick is the actor's own passivation timer firing.
	idleTick struct{}
)

func (m *execMsg) fail(err error)      { m.answer(Result{}, err) }
func (m *stateMsg) fail(err error)     { m.reply <- stateReply{err: err} }
func (m *subscribeMsg) fail(err error) { m.reply <- err }
func (m *wakeMsg) fail(err error)      { m.reply <- err }
func (m *checkMsg) fail(err error)     { m.reply <- err }

// answer gives the command's outcome to its caller, once.
func (m *execMsg) answer(res Result, err error) {
	if m.done == nil {
		m.reply <- execReply{res: res, err: err}
		return
	}
	m.done(res, err)
	m.r.callDone()
}

// gone reports why the command's caller no longer waits, if it does not:
// its context ended, or its deadline (ExecuteFunc) passed at now.
func (m *execMsg) gone(now func() time.Time) error {
	if err := m.ctx.Err(); err != nil {
		return err
	}
	if !m.deadline.IsZero() && !now().Before(m.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// streamActor owns one stream: its state, version, subscribers, presence
// and the child running its current background step. Everything here is
// touched only from the actor's Receive, one message at a time.
type streamActor struct {
	r      *Runtime
	e      *entry
	kind   decider.Kind
	stream string
	log    *slog.Logger

	// failed is set when activation could not load the stream: the actor
	// retires at once and answers what was queued for it with this error.
	failed   error
	retired  bool // removed from the registry: forwards what it receives
	stopping bool

	state       decider.State
	version     uint64
	snapVersion uint64
	// dirty: state may not match the store (an append failed after the
	// tentative fold, or a kind function panicked); reload before use.
	dirty bool

	// pending: the store's pending index lists this stream, as far as the
	// actor knows.
	pending bool
	lastMsg time.Time
	timer   *time.Timer
	// seen counts the requests received, to compare with entry.inbox.
	seen uint64
	// pinned: it has a subscriber or a running step, as the registry
	// knows (lru.go).
	pinned bool

	subs    map[*subscription]struct{}
	members map[string]int

	// queue holds the commands received since the last flush (command.go).
	queue []*execMsg

	step *stepRun // the running background step
	// blockedKey is a step that cannot make progress (its completion could
	// not be recorded); it is retried on the next activation, not in a loop.
	blockedKey string

	cmds cmdWindow
}

func newStreamActor(r *Runtime, e *entry) *streamActor {
	return &streamActor{
		r:      r,
		e:      e,
		kind:   e.kind,
		stream: e.stream,
		log:    r.log.With("stream", e.stream),
		cmds:   cmdWindow{max: r.cfg.IdempotencyWindow},
	}
}

func (a *streamActor) Receive(c actor.Context) {
	defer func() {
		// Kind functions are guarded where they are called; this is the last
		// line that keeps a bug from restarting the actor behind our back.
		if p := recover(); p != nil {
			a.log.Error("stream actor panicked", "panic", p)
			a.dirty = true
		}
	}()
	switch m := c.Message().(type) {
	case *actor.Started:
		a.activate(c)
		a.updatePin()
		return
	case *actor.Stopping:
		a.stopping = true
		a.stopTimer()
		return
	case *actor.Stopped:
		a.detachSubs()
		a.r.actorStopped(a.e)
		a.r.obs.ActorPassivated(a.kind.Name())
		return
	case flushMsg:
		a.flush(c)
	case idleTick:
		a.onIdle()
	case evictMsg:
		a.onEvict()
	case *stepDone:
		a.onStepDone(c, m)
	case *stepAttempt:
		a.onStepAttempt(c, m)
	case *unsubscribeMsg:
		a.removeSubs([]*subscription{m.sub})
	case request:
		a.seen++
		a.onRequest(c, m)
	default:
		return
	}
	a.afterMessage()
}

func (a *streamActor) onRequest(c actor.Context, m request) {
	if a.failed != nil {
		m.fail(a.failed)
		return
	}
	if a.retired {
		if !a.r.send(a.stream, a.kind, m, true) {
			m.fail(unavailable(a.stream, errors.New("runtime stopping")))
		}
		return
	}
	a.lastMsg = time.Now()
	if a.dirty {
		if err := a.load(); err != nil {
			m.fail(fmt.Errorf("reload %s: %w", a.stream, err))
			return
		}
	}
	switch m := m.(type) {
	case *execMsg:
		a.enqueue(c, m)
	case *stateMsg:
		a.onState(m)
	case *subscribeMsg:
		a.onSubscribe(m)
	case *checkMsg:
		m.reply <- a.access(a.state, m.caller, decider.Read)
	case *wakeMsg:
		if len(a.kind.Steps(a.state)) == 0 {
			// Listed as pending but owing nothing: the step finished before
			// the index was cleared.
			if err := a.r.cfg.Store.SetPending(a.r.ctx, a.stream, false); err != nil {
				a.log.Warn("clear pending", "err", err)
			}
			a.pending = false
		}
		m.reply <- nil
	}
}

func (a *streamActor) onState(m *stateMsg) {
	if err := a.access(a.state, m.caller, decider.Read); err != nil {
		m.fail(err)
		return
	}
	if a.version == 0 {
		m.fail(events.Refuse(events.ErrNotFound, "stream %s has no events", a.stream))
		return
	}
	b, err := func() (b []byte, err error) {
		defer recoverInto(&err, "MarshalState")
		s := a.state
		if a.kind.HasPresence() {
			members := a.memberList()
			if f := a.r.cfg.Members; f != nil {
				members = f(a.stream)
			}
			s = a.kind.WithMembers(s, members)
		}
		return a.kind.MarshalState(s)
	}()
	if err != nil {
		m.fail(fmt.Errorf("state of %s: %w", a.stream, err))
		return
	}
	m.reply <- stateReply{view: StateView{Stream: a.stream, Version: a.version, JSON: b}}
}

// recoverInto turns a panic of a kind function into an error, so that a
// bug in one kind answers one caller instead of killing the actor.
func recoverInto(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s panicked: %v", what, p)
	}
}
