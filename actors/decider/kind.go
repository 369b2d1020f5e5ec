package decider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/b6368a97/engine/events"
)

// Decider is what one kind supplies: pure functions over its state type S,
// with no I/O, no clock and no goroutines. S must round-trip through
// encoding/json (snapshots and the state clients read are its JSON).
type Decider[S any] struct {
	// Name is the stream kind, e.g. "room".
	Name string
	// Initial is the state of a stream with no events.
	Initial func(stream string) S
	// Decide validates a command against the state and returns the events
	// it produces (only Type and Data set), or an error matching
	// ErrInvalid, ErrConflict, ErrForbidden or
	// ErrUnknownCommand. No events and no error is a no-op.
	Decide func(state S, cmd Command) ([]events.Event, error)
	// Evolve applies one stored event; it returns an error matching
	// ErrUnknownEvent (or another) for an event it cannot apply.
	Evolve func(state S, ev events.Event) (S, error)
	// Steps lists the background steps the state still owes, in the order
	// they must run. Nil for kinds without background work.
	Steps func(state S) []Step
	// Complete turns a step's outcome into events. Nil when Steps is nil.
	Complete func(state S, res StepResult) ([]events.Event, error)
	// RecordAttempt turns a failed attempt of the first owed step that the
	// runtime will try again into events (res.Attempts is the attempt's
	// number, counted across restarts; res.Err its error), so that the
	// count survives a crash and clients see it. No events: not recorded.
	// Nil for kinds that do not record attempts (a restart then counts
	// from 1 again).
	RecordAttempt func(state S, res StepResult) ([]events.Event, error)
	// Attempts returns the recorded failed attempts of a step, from which
	// the runtime resumes its retries. Nil together with RecordAttempt.
	Attempts func(state S, step string) StepAttempts
	// WithMembers returns the state with the room's in-memory presence set,
	// for the state clients read. Nil for kinds without presence.
	WithMembers func(state S, members []string) S
	// Internal names the commands only the engine itself sends (a step's
	// decider.StepCommand): the runtime refuses them from clients
	// (Runtime.Execute) with ErrForbidden, with or without auth. Nil: every
	// command is a client's.
	Internal []string
	// Private, when set, makes the kind's streams private: it reports
	// whether c may have access a to the stream in state s (s is the state
	// a command is decided on, or Initial for a stream with no events). The
	// runtime asks it before a state read, a subscription, an events read
	// (Runtime.CheckRead) and a command (before its idempotency key is
	// looked up), and refuses with ErrForbidden when it says no. It does
	// not ask for an anonymous caller (auth off: nobody to check), for an
	// admin (Caller.Admin: always allowed), nor for the engine's own step
	// commands. Nil: the kind's streams are shared.
	Private func(s S, c Caller, a Access) bool
}

// State is a kind's state with its type erased.
type State = any

// Kind is a Decider with its state type erased: the form the runtime, the
// replay and the registry use.
type Kind interface {
	Name() string
	Initial(stream string) State
	Decide(s State, cmd Command) ([]events.Event, error)
	Evolve(s State, ev events.Event) (State, error)
	Steps(s State) []Step
	Complete(s State, res StepResult) ([]events.Event, error)
	// RecordAttempt and Attempts: see Decider. Kinds without them record
	// nothing and report no attempts.
	RecordAttempt(s State, res StepResult) ([]events.Event, error)
	Attempts(s State, step string) StepAttempts
	HasPresence() bool
	WithMembers(s State, members []string) State
	// Internal lists the commands only the engine sends (Decider.Internal);
	// IsInternal reports whether typ is one of them.
	Internal() []string
	IsInternal(typ string) bool
	// IsPrivate reports whether the kind has a Decider.Private rule;
	// Allows applies it (true for a kind without one).
	IsPrivate() bool
	Allows(s State, c Caller, a Access) bool
	// MarshalState and UnmarshalState serialise a state for snapshots.
	MarshalState(s State) ([]byte, error)
	UnmarshalState(b []byte) (State, error)
}

// New erases a Decider's state type.
func New[S any](d Decider[S]) Kind { return kind[S]{d} }

type kind[S any] struct{ d Decider[S] }

func (k kind[S]) Name() string                { return k.d.Name }
func (k kind[S]) Initial(stream string) State { return k.d.Initial(stream) }
func (k kind[S]) HasPresence() bool           { return k.d.WithMembers != nil }
func (k kind[S]) Internal() []string          { return slices.Clone(k.d.Internal) }
func (k kind[S]) IsInternal(typ string) bool  { return slices.Contains(k.d.Internal, typ) }
func (k kind[S]) IsPrivate() bool             { return k.d.Private != nil }

func (k kind[S]) Allows(s State, c Caller, a Access) bool {
	if k.d.Private == nil {
		return true
	}
	return k.d.Private(s.(S), c, a)
}

func (k kind[S]) Decide(s State, cmd Command) ([]events.Event, error) {
	return k.d.Decide(s.(S), cmd)
}

func (k kind[S]) Evolve(s State, ev events.Event) (State, error) {
	return k.d.Evolve(s.(S), ev)
}

func (k kind[S]) Steps(s State) []Step {
	if k.d.Steps == nil {
		return nil
	}
	return k.d.Steps(s.(S))
}

func (k kind[S]) Complete(s State, res StepResult) ([]events.Event, error) {
	if k.d.Complete == nil {
		return nil, fmt.Errorf("%s: %w: no background steps", k.d.Name, ErrUnknownCommand)
	}
	return k.d.Complete(s.(S), res)
}

func (k kind[S]) RecordAttempt(s State, res StepResult) ([]events.Event, error) {
	if k.d.RecordAttempt == nil {
		return nil, nil
	}
	return k.d.RecordAttempt(s.(S), res)
}

func (k kind[S]) Attempts(s State, step string) StepAttempts {
	if k.d.Attempts == nil {
		return StepAttempts{}
	}
	return k.d.Attempts(s.(S), step)
}

func (k kind[S]) WithMembers(s State, members []string) State {
	if k.d.WithMembers == nil {
		return s
	}
	return k.d.WithMembers(s.(S), members)
}

// MarshalState writes the state without HTML escaping: clients read it as
// JSON, never as HTML, and "<b>" should stay readable.
func (k kind[S]) MarshalState(s State) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.(S)); err != nil {
		return nil, fmt.Errorf("%s: encode state: %w", k.d.Name, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (k kind[S]) UnmarshalState(b []byte) (State, error) {
	var s S
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: decode snapshot: %w", k.d.Name, err)
	}
	return s, nil
}
