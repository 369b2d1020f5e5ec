package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Ack is the server's acknowledgement of a command: its events are durable
// and the stream is at Version.
type Ack struct {
	Stream  string
	Version uint64
}

// Command sends a command to stream and waits for its ack.
//
// data is encoded to JSON once (nil means {}; json.RawMessage and []byte are
// sent as they are). A refusal comes back as *Error (errors.As, or
// ErrorCode(err) == "conflict").
//
// id is the command's idempotency key. With id set, a command whose reply
// was lost to a dropped connection is sent again on the next connection,
// and the server answers the repeat with the first result: the command
// takes effect once and Command returns its ack. Without id a lost reply
// is ErrDisconnected, since the command may or may not have taken effect.
// Either way a command is held back, not failed, while the client is
// between connections and it has not been sent yet. ctx bounds the whole
// call, retries included.
func (c *Client) Command(ctx context.Context, stream, typ string, data any, id string) (Ack, error) {
	raw, err := encodeData(data)
	if err != nil {
		return Ack{}, fmt.Errorf("command %s on %s: %w", typ, stream, err)
	}
	ref := c.nextRef()
	frame, err := marshal(outFrame{Op: opCommand, Ref: ref, Stream: stream, Type: typ, Data: raw, ID: id})
	if err != nil {
		return Ack{}, fmt.Errorf("command %s on %s: %w", typ, stream, err)
	}
	for {
		s, err := c.session(ctx)
		if err != nil {
			return Ack{}, fmt.Errorf("command %s on %s: %w", typ, stream, err)
		}
		// A ref only has to be unique per connection, and a new connection
		// starts with no pending refs, so a retry reuses the frame as is.
		f, err := s.roundTrip(ctx, ref, frame)
		if err == nil {
			if err := replyError(f, opAck); err != nil {
				return Ack{}, fmt.Errorf("command %s on %s: %w", typ, stream, err)
			}
			return Ack{Stream: f.Stream, Version: f.Version}, nil
		}
		if again := c.mayRetry(ctx, err, id != ""); again != nil {
			return Ack{}, fmt.Errorf("command %s on %s: %w", typ, stream, again)
		}
	}
}

// mayRetry decides after a failed round trip: nil means send again on the
// next connection, otherwise the error to return. idempotent says whether
// the request is safe to repeat after it may have reached the server.
func (c *Client) mayRetry(ctx context.Context, err error, idempotent bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, errNotSent) {
		return nil
	}
	cause := err
	if lost, ok := errors.AsType[*lostError](err); ok {
		cause = lost.cause
	}
	if c.Err() != nil {
		return c.Err()
	}
	if !idempotent || !retryable(cause) {
		return fmt.Errorf("%w: %w", ErrDisconnected, cause)
	}
	return nil
}

// Ping sends an application-level ping and waits for the pong on the
// current connection. It waits for a connection while the client
// reconnects, and is not retried: a connection lost before the pong is
// ErrDisconnected.
func (c *Client) Ping(ctx context.Context) error {
	ref := c.nextRef()
	frame, err := marshal(outFrame{Op: opPing, Ref: ref})
	if err != nil {
		return err
	}
	for {
		s, err := c.session(ctx)
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		f, err := s.roundTrip(ctx, ref, frame)
		if err == nil {
			if err := replyError(f, opPong); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			return nil
		}
		if again := c.mayRetry(ctx, err, false); again != nil {
			return fmt.Errorf("ping: %w", again)
		}
	}
}

// Refresh hands the server a fresh token for the current connection
// before the old one expires (the server closes a connection with 1008
// "token expired" at its token's exp), and returns the new token's exp
// (zero when the server runs without auth). The server refuses a token
// that is invalid (an *Error with code "unauthorized") or that speaks for
// another user or does not allow a subscribed stream ("forbidden"); the
// connection then keeps its old token. Once accepted, token is also the
// one later reconnects present, unless Options.TokenSource provides them.
//
// Refresh waits for a connection while the client reconnects, and a
// refresh whose reply was lost with the connection is sent again on the
// next one (replacing a token twice is harmless). ctx bounds the whole
// call.
func (c *Client) Refresh(ctx context.Context, token string) (time.Time, error) {
	if token == "" {
		return time.Time{}, errors.New("refresh: empty token")
	}
	ref := c.nextRef()
	frame, err := marshal(outFrame{Op: opRefresh, Ref: ref, Token: token})
	if err != nil {
		return time.Time{}, err
	}
	for {
		s, err := c.session(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("refresh: %w", err)
		}
		f, err := s.roundTrip(ctx, ref, frame)
		if err == nil {
			if err := replyError(f, opRefreshed); err != nil {
				return time.Time{}, fmt.Errorf("refresh: %w", err)
			}
			c.mu.Lock()
			c.token = token
			c.mu.Unlock()
			var exp time.Time
			if f.Exp != 0 {
				exp = time.Unix(f.Exp, 0)
			}
			return exp, nil
		}
		if again := c.mayRetry(ctx, err, true); again != nil {
			return time.Time{}, fmt.Errorf("refresh: %w", again)
		}
	}
}
