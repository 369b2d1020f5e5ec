package mail

import (
	"context"

	"github.com/b6368a97/engine/events"
)

// Sender sends one email. key is the step's idempotency key: sending the
// same key twice delivers at most one message where the receiver can tell
// (an outbox file named by key, a Message-ID derived from it). An error
// for which IsPermanent reports true (it has a method Permanent() bool
// returning true) will not go away on a retry; any other error may.
//
// It is the method set of actors.Mailer, which the runtime consumes; this
// package does not import actors.
type Sender interface {
	Send(ctx context.Context, key string, msg events.Email) error
}

var (
	_ Sender = (*Outbox)(nil)
	_ Sender = (*SMTP)(nil)
)
