package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/b6368a97/engine/events"
)

// Operation names of the /ws protocol (docs: /work/shared/spec/protocol.md).
const (
	opSubscribe    = "subscribe"
	opSubscribed   = "subscribed"
	opUnsubscribe  = "unsubscribe"
	opUnsubscribed = "unsubscribed"
	opCommand      = "command"
	opAck          = "ack"
	opPing         = "ping"
	opPong         = "pong"
	opEvent        = "event"
	opPresence     = "presence"
	opError        = "error"
	opRefresh      = "refresh"
	opRefreshed    = "refreshed"
)

// outFrame is every client → server frame. Empty fields are omitted so that
// a frame carries only what its op defines.
type outFrame struct {
	Op     string          `json:"op"`
	Ref    string          `json:"ref,omitempty"`
	Stream string          `json:"stream,omitempty"`
	From   *uint64         `json:"from,omitempty"`
	User   string          `json:"user,omitempty"`
	Type   string          `json:"type,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	ID     string          `json:"id,omitempty"`
	Epoch  string          `json:"epoch,omitempty"`
	Token  string          `json:"token,omitempty"`
}

// inFrame is every server → client frame, decoded in one pass. Event frames
// carry the envelope's fields flattened next to "op"; "stream" and
// "version" double as the fields of subscribed and ack. The envelope's
// fields are spelled out rather than embedding events.Event, so that a JSON
// method added to Event can never take over decoding the whole frame.
type inFrame struct {
	Op       string          `json:"op"`
	Ref      string          `json:"ref"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Members  []string        `json:"members"`
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Position uint64          `json:"position"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Meta     events.Meta     `json:"meta"`
	Epoch    string          `json:"epoch"` // subscribed: the server's store epoch
	Exp      int64           `json:"exp"`   // refreshed: the new token's exp
}

func (f *inFrame) event() events.Event {
	return events.Event{
		Stream: f.Stream, Version: f.Version, Position: f.Position, ID: f.ID,
		Type: f.Type, Time: f.Time, Data: f.Data, Meta: f.Meta,
	}
}

// Error is an error frame from the server: the request was understood and
// refused. Code is one of the protocol's codes ("bad_request", "conflict",
// "forbidden", "unavailable", …); callers branch on it with errors.As.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "engine: " + e.Code
	}
	return "engine: " + e.Code + ": " + e.Message
}

// ErrorCode returns the Code of the *Error in err's chain, or "" when err
// holds none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CodeEpochChanged is the error code with which the server refuses a
// subscribe whose from counts versions of another store (its epoch is not
// the store's). The client handles it by itself for a subscription it
// resumes; Subscribe returns it (as *Error) when the epoch given with
// WithEpoch is not the server's.
const CodeEpochChanged = "epoch_changed"

var (
	// ErrClosed: the client was closed with Close.
	ErrClosed = errors.New("client closed")
	// ErrDisconnected: the connection was lost after a request was sent and
	// before its reply came, and the request is not safe to repeat (a
	// command without id, a ping, an unsubscribe). The request may or may
	// not have taken effect.
	ErrDisconnected = errors.New("connection lost before the reply")
	// ErrTooLarge: the server closed the connection with 1009 (a frame over
	// its read limit) or a frame from the server exceeded Options.ReadLimit.
	// Requests in flight on that connection fail with it and are not
	// retried, because sending the same frame again would fail the same way.
	ErrTooLarge = errors.New("frame too large")
	// ErrAlreadySubscribed: the client already has a subscription to that
	// stream (the protocol keys subscriptions by stream per connection).
	ErrAlreadySubscribed = errors.New("already subscribed")
)

// encodeData turns a command's data into a JSON object once, before the
// first attempt, so that a retry sends the very same bytes.
func encodeData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		if len(d) == 0 {
			return json.RawMessage("{}"), nil
		}
		if !json.Valid(d) {
			return nil, errors.New("data is not valid JSON")
		}
		return d, nil
	case []byte:
		return encodeData(json.RawMessage(d))
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode data: %w", err)
	}
	return b, nil
}
