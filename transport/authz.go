package transport

import (
	"bytes"

	"github.com/b6368a97/engine/actors/decider"
)

// Authorization beyond the streams claim is the runtime's: the transport
// says who is calling (caller) on every command, state read, events read
// and subscription, and the kinds' rules decide (see docs/security.md).
// The same holds for the routes added since: GET /streams?kind=K asks
// actors.API.CheckList (a private kind's streams are listed to admins and,
// auth off, to everyone; the streams claim then leaves out what it does
// not allow), GET /streams/{s}?at=N asks StateAt, which applies the read
// rule like State, and a /ws subscribe with "state":true computes its
// state only once the subscription itself has been allowed.

// caller is who p speaks for, as the runtime's private kinds see it: the
// anonymous principal (auth off) is decider.Caller.Anonymous, open to
// every stream; a token's subject, verified email and admin claim
// otherwise; a nil p is nobody (allow refuses it anyway).
func (p *principal) caller() decider.Caller {
	switch {
	case p == nil:
		return decider.Caller{}
	case p.anonymous:
		return decider.Caller{Anonymous: true}
	}
	return decider.Caller{User: p.user, Email: p.email, Admin: p.admin}
}

// trueFlag is a boolean claim that counts only as the JSON literal true:
// "true", 1 or anything else is false, and never makes the token invalid.
type trueFlag bool

func (f *trueFlag) UnmarshalJSON(b []byte) error {
	*f = trueFlag(bytes.Equal(bytes.TrimSpace(b), []byte("true")))
	return nil
}
