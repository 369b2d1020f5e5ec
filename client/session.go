package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// session is one WebSocket connection. Its reader goroutine is the only
// reader; every write goes through write, which holds the one-slot wsem so
// that frames leave in the order callers got the slot.
type session struct {
	c    *Client
	seq  uint64 // 1, 2, 3 … in dial order
	conn *websocket.Conn
	wsem chan struct{}
	done chan struct{} // closed by the reader as it exits, after err is set
	err  error         // why the connection ended; read after done

	mu      sync.Mutex
	pending map[string]*call // nil once the session has ended
}

// call is one request waiting for its reply on a session.
type call struct {
	reply chan inFrame  // buffered: the reader never blocks on it
	sub   *Subscription // set for subscribe: the reader applies the reply
}

func newSession(c *Client, conn *websocket.Conn) *session {
	return &session{
		c:       c,
		seq:     c.sessSeq.Add(1),
		conn:    conn,
		wsem:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[string]*call),
	}
}

// register makes room for the reply to ref; nil when the session has ended.
func (s *session) register(ref string, sub *Subscription) *call {
	cl := &call{reply: make(chan inFrame, 1), sub: sub}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return nil
	}
	s.pending[ref] = cl
	return cl
}

func (s *session) unregister(ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		delete(s.pending, ref)
	}
}

// errNotSent says the frame certainly did not leave: safe to send it on the
// next connection even without an idempotency key.
var errNotSent = errors.New("connection lost before the frame was sent")

// write sends one frame. It waits for the write slot at most until ctx ends
// or the connection is lost (errNotSent); the write itself is bounded by
// WriteTimeout, not by ctx, since an interrupted write kills the connection
// for every caller.
func (s *session) write(ctx context.Context, frame []byte) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errNotSent
	}
	defer func() { <-s.wsem }()
	select {
	case <-s.done:
		return errNotSent
	default:
	}
	wctx, cancel := context.WithTimeout(context.Background(), s.c.opts.WriteTimeout)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageText, frame); err != nil {
		_ = s.conn.CloseNow() // make sure the reader sees the end
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readLoop is the session's only reader. It dispatches every frame in
// arrival order, which is what makes per-stream version tracking exact,
// and ends the session when the connection ends. Its reads take no
// context: closing the connection is what ends them (a cancelled read
// would make the library drop the connection without a close handshake,
// and a context with a deadline costs a timer per frame).
func (s *session) readLoop() {
	defer s.c.wg.Done()
	var buf bytes.Buffer
	var err error
	for {
		var typ websocket.MessageType
		var r io.Reader
		typ, r, err = s.conn.Reader(context.Background())
		if err != nil {
			break
		}
		buf.Reset()
		if _, err = buf.ReadFrom(r); err != nil {
			break
		}
		if typ != websocket.MessageText {
			continue
		}
		s.handle(buf.Bytes())
	}
	s.end(err)
}

// end records why the connection ended, releases it and fails nothing by
// itself: waiters see done and decide (retry, ErrDisconnected, …).
func (s *session) end(err error) {
	_ = s.conn.CloseNow()
	s.mu.Lock()
	s.pending = nil
	s.mu.Unlock()
	s.err = classify(err)
	s.c.uninstall(s)
	close(s.done)
}

// classify turns the reader's error into the session's cause.
func classify(err error) error {
	if errors.Is(err, websocket.ErrMessageTooBig) || websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if err == nil {
		return errors.New("connection ended")
	}
	return err
}

// retryable reports whether requests in flight when the session ended with
// cause may be sent again.
func retryable(cause error) bool {
	return !errors.Is(cause, ErrTooLarge)
}

func (s *session) handle(b []byte) {
	var f inFrame
	if err := json.Unmarshal(b, &f); err != nil {
		s.c.log.Warn("client: undecodable frame", "err", err)
		return
	}
	switch f.Op {
	case opEvent:
		if sub := s.c.subscription(f.Stream); sub != nil {
			sub.offerEvent(s, f.event())
		}
	case opPresence:
		if sub := s.c.subscription(f.Stream); sub != nil {
			sub.offerPresence(f.Members)
		}
	case opSubscribed, opUnsubscribed, opAck, opPong, opRefreshed, opError:
		if f.Ref == "" {
			if f.Op == opError {
				s.c.log.Warn("client: error without ref", "code", f.Code, "message", f.Message)
			}
			return
		}
		s.mu.Lock()
		cl := s.pending[f.Ref]
		delete(s.pending, f.Ref)
		s.mu.Unlock()
		if cl == nil {
			return // the caller gave up waiting
		}
		if cl.sub != nil {
			cl.sub.applyReply(s, &f)
		}
		cl.reply <- f
	default:
		s.c.log.Debug("client: unknown op", "op", f.Op)
	}
}

// keepAlive pings the server and drops a connection that does not answer,
// so that a silently dead network path leads to a reconnect.
func (s *session) keepAlive(every time.Duration) {
	defer s.c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			s.c.log.Warn("client: keepalive failed, dropping connection", "err", err)
			_ = s.conn.CloseNow()
			return
		}
	}
}

// closeNormally performs the close handshake (the reader goes on reading
// and sees the server's close frame; the library closes the connection
// after at most 5s without one), then waits for the reader to finish.
func (s *session) closeNormally() {
	err := s.conn.Close(websocket.StatusNormalClosure, "")
	if err != nil {
		s.c.log.Debug("client: close", "err", err)
	}
	<-s.done
}

// roundTrip sends frame (carrying ref) and waits for its reply. It does not
// retry: a lost connection after the frame may have left is errDisconnected
// to the caller, errNotSent when it certainly did not leave.
func (s *session) roundTrip(ctx context.Context, ref string, frame []byte) (inFrame, error) {
	cl := s.register(ref, nil)
	if cl == nil {
		return inFrame{}, errNotSent
	}
	if err := s.write(ctx, frame); err != nil {
		s.unregister(ref)
		return inFrame{}, err
	}
	select {
	case f := <-cl.reply:
		return f, nil
	case <-s.done:
		select {
		case f := <-cl.reply: // the reply arrived just before the end
			return f, nil
		default:
		}
		return inFrame{}, &lostError{cause: s.err}
	case <-ctx.Done():
		s.unregister(ref)
		return inFrame{}, ctx.Err()
	}
}

// lostError: the connection ended while a sent request waited for its reply.
type lostError struct{ cause error }

func (e *lostError) Error() string { return "connection lost: " + e.cause.Error() }
func (e *lostError) Unwrap() error { return e.cause }

// replyError maps a non-success reply to an error.
func replyError(f inFrame, want string) error {
	switch f.Op {
	case want:
		return nil
	case opError:
		return &Error{Code: f.Code, Message: f.Message}
	}
	return fmt.Errorf("unexpected reply %q, want %q", f.Op, want)
}

func marshal(f outFrame) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Op, err)
	}
	return b, nil
}
