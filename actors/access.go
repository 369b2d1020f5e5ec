package actors

import (
	"context"

	"github.com/b6368a97/engine/actors/decider"
)

// Private streams: a kind with a decider.Decider.Private rule says, from a
// stream's state, who may read it and give it commands. The actor applies
// the rule to its own state: before a state read (onState), a
// subscription (onSubscribe), an events read (CheckRead) and each command
// of a batch (decideOne, on the state the earlier commands leave). The
// engine's own step commands are not checked (execMsg.internal).

// CheckRead implements API.
func (r *Runtime) CheckRead(ctx context.Context, stream string, c decider.Caller) error {
	k, err := r.kindOf(stream)
	if err != nil {
		return err
	}
	if !k.IsPrivate() || c.Anonymous || c.Admin {
		return nil
	}
	m := &checkMsg{caller: c, reply: make(chan error, 1)}
	err, callErr := ask(ctx, r, stream, k, m, m.reply)
	if callErr != nil {
		return callErr
	}
	return err
}

// access applies the kind's rule for c's access acc to the stream in state
// s: nil, or decider.ErrForbidden. An anonymous caller (auth off) and an
// admin are not checked. A rule that panics refuses.
func (a *streamActor) access(s decider.State, c decider.Caller, acc decider.Access) (err error) {
	if !a.kind.IsPrivate() || c.Anonymous || c.Admin {
		return nil
	}
	defer recoverInto(&err, "Private")
	if a.kind.Allows(s, c, acc) {
		return nil
	}
	if acc == decider.Write {
		return decider.Forbidden("stream %s is private: only its owner and admins may give it commands", a.stream)
	}
	return decider.Forbidden("stream %s is private: only its owner and admins may read it", a.stream)
}
