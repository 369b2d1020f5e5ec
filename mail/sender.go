package mail

import (
	"context"
	"errors"

	"github.com/b6368a97/engine/actors/decider"
)

// Sender sends one email. key is the step's idempotency key: sending the
// same key twice delivers at most one message where the receiver can tell
// (an outbox file named by key, a Message-ID derived from it). An error
// marked by decider.Permanent will not go away on a retry; any other error
// may.
type Sender interface {
	Send(ctx context.Context, key string, msg decider.Email) error
}

var (
	_ Sender = (*Outbox)(nil)
	_ Sender = (*SMTP)(nil)
)

// Executor is the step executor of decider.StepEmail (register it with
// the runtime as actors.Config.Executors[decider.StepEmail]): it sends the
// step's message through s, keyed by the step's key.
func Executor(s Sender) func(ctx context.Context, st decider.Step) error {
	return func(ctx context.Context, st decider.Step) error {
		if st.Email == nil {
			return decider.Permanent(errors.New("email step without a message"))
		}
		return s.Send(ctx, st.Key, *st.Email)
	}
}
