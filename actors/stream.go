package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
		reply    chan execReply
	}
	execReply struct {
		res Result
		err error
	}

	stateMsg   struct{ reply chan stateReply }
	stateReply struct {
		view StateView
		err  error
	}

	subscribeMsg struct {
		sub   *subscription
		reply chan error
	}
	unsubscribeMsg struct{ sub *subscription }

	// wakeMsg activates a stream from the pending index at start-up.
	wakeMsg struct{ reply chan error }

	// idleTick is the actor's own passivation timer firing.
	idleTick struct{}
)

func (m *execMsg) fail(err error)      { m.reply <- execReply{err: err} }
func (m *stateMsg) fail(err error)     { m.reply <- stateReply{err: err} }
func (m *subscribeMsg) fail(err error) { m.reply <- err }
func (m *wakeMsg) fail(err error)      { m.reply <- err }

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

	subs    map[*subscription]struct{}
	members map[string]int

	// queue holds the commands received since the last flush (batch.go).
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
	case *actor.Stopping:
		a.stopping = true
		a.stopTimer()
	case *actor.Stopped:
		a.detachSubs()
		a.r.actorStopped(a.e)
		a.r.obs.ActorPassivated(a.kind.Name())
	case flushMsg:
		a.flush(c)
	case idleTick:
		a.onIdle()
	case *stepDone:
		a.onStepDone(c, m)
	case *stepAttempt:
		a.onStepAttempt(c, m)
	case *unsubscribeMsg:
		a.removeSubs([]*subscription{m.sub})
	case request:
		a.onRequest(c, m)
	}
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

// activate runs once per activation, before any message: it loads the
// stream and starts any step its state owes.
func (a *streamActor) activate(c actor.Context) {
	a.r.obs.ActorActivated(a.kind.Name())
	if p := a.e.prev; p != nil {
		<-p.stopped
		a.e.prev = nil
	}
	a.lastMsg = time.Now()
	a.cmds.reset()
	if err := a.load(); err != nil {
		a.failed = fmt.Errorf("activate %s: %w", a.stream, err)
		a.log.Error("activation failed", "err", err)
		a.r.retire(a.e)
		return
	}
	a.armIdle(a.r.cfg.IdleTimeout)
	steps := a.kind.Steps(a.state)
	a.pending = len(steps) > 0
	if a.version-a.snapVersion >= uint64(a.r.cfg.SnapshotEvery) {
		a.snapshot()
	}
	a.maybeStartStep(c, steps, 0, "")
}

// load rebuilds the state from the latest snapshot and the events after it.
func (a *streamActor) load() error {
	ctx := a.r.ctx
	state := a.kind.Initial(a.stream)
	var version uint64
	snap, err := a.r.cfg.Store.LoadSnapshot(ctx, a.stream)
	switch {
	case err == nil:
		s, err := a.kind.UnmarshalState(snap.Data)
		if err != nil {
			a.log.Warn("snapshot unreadable, replaying the whole stream", "version", snap.Version, "err", err)
			break
		}
		state, version = s, snap.Version
	case errors.Is(err, events.ErrNotFound):
	default:
		return fmt.Errorf("load snapshot: %w", err)
	}
	a.snapVersion = version
	err = func() (err error) {
		defer recoverInto(&err, "Evolve")
		for ev, err := range events.IterStream(ctx, a.r.cfg.Store, a.stream, version) {
			if err != nil {
				return err
			}
			if state, err = a.kind.Evolve(state, ev); err != nil {
				return fmt.Errorf("replay %s version %d: %w", a.stream, ev.Version, err)
			}
			version = ev.Version
			a.cmds.noteEvent(ev)
		}
		return nil
	}()
	if err != nil {
		a.dirty = true
		return err
	}
	a.state, a.version, a.dirty = state, version, false
	return nil
}

func (a *streamActor) onExec(c actor.Context, m *execMsg) {
	if err := m.ctx.Err(); err != nil {
		// The caller has gone: deciding now would only waste the store.
		m.fail(unavailable(a.stream, err))
		a.r.obs.CommandDone(a.kind.Name(), ResultUnavailable, 0)
		return
	}
	res, fresh, outcome, dur, err := a.execute(m.cmd, m.expected)
	m.reply <- execReply{res: res, err: err}
	a.r.obs.CommandDone(a.kind.Name(), outcome, dur)
	if len(fresh) > 0 {
		a.afterAppend(c, fresh, "")
	}
}

// execute decides and appends one command. fresh are the events it newly
// stored (nil for a no-op, an error or an idempotent repeat).
func (a *streamActor) execute(cmd decider.Command, expected events.ExpectedVersion) (res Result, fresh []events.Event, outcome string, dur time.Duration, err error) {
	for attempt := 0; ; attempt++ {
		if cmd.ID != "" {
			if rec, ok := a.cmds.get(cmd.ID); ok {
				res, err := a.resultOf(rec)
				if err != nil {
					return Result{}, nil, ResultError, dur, err
				}
				return res, nil, ResultIdempotent, dur, nil
			}
		}
		if expected != events.AnyVersion && !expected.Matches(a.version) {
			return Result{}, nil, ResultWrongExpect, dur, &events.WrongExpectedVersionError{Stream: a.stream, Expected: expected, Current: a.version}
		}
		evs, err := a.decide(cmd)
		if err != nil {
			return Result{}, nil, ResultRejected, dur, err
		}
		if len(evs) == 0 {
			a.cmds.put(cmd.ID, cmdRecord{last: a.version})
			return Result{Stream: a.stream, Version: a.version}, nil, ResultNoop, dur, nil
		}
		a.stamp(evs, cmd.Time, cmd.ID, cmd.ID)
		ar, d, err := a.persist(evs)
		dur += d
		switch {
		case err == nil && ar.Duplicate:
			// Every id is stored already: a repeat of a command this
			// activation does not remember (see cmdWindow).
			a.cmds.put(cmd.ID, recordOf(ar.Events))
			return Result{Stream: a.stream, Version: ar.Version(), Events: ar.Events}, nil, ResultIdempotent, dur, nil
		case err == nil:
			a.cmds.put(cmd.ID, recordOf(ar.Events))
			return Result{Stream: a.stream, Version: a.version, Events: ar.Events}, ar.Events, ResultOK, dur, nil
		case errors.Is(err, events.ErrWrongExpectedVersion) && attempt == 0:
			// Another writer (a second runtime on the same store) moved the
			// stream: catch up and decide once more on the new state.
			if err := a.load(); err != nil {
				return Result{}, nil, ResultError, dur, fmt.Errorf("reload %s after a conflict: %w", a.stream, err)
			}
			continue
		case errors.Is(err, events.ErrWrongExpectedVersion):
			return Result{}, nil, ResultWrongExpect, dur, err
		case errors.Is(err, events.ErrDuplicateID):
			return Result{}, nil, ResultRejected, dur, fmt.Errorf("%w: command %q was applied before with a different outcome: %w", decider.ErrConflict, cmd.ID, err)
		default:
			return Result{}, nil, ResultError, dur, fmt.Errorf("append %s: %w", a.stream, err)
		}
	}
}

func (a *streamActor) decide(cmd decider.Command) (evs []events.Event, err error) {
	defer recoverInto(&err, "Decide")
	return a.kind.Decide(a.state, cmd)
}

// stamp gives new events their ids, time and meta. With a command id the
// ids derive from it, so a repeat is an idempotent retry for the store;
// Causation records the command id, which lets a later activation
// recognise the repeat (cmdWindow.noteEvent).
func (a *streamActor) stamp(evs []events.Event, at time.Time, cmdID, correlation string) {
	t := events.NormalizeTime(at, a.r.cfg.Now)
	for i := range evs {
		if cmdID != "" {
			evs[i].ID = derivedID(a.stream, cmdID, i)
		} else {
			evs[i].ID = newID(t)
		}
		evs[i].Time = t
		if correlation == "" {
			correlation = evs[0].ID
		}
		evs[i].Meta = events.Meta{Correlation: correlation, Causation: cmdID}
	}
}

// persist folds evs into a tentative state, marks the stream pending if
// that state owes steps (before the append, so a crash in between cannot
// lose the work), then appends at the actor's version. On success the
// tentative state becomes the state; otherwise the actor is dirty (Evolve
// may have mutated the old state in place) and reloads before its next use.
func (a *streamActor) persist(evs []events.Event) (events.AppendResult, time.Duration, error) {
	a.dirty = true
	next, err := a.fold(a.state, a.version, evs)
	if err != nil {
		return events.AppendResult{}, 0, fmt.Errorf("%s: evolve a decided event: %w", a.stream, err)
	}
	return a.commit(next, evs)
}

// commit appends evs, already folded into next, at the actor's version;
// next becomes the state once they are durable. The caller has set dirty.
func (a *streamActor) commit(next decider.State, evs []events.Event) (events.AppendResult, time.Duration, error) {
	if !a.pending && len(a.kind.Steps(next)) > 0 {
		if err := a.r.cfg.Store.SetPending(a.r.ctx, a.stream, true); err != nil {
			return events.AppendResult{}, 0, fmt.Errorf("mark %s pending: %w", a.stream, err)
		}
		a.pending = true
	}
	t0 := time.Now()
	ar, err := a.r.cfg.Store.Append(a.r.ctx, a.stream, events.Exactly(a.version), evs)
	dur := time.Since(t0)
	if err != nil || ar.Duplicate {
		return ar, dur, err
	}
	if got, want := ar.Events[0].Version, a.version+1; got != want {
		// Cannot happen with a store that keeps its contract.
		return ar, dur, fmt.Errorf("append %s: store returned version %d, want %d", a.stream, got, want)
	}
	a.state, a.version, a.dirty = next, ar.Version(), false
	return ar, dur, nil
}

// fold applies new events to s, numbering them from base+1 the way the
// store will (Position is not known yet: kinds must not depend on it).
func (a *streamActor) fold(s decider.State, base uint64, evs []events.Event) (_ decider.State, err error) {
	defer recoverInto(&err, "Evolve")
	for i, ev := range evs {
		ev.Version = base + uint64(i) + 1
		ev.Stream = a.stream
		if s, err = a.kind.Evolve(s, ev); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// afterAppend runs after the reply: publish, bookkeeping, next step.
// completed is the key of the step whose completion was just recorded.
func (a *streamActor) afterAppend(c actor.Context, fresh []events.Event, completed string) {
	a.publish(fresh)
	steps := a.kind.Steps(a.state)
	if len(steps) == 0 && a.pending {
		if err := a.r.cfg.Store.SetPending(a.r.ctx, a.stream, false); err != nil {
			// A stale entry costs one activation at the next start.
			a.log.Warn("clear pending", "err", err)
		} else {
			a.pending = false
		}
	}
	if a.version-a.snapVersion >= uint64(a.r.cfg.SnapshotEvery) {
		a.snapshot()
	}
	if a.step != nil && !slices.ContainsFunc(steps, func(st decider.Step) bool { return st.Key == a.step.step.Key }) {
		// These events made the running step moot (an order cancelled
		// while it cooks): stop it, so the steps now owed (releasing the
		// kitchen ticket) need not wait for it. Its late report, if any,
		// no longer matches a.step and is ignored.
		c.Stop(a.step.pid)
		a.step = nil
	}
	a.maybeStartStep(c, steps, 0, completed)
}

func (a *streamActor) snapshot() {
	// Try again only after another SnapshotEvery events, even on failure,
	// so a failing store is not hammered after every command.
	defer func() { a.snapVersion = a.version }()
	b, err := func() (b []byte, err error) {
		defer recoverInto(&err, "MarshalState")
		return a.kind.MarshalState(a.state)
	}()
	if err != nil {
		a.log.Error("snapshot: marshal state", "version", a.version, "err", err)
		return
	}
	snap := events.Snapshot{Stream: a.stream, Version: a.version, Data: b}
	if err := a.r.cfg.Store.SaveSnapshot(a.r.ctx, snap); err != nil {
		a.log.Warn("snapshot: save", "version", a.version, "err", err)
	}
}

func (a *streamActor) onState(m *stateMsg) {
	if a.version == 0 {
		m.fail(fmt.Errorf("%s: %w", a.stream, events.ErrNotFound))
		return
	}
	b, err := func() (b []byte, err error) {
		defer recoverInto(&err, "MarshalState")
		s := a.state
		if a.kind.HasPresence() {
			s = a.kind.WithMembers(s, a.memberList())
		}
		return a.kind.MarshalState(s)
	}()
	if err != nil {
		m.fail(fmt.Errorf("state of %s: %w", a.stream, err))
		return
	}
	m.reply <- stateReply{view: StateView{Stream: a.stream, Version: a.version, JSON: b}}
}

// Passivation. The actor arms one timer at a time and checks on each tick
// how long it has really been idle, so a busy actor costs no timer resets.

func (a *streamActor) armIdle(d time.Duration) {
	r, e := a.r, a.e
	a.timer = time.AfterFunc(d, func() { r.sendTo(e, idleTick{}) })
}

func (a *streamActor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

func (a *streamActor) onIdle() {
	a.timer = nil
	if a.retired || a.stopping || a.failed != nil {
		return
	}
	timeout := a.r.cfg.IdleTimeout
	if idle := time.Since(a.lastMsg); idle < timeout {
		a.armIdle(timeout - idle)
		return
	}
	if len(a.subs) > 0 || a.step != nil {
		if h := a.r.hooks.busy; h != nil {
			h(a.stream)
		}
		a.armIdle(timeout)
		return
	}
	if h := a.r.hooks.idle; h != nil {
		h(a.stream)
	}
	if !a.r.retire(a.e) {
		return // the runtime is stopping and poisons us itself
	}
	a.retired = true
	if h := a.r.hooks.retired; h != nil {
		h(a.stream)
	}
}

// Subscribers and presence.

// onSubscribe answers a subscription's Subscribe and go-live requests
// (see subscription); it adds the subscription to the subscribers once it
// has caught up with a.version.
func (a *streamActor) onSubscribe(m *subscribeMsg) {
	sub := m.sub
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

func (a *streamActor) detachSubs() {
	for s := range a.subs {
		s.detach()
	}
	a.subs = nil
}

// recoverInto turns a panic of a kind function into an error, so that a
// bug in one kind answers one caller instead of killing the actor.
func recoverInto(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s panicked: %v", what, p)
	}
}

// cmdWindow remembers the latest command ids of a stream with the versions
// of the events they appended, so that a repeated command returns its first
// result and appends nothing even after the stream moved on (when Decide on
// the new state could reject it or decide differently).
//
// It is in memory and bounded (the oldest id is forgotten first). An
// activation refills it from the Causation of the events it replays, that
// is those after the latest snapshot. A repeat it does not remember still
// reaches the store with the same derived event ids, which the store
// answers as a duplicate whenever Decide produces the same number of
// events; only a forgotten command that Decide now rejects or decides
// differently is not recognised.
type cmdWindow struct {
	max   int
	m     map[string]cmdRecord
	order []string // ring of ids, oldest at next
	next  int
}

// cmdRecord: the command's events are versions first..last (n of them); a
// no-op has n 0 and last the version the stream was at.
type cmdRecord struct {
	first, last uint64
	n           int
}

func recordOf(evs []events.Event) cmdRecord {
	return cmdRecord{first: evs[0].Version, last: evs[len(evs)-1].Version, n: len(evs)}
}

func (w *cmdWindow) reset() {
	w.m, w.order, w.next = nil, nil, 0
}

func (w *cmdWindow) get(id string) (cmdRecord, bool) {
	rec, ok := w.m[id]
	return rec, ok
}

func (w *cmdWindow) put(id string, rec cmdRecord) {
	if id == "" || w.max <= 0 {
		return
	}
	if w.m == nil {
		w.m = make(map[string]cmdRecord)
	}
	if _, ok := w.m[id]; ok {
		w.m[id] = rec
		return
	}
	if len(w.order) < w.max {
		w.order = append(w.order, id)
	} else {
		delete(w.m, w.order[w.next])
		w.order[w.next] = id
		w.next = (w.next + 1) % w.max
	}
	w.m[id] = rec
}

func (w *cmdWindow) noteEvent(ev events.Event) {
	id := ev.Meta.Causation
	if id == "" {
		return
	}
	if rec, ok := w.m[id]; ok && rec.n > 0 && rec.last+1 == ev.Version {
		rec.last, rec.n = ev.Version, rec.n+1
		w.m[id] = rec
		return
	}
	w.put(id, cmdRecord{first: ev.Version, last: ev.Version, n: 1})
}

// resultOf rebuilds a remembered command's result from the store.
func (a *streamActor) resultOf(rec cmdRecord) (Result, error) {
	res := Result{Stream: a.stream, Version: rec.last}
	if rec.n == 0 {
		return res, nil
	}
	evs, err := a.r.cfg.Store.ReadStream(a.r.ctx, a.stream, rec.first-1, rec.n)
	if err != nil {
		return Result{}, fmt.Errorf("read the result of a repeated command on %s: %w", a.stream, err)
	}
	res.Events = evs
	return res, nil
}
