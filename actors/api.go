package actors

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Config configures a Runtime. Zero values take the documented defaults.
type Config struct {
	// Store is the event log. Required.
	Store events.Store
	// Kinds are the stream kinds served. Required; a command for a stream
	// whose kind is not here fails with ErrUnknownKind.
	Kinds []decider.Kind
	// SnapshotEvery: a stream saves a snapshot every this many events.
	// Default 1000.
	SnapshotEvery int
	// IdleTimeout: a stream with no message for this long, no subscriber
	// and no running step is passivated. Default 10 minutes.
	IdleTimeout time.Duration
	// MaxActors bounds the active stream actors: past it, the least
	// recently used actor without a subscriber, a running step or a
	// request is passivated. Actors with subscribers or steps are never
	// evicted, so the bound can be exceeded while more of them than
	// MaxActors are pinned, and while evictions are in flight. Default
	// 100,000.
	MaxActors int
	// Executors run the step actions other than decider.StepCommand (which
	// the runtime runs itself), by Step.Action. A step whose action has no
	// executor fails for good. The engine registers Wait for
	// decider.StepWait and a mail executor for decider.StepEmail.
	Executors map[string]Executor
	// StepAttempts and StepBackoff bound the retries of a failing step: at
	// most StepAttempts tries (default 5), waiting StepBackoff (default
	// 200 ms) doubled each time, with jitter, between them.
	StepAttempts int
	StepBackoff  time.Duration
	// StepMaxTime bounds the total time a failing step is retried,
	// counted from its first attempt (across restarts, from the first
	// recorded failed attempt): no retry starts whose back-off would end
	// after it. Default 10 minutes.
	StepMaxTime time.Duration
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Observer is told about commands and activations, for metrics.
	// Default: a no-op.
	Observer Observer
	// IdempotencyWindow is how many command ids each active stream
	// remembers with their result (see Execute). Default 1024.
	IdempotencyWindow int

	// The settings below are for a runtime that is one node of a cluster
	// (package cluster); a single node leaves them zero.

	// SkipResume: Start does not reactivate the streams of the pending
	// index; the cluster wakes each on its owner (Runtime.Wake).
	SkipResume bool
	// Commands, when set, runs the commands of background steps
	// (decider.StepCommand) instead of this runtime: their target stream
	// may be owned by another node. It is called with the engine's own
	// authority (internal commands allowed).
	Commands func(ctx context.Context, cmd decider.Command) (Result, error)
	// Members, when set, gives the members shown in the state of a kind
	// with presence, instead of the subscriptions of this runtime: in a
	// cluster the subscribers of a room are spread over the nodes.
	Members func(stream string) []string
}

// Result is the reply to a command, sent only once its events are durable.
type Result struct {
	Stream string
	// Version is the stream's version after the command.
	Version uint64
	// Events are the events the command appended (empty for a no-op; the
	// original events for an idempotent repeat).
	Events []events.Event
}

// Delivery is what a subscription receives: either an event (Event set) or
// a presence change (Members set, Event zero).
type Delivery struct {
	Stream   string
	Event    *events.Event
	Members  []string
	Presence bool
}

// Sink receives a subscription's deliveries.
//
// Enqueue must not block: it returns false when the sink is full, and the
// runtime then drops the subscription and calls Overflow once (the
// subscriber resumes with From). Live deliveries only ever use Enqueue.
//
// WaitRoom paces the catch-up: the subscription's reader calls it before
// each stored event it hands over, and it returns nil once the sink can
// take more, or an error when ctx ends or the sink will take nothing more
// (the subscription then ends as if it had overflowed). A sink should
// return only while it has headroom left for the live deliveries that may
// follow without waiting (the WebSocket sink waits until its queue is
// below half its caps); a sink that cannot wait returns nil at once and
// lets Enqueue decide.
//
// Calls of Enqueue and Overflow for one subscription never overlap, but
// they come from runtime goroutines (the stream's actor, the catch-up
// reader), so Overflow must not block either; WaitRoom runs on the reader
// and may overlap them. Deliveries are shared between subscribers: a Sink
// must not modify them.
type Sink interface {
	Enqueue(d Delivery) bool
	WaitRoom(ctx context.Context) error
	Overflow()
}

// SubscribeRequest asks for a stream's events.
type SubscribeRequest struct {
	Stream string
	// Caller is who subscribes: a private kind's rule decides whether it
	// may read the stream (decider.ErrForbidden if not).
	Caller decider.Caller
	// From: when set, every event with version > *From is delivered, in
	// order, with no gap and no duplicate: those already stored first
	// (read at the sink's pace, see Sink.WaitRoom), then live ones. When
	// nil only events after the subscription's version follow.
	From *uint64
	// Member joins the room's presence while subscribed (rooms only).
	Member string
	Sink   Sink
	// Subscribed, when set, is called once with the subscription's version
	// before anything is enqueued on Sink, on the goroutine that called
	// Subscribe: a transport queues its "subscribed" reply there so that it
	// precedes the events.
	Subscribed func(version uint64)
}

// Subscription is an active subscription.
type Subscription interface {
	// Version is the stream's version when the subscription started.
	Version() uint64
	// Cancel ends the subscription and leaves presence. Idempotent.
	Cancel()
}

// StateView is a stream's current state as clients read it.
type StateView struct {
	Stream  string
	Version uint64
	// JSON is the state, including "stream" and "version".
	JSON json.RawMessage
}

// API is what the transport uses. *Runtime implements it.
type API interface {
	// Check reports whether stream is one the runtime serves: an error
	// matching events.ErrInvalidStream or ErrUnknownKind when it is not.
	// It activates nothing.
	Check(stream string) error
	// Execute runs a client's command on its stream's actor and returns
	// once the events are durable. A command its kind marks internal
	// (decider.Decider.Internal) is refused with decider.ErrForbidden, and
	// so is one cmd.Caller may not give to a private stream
	// (decider.Decider.Private). Errors: ErrUnknownKind,
	// events.ErrInvalidStream, decider.ErrInvalid, decider.ErrConflict,
	// decider.ErrForbidden,
	// decider.ErrUnknownCommand, events.ErrWrongExpectedVersion (when
	// expected is not AnyVersion and the stream moved on, or a lost race
	// after one retry), ErrUnavailable (stopping, or ctx expired).
	Execute(ctx context.Context, cmd decider.Command, expected events.ExpectedVersion) (Result, error)
	// State returns a stream's current state as c may read it:
	// decider.ErrForbidden when a private kind's rule refuses c (checked
	// first), events.ErrNotFound when the stream has no events.
	State(ctx context.Context, stream string, c decider.Caller) (StateView, error)
	// CheckRead reports whether c may read stream (its stored events, for a
	// reader that goes to the log itself): nil, or decider.ErrForbidden
	// when a private kind's rule refuses c; the errors of Check for a
	// stream not served. It asks the stream's actor only for a private
	// kind.
	CheckRead(ctx context.Context, stream string, c decider.Caller) error
	// Subscribe starts a subscription (see SubscribeRequest);
	// decider.ErrForbidden when a private kind's rule refuses req.Caller.
	Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error)
	// StateAt returns a stream's state as of version (1 ≤ version ≤ the
	// stream's version), folded from the store with the kind's own code
	// (see FoldAt): decider.ErrForbidden when a private kind's rule
	// refuses c on the stream's current state (checked first, as for
	// State), events.ErrNotFound for version 0 or a version the stream
	// has not reached (no events included). StateView.Version is version.
	StateAt(ctx context.Context, stream string, version uint64, c decider.Caller) (StateView, error)
	// CheckList reports whether c may list the streams of kind (see
	// ListRule): ErrUnknownKind for a kind not served,
	// decider.ErrForbidden for a private kind unless c is an admin or
	// anonymous (auth off).
	CheckList(kind string, c decider.Caller) error
}
