package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// StateAt implements API: the read rule is asked like State asks it (on
// the current state, through the stream's actor, for a private kind only),
// then the state is folded from the store (FoldAt) without the actor.
func (r *Runtime) StateAt(ctx context.Context, stream string, version uint64, c decider.Caller) (StateView, error) {
	k, err := r.kindOf(stream)
	if err != nil {
		return StateView{}, err
	}
	if err := r.CheckRead(ctx, stream, c); err != nil {
		return StateView{}, err
	}
	return FoldAt(ctx, r.cfg.Store, k, stream, version)
}

// CheckList implements API.
func (r *Runtime) CheckList(kind string, c decider.Caller) error {
	k, ok := r.kinds[kind]
	if !ok {
		return events.Refuse(ErrUnknownKind, "unknown stream kind %q", events.Clip(kind, 40))
	}
	return ListRule(k, c)
}

// ListRule is who may list the streams of k: anybody for a shared kind; for
// a private kind (decider.Decider.Private) an admin, or the anonymous caller
// of a server with auth off; anyone else gets decider.ErrForbidden (a
// listing would name other people's streams).
func ListRule(k decider.Kind, c decider.Caller) error {
	if !k.IsPrivate() || c.Anonymous || c.Admin {
		return nil
	}
	return events.Refuse(decider.ErrForbidden, "only admins may list the streams of kind %s", k.Name())
}

// FoldAt folds stream's state as of version with the kind's own code: from
// the stream's latest snapshot when its version is at most version (and it
// decodes), else from the kind's initial state, then the stored events up
// to version. It reads the store only and asks no rule: callers check the
// caller first. version 0, or one beyond the stream's version, is
// events.ErrNotFound ("stream S has no version N"); an event the kind
// cannot fold is a *LoadError (ErrCorruptStream). Presence is not stored,
// so a kind with presence shows none.
func FoldAt(ctx context.Context, store events.Store, k decider.Kind, stream string, version uint64) (StateView, error) {
	if version == 0 {
		return StateView{}, noVersion(stream, version)
	}
	state := k.Initial(stream)
	var base uint64
	snap, err := store.LoadSnapshot(ctx, stream)
	switch {
	case err == nil && snap.Version <= version:
		if data, _, derr := decodeSnapshot(snap.Data); derr == nil {
			if s, uerr := unmarshalState(k, data); uerr == nil {
				state, base = s, snap.Version
			}
		}
	case err == nil, errors.Is(err, events.ErrNotFound):
	default:
		return StateView{}, fmt.Errorf("state of %s at %d: load snapshot: %w", stream, version, err)
	}
	at := base
	for at < version {
		page, err := store.ReadStream(ctx, stream, at, int(min(version-at, events.DefaultPageSize)))
		if err != nil {
			return StateView{}, fmt.Errorf("state of %s at %d: %w", stream, version, err)
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			if ev.Version != at+1 {
				return StateView{}, &LoadError{Stream: stream, Version: ev.Version, Cause: fmt.Errorf("version %d after %d", ev.Version, at)}
			}
			next, err := evolve(k, state, ev)
			if err != nil {
				return StateView{}, &LoadError{Stream: stream, Version: ev.Version, Cause: err}
			}
			state, at = next, ev.Version
		}
	}
	if at < version {
		return StateView{}, noVersion(stream, version)
	}
	b, err := func() (b []byte, err error) {
		defer recoverInto(&err, "MarshalState")
		return k.MarshalState(state)
	}()
	if err != nil {
		return StateView{}, fmt.Errorf("state of %s at %d: %w", stream, version, err)
	}
	return StateView{Stream: stream, Version: version, JSON: b}, nil
}

func noVersion(stream string, version uint64) error {
	return events.Refuse(events.ErrNotFound, "stream %s has no version %d", stream, version)
}

// unmarshalState is UnmarshalState, a panic turned into an error.
func unmarshalState(k decider.Kind, data []byte) (s decider.State, err error) {
	defer recoverInto(&err, "UnmarshalState")
	return k.UnmarshalState(data)
}
