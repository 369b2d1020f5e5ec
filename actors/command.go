package actors

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Group commit per stream. A stream actor does not append a command the
// moment it receives it: it queues it and sends itself a flushMsg. The
// commands that were already waiting in its mailbox are processed before
// that flush and join the queue, so a busy stream (a chat room, a game's
// score) appends everything that accumulated during its previous append in
// one store call, instead of one append per command. An idle stream pays
// one extra message on its own mailbox, a few hundred nanoseconds. A
// command alone is a batch of one: every command takes the same path.

// flushMsg tells a stream actor to decide and append its queued commands.
type flushMsg struct{}

// maxBatch bounds the commands of one append.
const maxBatch = 128

func (a *streamActor) enqueue(c actor.Context, m *execMsg) {
	a.queue = append(a.queue, m)
	if len(a.queue) == 1 {
		c.Send(c.Self(), flushMsg{})
	}
	if len(a.queue) >= maxBatch {
		// The flushMsg already sent finds the queue empty, or flushes a
		// newer one early: both harmless.
		a.flush(c)
	}
}

func (a *streamActor) flush(c actor.Context) {
	queue := a.queue
	a.queue = nil
	a.execute(c, queue, true)
}

// batch is a list of commands decided one after the other, each on the
// state the previous ones leave.
type batch struct {
	cmds    []staged
	byID    map[string]int // command id → index of its first command
	evs     []events.Event // the events of all commands, in order
	next    decider.State  // the state after them
	version uint64         // the version after them
	// broken is the command whose events Evolve could not apply, or -1:
	// the state is suspect from there on and the later commands are not
	// decided.
	broken int
}

// staged is one command of a batch and its outcome.
type staged struct {
	m       *execMsg
	res     Result
	err     error
	outcome string
	first   int // index of its first event in the batch
	n       int // its number of events
	dupOf   int // -1, or the index of an earlier command with the same id
	sum     uint64
}

// execute decides msgs in order and appends all their events in one store
// call. Every reply, errors included, waits for the append, since a
// rejection may depend on an earlier command of the batch.
//
// A failed append of several commands cannot be pinned on one of them, and
// the later ones were decided on events that are not stored: the stream is
// reloaded and each command runs again alone, so one bad command does not
// fail the others. A command alone whose append fails because another
// writer (a second runtime on the same store) moved the stream is decided
// once more on the reloaded state if retry is set. A run alone never
// retries again: every command is retried at most once.
func (a *streamActor) execute(c actor.Context, msgs []*execMsg, retry bool) {
	if msgs = a.admit(msgs); len(msgs) == 0 {
		return
	}
	b := a.decideBatch(msgs)
	if b.broken >= 0 {
		// A decider bug fails this command only; the others are decided
		// again on a reloaded state.
		st := &b.cmds[b.broken]
		a.done(st.m, Result{}, st.err, st.outcome, 0)
		a.rerun(c, slices.Delete(slices.Clone(msgs), b.broken, b.broken+1))
		return
	}
	var ar events.AppendResult
	var dur time.Duration
	var err error
	if len(b.evs) > 0 {
		ar, dur, err = a.commit(b.next, b.evs)
		failed := err != nil || ar.Duplicate
		if failed && (len(msgs) > 1 || retry && errors.Is(err, events.ErrWrongExpectedVersion)) {
			a.rerun(c, msgs)
			return
		}
		a.settle(b, ar, err)
	}
	a.answer(b, dur)
	if len(b.evs) > 0 && err == nil && !ar.Duplicate {
		a.afterAppend(c, ar.Events, "")
	}
}

// rerun runs each command alone, without a further retry. The stream is
// dirty after a failed append or a refused event, so admit reloads it
// before the first of them is decided.
func (a *streamActor) rerun(c actor.Context, msgs []*execMsg) {
	for _, m := range msgs {
		a.execute(c, []*execMsg{m}, false)
	}
}

// admit answers the commands whose caller has gone (deciding them now would
// only waste the store) and reloads a dirty stream, answering every command
// if that fails. It returns the commands left to decide.
func (a *streamActor) admit(msgs []*execMsg) []*execMsg {
	live := msgs[:0]
	var now time.Time // read once, and only if a command has a deadline
	clock := func() time.Time {
		if now.IsZero() {
			now = time.Now()
		}
		return now
	}
	for _, m := range msgs {
		if err := m.gone(clock); err != nil {
			a.done(m, Result{}, unavailable(a.stream, err), ResultUnavailable, 0)
			continue
		}
		live = append(live, m)
	}
	if len(live) == 0 || !a.dirty {
		return live
	}
	if err := a.load(); err != nil {
		for _, m := range live {
			a.done(m, Result{}, fmt.Errorf("reload %s: %w", a.stream, err), ResultError, 0)
		}
		return nil
	}
	return live
}

// decideBatch decides the commands one after the other, each on the state
// the previous ones leave, and folds their events into a tentative state.
func (a *streamActor) decideBatch(msgs []*execMsg) *batch {
	b := &batch{cmds: make([]staged, len(msgs)), next: a.state, version: a.version, broken: -1,
		evs: make([]events.Event, 0, len(msgs))} // most commands make one event
	for i, m := range msgs {
		b.cmds[i] = staged{m: m, dupOf: -1}
		a.decideOne(b, i)
		if b.broken >= 0 {
			break
		}
	}
	return b
}

// decideOne stages command i of b: an id repeated within the batch or
// remembered by the window, a wrong expected version (against the version
// the earlier commands leave), a rejection, a no-op, or events folded into
// b.next.
func (a *streamActor) decideOne(b *batch, i int) {
	st := &b.cmds[i]
	cmd, expected := st.m.cmd, st.m.expected
	// A private stream's rule comes first: a caller it refuses learns
	// nothing, not even the reply to another caller's command id.
	if !st.m.internal {
		if err := a.access(b.next, cmd.Caller, decider.Write); err != nil {
			st.err, st.outcome = err, ResultRejected
			return
		}
	}
	if cmd.ID != "" && a.repeated(b, i) {
		return
	}
	if expected != events.AnyVersion && !expected.Matches(b.version) {
		st.err = &events.WrongExpectedVersionError{Stream: a.stream, Expected: expected, Current: b.version}
		st.outcome = ResultWrongExpect
		return
	}
	evs, err := a.decide(b.next, cmd)
	switch {
	case err != nil:
		st.err, st.outcome = err, ResultRejected
		return
	case len(evs) == 0:
		st.res, st.outcome = Result{Stream: a.stream, Version: b.version}, ResultNoop
		return
	}
	a.stamp(evs, cmd.Time, cmd.ID, cmd.ID)
	a.dirty = true // Evolve may change the state in place
	next, err := a.fold(b.next, b.version, evs)
	if err != nil {
		st.err, st.outcome = err, ResultError
		b.broken = i
		return
	}
	st.first, st.n, st.outcome = len(b.evs), len(evs), ResultOK
	b.next, b.version = next, b.version+uint64(len(evs))
	b.evs = append(b.evs, evs...)
}

// repeated stages command i of b when its id was seen before, in the batch
// or by the window: the first one's reply, or ErrIdempotencyMismatch when
// the id comes with another command.
func (a *streamActor) repeated(b *batch, i int) bool {
	st := &b.cmds[i]
	id := st.m.cmd.ID
	st.sum = fingerprint(st.m.cmd, st.m.expected)
	if j, ok := b.byID[id]; ok {
		if b.cmds[j].sum != st.sum {
			st.err, st.outcome = mismatch(id), ResultRejected
			return true
		}
		st.dupOf = j
		return true
	}
	if b.byID == nil {
		b.byID = make(map[string]int)
	}
	b.byID[id] = i
	rec, ok := a.cmds.get(id)
	switch {
	case !ok:
		return false
	case !rec.matches(st.sum):
		st.err, st.outcome = mismatch(id), ResultRejected
		return true
	}
	st.res, st.err = a.resultOf(rec)
	st.outcome = ResultIdempotent
	if st.err != nil {
		st.outcome = ResultError
	}
	return true
}

func mismatch(id string) error {
	return events.Refuse(ErrIdempotencyMismatch, "command id %q was used before for another command", events.Clip(id, 80))
}

// settle gives the commands whose events went to the store the append's
// outcome. ar.Duplicate (every id stored already) makes them idempotent
// repeats of commands this activation does not remember (see cmdWindow).
func (a *streamActor) settle(b *batch, ar events.AppendResult, err error) {
	for i := range b.cmds {
		st := &b.cmds[i]
		if st.n == 0 {
			continue
		}
		switch {
		case err == nil:
			stored := ar.Events[st.first : st.first+st.n]
			st.res = Result{Stream: a.stream, Version: stored[len(stored)-1].Version, Events: stored}
			if ar.Duplicate {
				st.outcome = ResultIdempotent
			}
		case errors.Is(err, events.ErrWrongExpectedVersion):
			st.err, st.outcome = err, ResultWrongExpect
		case errors.Is(err, events.ErrDuplicateID):
			st.err = fmt.Errorf("%w: %w", decider.Conflict("command id %q was applied before with a different outcome", st.m.cmd.ID), err)
			st.outcome = ResultRejected
		default:
			st.err, st.outcome = fmt.Errorf("append %s: %w", a.stream, err), ResultError
		}
	}
}

// answer replies to every command of b, remembers the ids of those that
// took effect and reports them; dur is the append's duration, reported for
// the commands whose events it carried. A repeated id gets the reply of its
// first command.
func (a *streamActor) answer(b *batch, dur time.Duration) {
	for i := range b.cmds {
		st := &b.cmds[i]
		if st.dupOf >= 0 {
			src, outcome := &b.cmds[st.dupOf], ResultIdempotent
			if src.err != nil {
				outcome = src.outcome
			}
			a.done(st.m, src.res, src.err, outcome, 0)
			continue
		}
		d := time.Duration(0)
		if st.n > 0 {
			d = dur
		}
		switch {
		case st.err != nil: // took no effect: nothing to remember
		case st.outcome == ResultNoop:
			a.cmds.put(st.m.cmd.ID, cmdRecord{last: st.res.Version, sum: st.sum})
		case st.n > 0:
			a.cmds.put(st.m.cmd.ID, recordOf(st.res.Events, st.sum))
		}
		a.done(st.m, st.res, st.err, st.outcome, d)
	}
}

// done answers one command and reports it to the observer.
func (a *streamActor) done(m *execMsg, res Result, err error, outcome string, dur time.Duration) {
	a.r.obs.CommandDone(a.kind.Name(), outcome, dur)
	m.answer(res, err)
}

func (a *streamActor) decide(s decider.State, cmd decider.Command) (evs []events.Event, err error) {
	defer recoverInto(&err, "Decide")
	return a.kind.Decide(s, cmd)
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

// persist appends the events recording a step's outcome or attempt
// (steps.go): it folds them into a tentative state and commits it.
func (a *streamActor) persist(evs []events.Event) (events.AppendResult, error) {
	a.dirty = true // Evolve may change the state in place
	next, err := a.fold(a.state, a.version, evs)
	if err != nil {
		return events.AppendResult{}, err
	}
	ar, _, err := a.commit(next, evs)
	return ar, err
}

// commit marks the stream pending if next, the tentative state with evs
// folded in, owes steps (before the append, so a crash in between cannot
// lose the work), then appends evs at the actor's version. Once they are
// durable next becomes the state. Otherwise the actor stays dirty (the
// caller has set it before folding: Evolve may have mutated the old state
// in place) and reloads before its next use.
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
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s: evolve a decided event: %w", a.stream, err)
		}
	}()
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
