package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/events"
)

// maxRequestTime bounds the retries of a request whose caller set no
// deadline.
const maxRequestTime = 30 * time.Second

// request sends env to its stream's owner and waits for the reply. A lost
// attempt (the owner died or froze, or ownership is moving) is retried,
// after a short back-off, until the caller's context ends: every request
// is safe to repeat (commands carry an id, the rest only read or wake).
// While the node does not see a majority of its peers it sends nothing.
func (n *Node) request(ctx context.Context, env *envelope) (*reply, error) {
	if !n.serving.Load() {
		return nil, unavailable(env.Stream, errors.New("this node is not serving"))
	}
	id, err := events.ParseStreamID(env.Stream)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxRequestTime)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	env.Deadline = dl.UnixMilli()
	msg, err := pack(env)
	if err != nil {
		return nil, err
	}
	backoff := 20 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			return nil, unavailable(env.Stream, fmt.Errorf("after %d attempts: %w", attempt-1, last))
		}
		if n.quorate() {
			timeout := min(n.cfg.RequestTimeout, time.Until(dl))
			rep, err := n.attempt(env.Stream, id.Kind, msg, timeout)
			if err == nil && !rep.Moved {
				return rep, nil
			}
			last = err
			if err == nil {
				last = errors.New("the owner is not serving")
			}
			n.c.PidCache.Remove(env.Stream, id.Kind)
		} else {
			last = errors.New("this node does not see a majority of the cluster")
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (n *Node) attempt(stream, kind string, msg *wrapperspb.BytesValue, timeout time.Duration) (*reply, error) {
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	res, err := n.c.Request(stream, kind, msg, protocluster.WithTimeout(timeout), protocluster.WithRetryCount(1))
	if err != nil {
		return nil, err
	}
	b, ok := res.(*wrapperspb.BytesValue)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", res)
	}
	var rep reply
	if err := json.Unmarshal(b.GetValue(), &rep); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return &rep, nil
}

func unavailable(stream string, cause error) error {
	return fmt.Errorf("%w: %s: %w", actors.ErrUnavailable, stream, cause)
}
