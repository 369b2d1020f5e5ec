package decider

import (
	"fmt"
	"maps"
	"unicode"
	"unicode/utf8"

	"github.com/b6368a97/engine/events"
)

// Helpers every kind uses the same way, so that all of them refuse the
// same inputs with the same words and record steps alike.

// DecodeCommand strictly decodes a command's data into v (see
// events.DecodeData); the error names the kind and the command and wraps
// ErrInvalid.
func DecodeCommand(kind string, c Command, v any) error {
	if err := events.DecodeData(c.Data, v, ErrInvalid); err != nil {
		return fmt.Errorf("%s %s: %w", kind, c.Type, err)
	}
	return nil
}

// DecodeEvent strictly decodes a stored event's data into v; the error
// names the kind and the event type and wraps events.ErrInvalidEvent.
func DecodeEvent(kind string, e events.Event, v any) error {
	if err := events.DecodeData(e.Data, v, events.ErrInvalidEvent); err != nil {
		return fmt.Errorf("%s %s: %w", kind, e.Type, err)
	}
	return nil
}

// Event returns the one event of type typ with v as its data.
func Event(kind, typ string, v any) ([]events.Event, error) {
	data, err := events.EncodeData(v)
	if err != nil {
		return nil, fmt.Errorf("%s: encode %s: %w", kind, typ, err)
	}
	return []events.Event{{Type: typ, Data: data}}, nil
}

// CheckName validates a short name: 1 to max runes, no control
// characters; the error wraps ErrInvalid.
func CheckName(field, v string, max int) error {
	if n := utf8.RuneCountInString(v); n < 1 || n > max {
		return Invalid("%s must be 1-%d characters, got %d", field, max, n)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return Invalid("%s must not hold control characters", field)
		}
	}
	return nil
}

// StepFailedEvent records a step that failed for good (EventStepFailed).
func StepFailedEvent(kind string, r StepResult) ([]events.Event, error) {
	return Event(kind, EventStepFailed, StepFailed{Step: r.Step, Error: ClipError(r.Err), Attempts: r.Attempts})
}

// AttemptEvent records a failed attempt of an owed step that will be
// retried (EventStepAttemptFailed); nothing when r is no failure or its
// attempt is recorded already (recorded holds the step's record).
func AttemptEvent(kind string, r StepResult, recorded StepAttempts) ([]events.Event, error) {
	if r.Err == "" || r.Attempts <= recorded.Count {
		return nil, nil
	}
	return Event(kind, EventStepAttemptFailed, StepAttemptFailed{Step: r.Step, Error: ClipError(r.Err), Attempt: r.Attempts})
}

// NotOwed is the error of a stored step event for a step the state does
// not owe: a broken log.
func NotOwed(kind string, e events.Event, step string) error {
	return fmt.Errorf("%s %s: %w: step %q is not owed", kind, e.Type, events.ErrInvalidEvent, step)
}

// EvolveStepFailed decodes a stored EventStepFailed of an owed step and
// returns its data and a copy of errs with the step's error set.
func EvolveStepFailed(kind string, e events.Event, errs map[string]string, owes func(step string) bool) (StepFailed, map[string]string, error) {
	var d StepFailed
	if err := DecodeEvent(kind, e, &d); err != nil {
		return d, nil, err
	}
	if !owes(d.Step) {
		return d, nil, NotOwed(kind, e, d.Step)
	}
	next := make(map[string]string, len(errs)+1)
	maps.Copy(next, errs)
	next[d.Step] = d.Error
	return d, next, nil
}

// EvolveAttempt decodes a stored EventStepAttemptFailed of an owed step
// and returns a copy of attempts with it added (see WithAttempt).
func EvolveAttempt(kind string, e events.Event, attempts map[string]StepAttempts, owes func(step string) bool) (map[string]StepAttempts, error) {
	var d StepAttemptFailed
	if err := DecodeEvent(kind, e, &d); err != nil {
		return nil, err
	}
	if !owes(d.Step) {
		return nil, NotOwed(kind, e, d.Step)
	}
	next, err := WithAttempt(attempts, d, e.Time)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, e.Type, err)
	}
	return next, nil
}

// List is s, or an empty list when s is nil, so that a state's lists are
// written as [] rather than null whatever path (a snapshot, a zero
// state) they came from.
func List[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Item is a line of an order and of its kitchen ticket: vocabulary two
// kinds share (kinds never import each other).
type Item struct {
	Name string `json:"name"`
	Qty  int    `json:"qty"`
}
