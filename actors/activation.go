package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

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

// load rebuilds the state from the latest snapshot and the events after it,
// and the command window from the window in the snapshot and the events
// after it (cmdWindow).
func (a *streamActor) load() error {
	ctx := a.r.ctx
	state := a.kind.Initial(a.stream)
	var version uint64
	snap, err := a.r.cfg.Store.LoadSnapshot(ctx, a.stream)
	switch {
	case err == nil:
		data, win, err := decodeSnapshot(snap.Data)
		var s decider.State
		if err == nil {
			s, err = a.kind.UnmarshalState(data)
		}
		if err != nil {
			a.log.Warn("snapshot unreadable, replaying the whole stream", "version", snap.Version, "err", err)
			break
		}
		if win != nil {
			a.cmds.loadSaved(string(win))
		}
		state, version = s, snap.Version
	case errors.Is(err, events.ErrNotFound):
	default:
		return fmt.Errorf("load snapshot: %w", err)
	}
	a.snapVersion = version
	err = func() (err error) {
		// folding is the version of the stored event being folded, 0
		// while reading: a failure to fold (Evolve's error or panic) is a
		// corrupt stream, a failure to read is the store's.
		var folding uint64
		defer func() {
			if err != nil && folding != 0 {
				err = &LoadError{Stream: a.stream, Version: folding, Cause: err}
			}
		}()
		defer recoverInto(&err, "Evolve")
		for ev, err := range events.IterStream(ctx, a.r.cfg.Store, a.stream, version) {
			if err != nil {
				return err
			}
			folding = ev.Version
			if state, err = a.kind.Evolve(state, ev); err != nil {
				return err
			}
			folding = 0
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
	snap := events.Snapshot{Stream: a.stream, Version: a.version, Data: encodeSnapshot(b, &a.cmds)}
	if err := a.r.cfg.Store.SaveSnapshot(a.r.ctx, snap); err != nil {
		a.log.Warn("snapshot: save", "version", a.version, "err", err)
	}
}
