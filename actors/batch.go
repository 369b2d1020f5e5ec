package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/events"
)

// Group commit per stream. A stream actor does not append a command the
// moment it receives it: it queues it and sends itself a flushMsg. The
// commands that were already waiting in its mailbox are processed before
// that flush and join the queue, so a busy stream (a chat room, a game's
// score) appends everything that accumulated during its previous append in
// one store call, instead of one append per command. An idle stream pays
// one extra message on its own mailbox, a few hundred nanoseconds.

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
	live := queue[:0]
	for _, m := range queue {
		if err := m.ctx.Err(); err != nil {
			m.fail(unavailable(a.stream, err))
			a.r.obs.CommandDone(a.kind.Name(), ResultUnavailable, 0)
			continue
		}
		live = append(live, m)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		a.onExec(c, live[0])
		return
	}
	if a.dirty {
		if err := a.load(); err != nil {
			for _, m := range live {
				m.fail(fmt.Errorf("reload %s: %w", a.stream, err))
			}
			return
		}
	}
	a.execBatch(c, live)
}

// staged is one command of a batch and its outcome.
type staged struct {
	m       *execMsg
	res     Result
	err     error
	outcome string
	first   int    // index of its first event in the batch
	n       int    // its number of events
	version uint64 // the stream's version after it
	dupOf   int    // -1, or the index of an earlier command with the same id
}

// execBatch decides the commands one after the other, each on the state
// the previous ones leave, and appends all their events at once. Every
// reply, errors included, waits for the append, since a rejection may
// depend on an earlier command of the batch. If the append fails, the
// stream is reloaded and each command runs again on its own, exactly as if
// it had arrived alone: that path retries a conflict with another writer,
// recognises repeats the store reports as duplicates, and reports a
// failing store per command.
func (a *streamActor) execBatch(c actor.Context, msgs []*execMsg) {
	batch := make([]staged, len(msgs))
	var evs []events.Event
	next, version := a.state, a.version
	byID := make(map[string]int)
	for i, m := range msgs {
		st := &batch[i]
		st.m, st.dupOf = m, -1
		cmd := m.cmd
		if cmd.ID != "" {
			if j, ok := byID[cmd.ID]; ok {
				st.dupOf = j
				continue
			}
			byID[cmd.ID] = i
			if rec, ok := a.cmds.get(cmd.ID); ok {
				st.res, st.err = a.resultOf(rec)
				st.outcome = ResultIdempotent
				if st.err != nil {
					st.outcome = ResultError
				}
				continue
			}
		}
		if m.expected != events.AnyVersion && !m.expected.Matches(version) {
			st.err = &events.WrongExpectedVersionError{Stream: a.stream, Expected: m.expected, Current: version}
			st.outcome = ResultWrongExpect
			continue
		}
		out, err := func() (out []events.Event, err error) {
			defer recoverInto(&err, "Decide")
			return a.kind.Decide(next, cmd)
		}()
		if err != nil {
			st.err, st.outcome = err, ResultRejected
			continue
		}
		if len(out) == 0 {
			st.res, st.outcome = Result{Stream: a.stream, Version: version}, ResultNoop
			continue
		}
		a.stamp(out, cmd.Time, cmd.ID, cmd.ID)
		a.dirty = true // Evolve may change the state in place
		if next, err = a.fold(next, version, out); err != nil {
			// A decider bug: this command fails; the others run alone.
			m.fail(fmt.Errorf("%s: evolve a decided event: %w", a.stream, err))
			a.r.obs.CommandDone(a.kind.Name(), ResultError, 0)
			a.rerun(c, slices.Delete(slices.Clone(msgs), i, i+1))
			return
		}
		st.first, st.n = len(evs), len(out)
		version += uint64(len(out))
		st.version, st.outcome = version, ResultOK
		evs = append(evs, out...)
	}
	var dur time.Duration
	if len(evs) > 0 {
		ar, d, err := a.commit(next, evs)
		if err != nil || ar.Duplicate {
			a.rerun(c, msgs)
			return
		}
		dur = d
		for i := range batch {
			if st := &batch[i]; st.dupOf < 0 && st.outcome == ResultOK {
				stored := ar.Events[st.first : st.first+st.n]
				st.res = Result{Stream: a.stream, Version: st.version, Events: stored}
			}
		}
		evs = ar.Events
	}
	for i := range batch {
		st := &batch[i]
		src, outcome, d := st, st.outcome, time.Duration(0)
		if st.dupOf >= 0 {
			src, outcome = &batch[st.dupOf], ResultIdempotent
			if src.err != nil {
				outcome = src.outcome
			}
		}
		switch outcome {
		case ResultOK:
			d = dur
			a.cmds.put(st.m.cmd.ID, recordOf(st.res.Events))
		case ResultNoop:
			a.cmds.put(st.m.cmd.ID, cmdRecord{last: st.res.Version})
		}
		st.m.reply <- execReply{res: src.res, err: src.err}
		a.r.obs.CommandDone(a.kind.Name(), outcome, d)
	}
	if len(evs) > 0 {
		a.afterAppend(c, evs, "")
	}
}

// rerun reloads the stream and runs each command on its own.
func (a *streamActor) rerun(c actor.Context, msgs []*execMsg) {
	if err := a.load(); err != nil {
		for _, m := range msgs {
			m.fail(fmt.Errorf("reload %s: %w", a.stream, err))
			a.r.obs.CommandDone(a.kind.Name(), ResultError, 0)
		}
		return
	}
	for _, m := range msgs {
		a.onExec(c, m)
	}
}
