package decider

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/b6368a97/engine/events"
)

// Step is a piece of background work a stream's state still owes, such as
// notifying the kitchen or sending a welcome email. A kind derives its steps
// from its state; the runtime runs the first one, reports the outcome back
// to the kind (StepResult) and asks again. Because the list is derived from
// state, a step that had not completed before a crash is owed again after
// replay.
type Step struct {
	// Name identifies the step within its stream: "kitchen", "cook",
	// "receipt", "welcome", …
	Name string `json:"name"`
	// Key is the idempotency key, unique per stream and step, e.g.
	// "order:42/receipt". A repeated step with the same key must have no
	// second effect where the receiver can tell.
	Key string `json:"key"`
	// Action is what the runtime does: StepCommand, which it runs itself,
	// or the name of an executor registered with it (StepWait, StepEmail).
	Action string `json:"action"`
	// Target and Command: for StepCommand, the stream and command to send.
	Target  string          `json:"target,omitempty"`
	Command string          `json:"command,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Wait: for StepWait, how long to wait.
	Wait time.Duration `json:"wait,omitempty"`
	// Email: for StepEmail, the message to send.
	Email *Email `json:"email,omitempty"`
}

// Step actions.
const (
	// StepCommand sends Command with Data to the actor of Target; the step
	// succeeds when that command is acknowledged.
	StepCommand = "command"
	// StepWait waits for the step's Wait.
	StepWait = "wait"
	// StepEmail sends Email through the mail executor.
	StepEmail = "email"
)

// Email is a message a step sends.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// StepResult is the outcome of a step, reported by the runtime to the kind
// that owes it. Err is empty on success; on final failure it holds the last
// error and Attempts how many were made.
type StepResult struct {
	Step     string
	Err      string
	Attempts int
	Time     time.Time
}

// Event types every kind with background steps records. They are stored
// in logs: never rename.
const (
	// EventStepFailed records a step that failed for good (data StepFailed).
	EventStepFailed = "StepFailed"
	// EventStepAttemptFailed records a failed attempt that will be retried
	// (data StepAttemptFailed).
	EventStepAttemptFailed = "StepAttemptFailed"
	// MaxStepError bounds the bytes of an error kept in those events.
	MaxStepError = 512
)

// StepFailed is the data of EventStepFailed.
type StepFailed struct {
	Step     string `json:"step"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

// StepAttemptFailed is the data of EventStepAttemptFailed: attempt number
// Attempt (1-based, counted across restarts) of Step failed with Error and
// will be retried.
type StepAttemptFailed struct {
	Step    string `json:"step"`
	Error   string `json:"error"`
	Attempt int    `json:"attempt"`
}

// StepAttempts is what a state keeps of a step's failed attempts, and what
// the runtime resumes retries from after a restart.
type StepAttempts struct {
	// Count is the number of recorded failed attempts.
	Count int `json:"count"`
	// LastError is the error of the latest of them.
	LastError string `json:"last_error"`
	// First is the time of the first of them: a step's total retry time
	// counts from there across restarts.
	First time.Time `json:"first_at"`
}

// WithAttempt returns a copy of attempts with the failed attempt d, recorded
// at time at, added; attempts itself is not modified. An attempt that does
// not follow the recorded count is an error wrapping events.ErrInvalidEvent (a
// broken log).
func WithAttempt(attempts map[string]StepAttempts, d StepAttemptFailed, at time.Time) (map[string]StepAttempts, error) {
	prev := attempts[d.Step]
	if d.Attempt <= prev.Count {
		return nil, fmt.Errorf("%w: attempt %d of step %q after attempt %d", events.ErrInvalidEvent, d.Attempt, d.Step, prev.Count)
	}
	first := prev.First
	if prev.Count == 0 {
		first = at
	}
	next := make(map[string]StepAttempts, len(attempts)+1)
	maps.Copy(next, attempts)
	next[d.Step] = StepAttempts{Count: d.Attempt, LastError: d.Error, First: first}
	return next, nil
}

// ClipError shortens a step error to MaxStepError bytes at a rune boundary.
func ClipError(s string) string { return events.Clip(s, MaxStepError) }

// PermanentError is a step failure that a retry cannot fix (a rejected
// recipient, a step without what its action needs). The runtime records
// the step as failed at once instead of retrying it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a failure that a retry cannot fix.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
