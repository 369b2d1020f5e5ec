package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/events"
)

// stepRun is one run of a background step by a child actor.
type stepRun struct {
	step  events.Step
	delay time.Duration // wait before the first attempt
	pid   *actor.PID
}

// stepDone is what a step child reports to its stream actor.
type stepDone struct {
	run *stepRun
	res events.StepResult
}

// maybeStartStep spawns a child for the first step the state owes, unless
// one is running already. completed is the step whose completion was just
// recorded: if the state still owes that same step first, the kind did not
// record it, and running it again would loop.
func (a *streamActor) maybeStartStep(c actor.Context, steps []events.Step, delay time.Duration, completed string) {
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
	run := &stepRun{step: st, delay: delay}
	r, parent, stream := a.r, c.Self(), a.stream
	run.pid = c.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &stepActor{r: r, parent: parent, stream: stream, run: run}
	}, actor.WithDispatcher(r.disp)))
	a.step = run
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
	if a.dirty {
		if err := a.load(); err != nil {
			a.log.Error("reload before recording a step", "step", key, "err", err)
			a.blockedKey = key
			return
		}
	}
	res := m.res
	res.Time = events.NormalizeTime(a.r.cfg.Now(), a.r.cfg.Now)
	evs, err := func() (evs []events.Event, err error) {
		defer recoverInto(&err, "Complete")
		return a.kind.Complete(a.state, res)
	}()
	if err == nil && len(evs) == 0 {
		err = errors.New("Complete returned no events")
	}
	if err != nil {
		a.log.Error("cannot record step outcome", "step", key, "err", err)
		a.blockedKey = key
		return
	}
	a.stamp(evs, res.Time, "", key)
	ar, _, err := a.persist(evs)
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

// stepActor is the child actor that runs one step. The work runs on a
// goroutine the child owns, so that the child can still receive its Stop
// while the work waits: Stopping cancels the work and waits for it.
type stepActor struct {
	r      *Runtime
	parent *actor.PID
	stream string
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
// after the next activation.
func (s *stepActor) work(ctx context.Context) {
	defer close(s.done)
	st := s.run.step
	if !sleep(ctx, s.run.delay) {
		return
	}
	var err error
	attempts := 0
	for attempts < s.r.cfg.StepAttempts {
		attempts++
		err = s.attempt(ctx, st)
		if ctx.Err() != nil {
			return
		}
		if err == nil || isPermanent(err) {
			break
		}
		if attempts < s.r.cfg.StepAttempts && !sleep(ctx, backoff(s.r.cfg.StepBackoff, attempts)) {
			return
		}
	}
	res := events.StepResult{Step: st.Name, Attempts: attempts}
	if err != nil {
		res.Err = err.Error()
		s.r.log.Warn("step failed", "stream", s.stream, "step", st.Name, "attempts", attempts, "err", err)
	}
	// The parent cannot have stopped: it waits for this child, which
	// waits for this goroutine.
	s.r.system.Root.Send(s.parent, &stepDone{run: s.run, res: res})
}

func (s *stepActor) attempt(ctx context.Context, st events.Step) (err error) {
	defer recoverInto(&err, "step "+st.Name)
	r := s.r
	switch st.Action {
	case events.StepCommand:
		cmd := events.Command{Stream: st.Target, Type: st.Command, Data: st.Data, ID: st.Key, Time: r.cfg.Now()}
		_, err := r.Execute(ctx, cmd, events.AnyVersion)
		return err
	case events.StepWait:
		if !sleep(ctx, r.cfg.CookTime) {
			return ctx.Err()
		}
		return nil
	case events.StepEmail:
		switch {
		case r.cfg.Mailer == nil:
			return permanent(errors.New("no mailer configured"))
		case st.Email == nil:
			return permanent(errors.New("email step without a message"))
		}
		return r.cfg.Mailer.Send(ctx, st.Key, *st.Email)
	default:
		return permanent(fmt.Errorf("unknown step action %q", st.Action))
	}
}

// permanentError is a step failure that a retry cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() error   { return e.err }
func (e permanentError) Permanent() bool { return true }

func permanent(err error) error { return permanentError{err} }

// isPermanent: errors that say the request itself is wrong are not
// retried. A Mailer (or anything else in the chain) marks such an error
// with a method Permanent() bool, the way actors/mailer does.
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return true
	}
	for _, target := range []error{ErrUnknownKind, events.ErrInvalidStream, events.ErrInvalid,
		events.ErrConflict, events.ErrForbidden, events.ErrUnknownCommand} {
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
