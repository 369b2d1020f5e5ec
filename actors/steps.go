package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// stepRun is one run of a background step by a child actor.
type stepRun struct {
	step  decider.Step
	delay time.Duration // wait before the first attempt
	// prior are the failed attempts recorded in the stream before this run
	// (by an earlier activation or process): the run continues their count
	// and their time budget.
	prior decider.StepAttempts
	pid   *actor.PID
}

// stepDone is what a step child reports to its stream actor.
type stepDone struct {
	run *stepRun
	res decider.StepResult
}

// stepAttempt is a step child reporting a failed attempt that it will try
// again, for the stream actor to record (Kind.RecordAttempt).
type stepAttempt struct {
	run *stepRun
	res decider.StepResult
}

// maybeStartStep spawns a child for the first step the state owes, unless
// one is running already. completed is the step whose completion was just
// recorded: if the state still owes that same step first, the kind did not
// record it, and running it again would loop.
func (a *streamActor) maybeStartStep(c actor.Context, steps []decider.Step, delay time.Duration, completed string) {
	if a.step != nil || a.retired || a.stopping || a.failed != nil || a.r.stepCtx.Err() != nil || len(steps) == 0 {
		return
	}
	st := steps[0]
	if st.Key == a.blockedKey {
		return
	}
	if completed != "" && st.Key == completed {
		a.log.Error("step still owed after its completion was recorded; not rerunning it", "step", st.Name, "key", st.Key)
		a.blockedKey = st.Key
		return
	}
	run := &stepRun{step: st, delay: delay, prior: a.attempts(st.Name)}
	r, parent, stream, kind := a.r, c.Self(), a.stream, a.kind.Name()
	run.pid = c.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &stepActor{r: r, parent: parent, stream: stream, kind: kind, run: run}
	}, actor.WithDispatcher(r.disp)))
	a.step = run
}

// attempts returns the recorded failed attempts of an owed step; a kind
// that panics there records none.
func (a *streamActor) attempts(step string) (sa decider.StepAttempts) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("Attempts panicked", "step", step, "panic", p)
			sa = decider.StepAttempts{}
		}
	}()
	return a.kind.Attempts(a.state, step)
}

// onStepAttempt records a failed attempt that the child will retry, so
// that its count survives a restart and shows in the state. A failure to
// record is only logged: the retry goes on regardless, and at worst a
// restart counts fewer attempts than were made.
func (a *streamActor) onStepAttempt(c actor.Context, m *stepAttempt) {
	if a.step != m.run {
		return
	}
	key := m.run.step.Key
	evs, at, err := a.stepEvents("RecordAttempt", a.kind.RecordAttempt, m.res)
	if err != nil {
		a.log.Warn("cannot record step attempt", "step", key, "attempt", m.res.Attempts, "err", err)
		return
	}
	if len(evs) == 0 {
		return
	}
	a.stamp(evs, at, "", key)
	ar, err := a.persist(evs)
	if err != nil || ar.Duplicate {
		a.log.Warn("record step attempt", "step", key, "attempt", m.res.Attempts, "err", err)
		return
	}
	a.afterAppend(c, ar.Events, "")
}

// onStepDone records a step's outcome through Kind.Complete, appended like
// a command, then starts the next owed step.
func (a *streamActor) onStepDone(c actor.Context, m *stepDone) {
	if a.step != m.run {
		return
	}
	c.Stop(m.run.pid)
	a.step = nil
	key := m.run.step.Key
	evs, at, err := a.stepEvents("Complete", a.kind.Complete, m.res)
	if err == nil && len(evs) == 0 {
		// The kind no longer owes the step (a duplicate report, or one made
		// moot by a command meanwhile): nothing to record, go on with what
		// is owed now. maybeStartStep refuses to rerun this very step.
		a.maybeStartStep(c, a.kind.Steps(a.state), 0, key)
		return
	}
	if err != nil {
		a.log.Error("cannot record step outcome", "step", key, "err", err)
		a.blockedKey = key
		return
	}
	a.stamp(evs, at, "", key)
	ar, err := a.persist(evs)
	if err != nil || ar.Duplicate {
		// Typically another runtime wrote the stream. Catch up; if the step
		// is still owed it runs again (its key makes the repeat harmless).
		a.log.Warn("record step outcome", "step", key, "err", err)
		if err := a.load(); err != nil {
			a.log.Error("reload after a failed step record", "err", err)
			return
		}
		a.maybeStartStep(c, a.kind.Steps(a.state), a.r.cfg.StepBackoff, "")
		return
	}
	a.afterAppend(c, ar.Events, key)
}

// stepEvents reloads a dirty stream, then turns res, stamped with the
// current time, into the events that record it with the kind function
// record (named what: Kind.Complete or Kind.RecordAttempt).
func (a *streamActor) stepEvents(what string, record func(decider.State, decider.StepResult) ([]events.Event, error), res decider.StepResult) ([]events.Event, time.Time, error) {
	if a.dirty {
		if err := a.load(); err != nil {
			return nil, time.Time{}, fmt.Errorf("reload %s: %w", a.stream, err)
		}
	}
	res.Time = events.NormalizeTime(a.r.cfg.Now(), a.r.cfg.Now)
	evs, err := func() (evs []events.Event, err error) {
		defer recoverInto(&err, what)
		return record(a.state, res)
	}()
	return evs, res.Time, err
}

// stepActor is the child actor that runs one step. The work runs on a
// goroutine the child owns, so that the child can still receive its Stop
// while the work waits: Stopping cancels the work and waits for it.
type stepActor struct {
	r      *Runtime
	parent *actor.PID
	stream string
	kind   string
	run    *stepRun

	cancel context.CancelFunc
	done   chan struct{}
}

func (s *stepActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case *actor.Started:
		ctx, cancel := context.WithCancel(s.r.stepCtx)
		s.cancel, s.done = cancel, make(chan struct{})
		go s.work(ctx)
	case *actor.Stopping, *actor.Restarting:
		if s.cancel != nil {
			s.cancel()
			<-s.done
			s.cancel = nil
		}
	}
}

// work runs the step with retries and reports the outcome to the parent,
// unless it was cancelled: an interrupted step is still owed and runs again
// after the next activation, continuing the recorded attempt count.
//
// Each failed attempt that will be retried is reported to the parent, which
// records it in the stream. Retries stop after Config.StepAttempts attempts
// in all (recorded ones included), at a permanent error, or when the next
// back-off would end after Config.StepMaxTime from the first attempt.
func (s *stepActor) work(ctx context.Context) {
	defer close(s.done)
	st := s.run.step
	cfg := s.r.cfg
	if !sleep(ctx, s.run.delay) {
		return
	}
	attempts := s.run.prior.Count
	first := s.run.prior.First
	if attempts == 0 || first.IsZero() {
		first = cfg.Now()
	}
	deadline := first.Add(cfg.StepMaxTime)
	var err error
	if attempts > 0 {
		err = errors.New(s.run.prior.LastError)
		if s.run.prior.LastError == "" {
			err = errors.New("failed before a restart")
		}
	}
	log := s.r.log.With("stream", s.stream, "step", st.Name, "key", st.Key)
	for attempts < cfg.StepAttempts {
		if attempts > 0 && !cfg.Now().Before(deadline) {
			break // resumed after the budget ran out
		}
		attempts++
		err = s.attempt(ctx, st)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.r.obs.StepAttempt(s.kind, st.Name, StepOK)
			log.Info("step attempt", "attempt", attempts, "outcome", StepOK)
			break
		}
		wait := backoff(cfg.StepBackoff, attempts)
		if isPermanent(err) || attempts >= cfg.StepAttempts || cfg.Now().Add(wait).After(deadline) {
			s.r.obs.StepAttempt(s.kind, st.Name, StepFailed)
			log.Warn("step attempt", "attempt", attempts, "outcome", StepFailed, "err", err)
			break
		}
		s.r.obs.StepAttempt(s.kind, st.Name, StepRetry)
		log.Warn("step attempt", "attempt", attempts, "outcome", StepRetry, "retry_in", wait, "err", err)
		s.r.system.Root.Send(s.parent, &stepAttempt{run: s.run, res: decider.StepResult{Step: st.Name, Err: err.Error(), Attempts: attempts}})
		if !sleep(ctx, wait) {
			return
		}
	}
	res := decider.StepResult{Step: st.Name, Attempts: attempts}
	if err != nil {
		res.Err = err.Error()
		log.Warn("step failed", "attempts", attempts, "err", err)
	}
	// The parent cannot have stopped: it waits for this child, which
	// waits for this goroutine.
	s.r.system.Root.Send(s.parent, &stepDone{run: s.run, res: res})
}

func (s *stepActor) attempt(ctx context.Context, st decider.Step) (err error) {
	defer recoverInto(&err, "step "+st.Name)
	r := s.r
	if st.Action == decider.StepCommand {
		cmd := decider.Command{Stream: st.Target, Type: st.Command, Data: st.Data, ID: st.Key, Time: r.cfg.Now()}
		if r.cfg.Commands != nil {
			_, err := r.cfg.Commands(ctx, cmd)
			return err
		}
		_, err := r.execute(ctx, cmd, events.AnyVersion, true)
		return err
	}
	run, ok := r.cfg.Executors[st.Action]
	if !ok {
		return decider.Permanent(fmt.Errorf("no executor for step action %q", st.Action))
	}
	return run(ctx, st)
}

// Executor performs one step action other than decider.StepCommand. It
// returns when the action is done, failed or ctx ended; an error wrapped
// with decider.Permanent is not retried. st.Key is the step's idempotency
// key: an executor that can make a repeat harmless uses it.
type Executor func(ctx context.Context, st decider.Step) error

// Wait is the executor of decider.StepWait: it waits st.Wait.
func Wait(ctx context.Context, st decider.Step) error {
	if !sleep(ctx, st.Wait) {
		return ctx.Err()
	}
	return nil
}

// isPermanent: errors that say the request itself is wrong are not
// retried: those an executor marks with decider.Permanent, and the
// rejections of a command step.
func isPermanent(err error) bool {
	if decider.IsPermanent(err) {
		return true
	}
	for _, target := range []error{ErrUnknownKind, events.ErrInvalidStream, decider.ErrInvalid,
		decider.ErrConflict, decider.ErrForbidden, decider.ErrUnknownCommand} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// backoff before retry number attempt (1-based): base doubled each time,
// capped at a minute, with jitter so that failing steps of many streams do
// not retry in lockstep.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	d = min(d, time.Minute)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
