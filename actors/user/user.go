package user

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Kind is the stream kind this package decides for.
const Kind = "user"

// Command and event type names. They are recorded in logs: never rename.
const (
	CommandSignUp         = "SignUp"
	EventUserSignedUp     = "UserSignedUp"
	EventWelcomeEmailSent = "WelcomeEmailSent"
	EventStepFailed       = decider.EventStepFailed
	// EventStepAttemptFailed records a failed attempt that will be retried.
	EventStepAttemptFailed = decider.EventStepAttemptFailed
)

// StepWelcome is the name of the welcome email step.
const StepWelcome = "welcome"

// Step states.
const (
	Pending = "pending"
	Done    = "done"
	Failed  = "failed"
)

// Limits.
const (
	MaxName  = 64
	MaxEmail = 254
)

// State is a user as clients read it.
type State struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Email   string `json:"email"`
	Name    string `json:"name"`
	// WelcomeEmail is the welcome step's state, empty before the sign-up.
	WelcomeEmail string `json:"welcome_email"`
	// Errors holds the last error of each failed step.
	Errors map[string]string `json:"errors,omitempty"`
	// Attempts holds, for each step with recorded failed attempts (retried
	// or still to be retried), their count and last error. It is kept
	// after the step completes, as its history.
	Attempts map[string]Attempt `json:"attempts,omitempty"`
}

// Attempt is what the state keeps of a step's failed attempts.
type Attempt = decider.StepAttempts

// SignUp is the data of CommandSignUp and EventUserSignedUp.
type SignUp struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// StepFailed is the data of EventStepFailed.
type StepFailed = decider.StepFailed

// StepAttemptFailed is the data of EventStepAttemptFailed: attempt number
// Attempt (1-based, counted across restarts) of Step failed with Error and
// will be retried.
type StepAttemptFailed = decider.StepAttemptFailed

// Initial is the state of a user stream with no events.
func Initial(stream string) State { return State{Stream: stream} }

// IDForEmail derives the id of the user stream of an address: the same for
// every spelling that differs only in case or surrounding space. It fails
// (decider.ErrInvalid) when the address is not valid.
func IDForEmail(email string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(email))
	if !validEmail(n) {
		return "", decider.Invalid("email %q is not a valid address", events.Clip(email, 80))
	}
	sum := sha256.Sum256([]byte(n))
	return hex.EncodeToString(sum[:16]), nil
}

// Decide validates a command against the user and returns the events it
// produces.
func Decide(s State, c decider.Command) ([]events.Event, error) {
	switch c.Type {
	case CommandSignUp:
		var d SignUp
		if err := decider.DecodeCommand(Kind, c, &d); err != nil {
			return nil, err
		}
		d.Email = strings.TrimSpace(d.Email)
		if !validEmail(d.Email) {
			return nil, decider.Invalid("email %q is not a valid address", events.Clip(d.Email, 80))
		}
		if n := utf8.RuneCountInString(d.Name); n < 1 || n > MaxName {
			return nil, decider.Invalid("name must be 1-%d characters, got %d", MaxName, n)
		}
		if strings.ContainsFunc(d.Name, unicode.IsControl) {
			return nil, decider.Invalid("name must not hold control characters")
		}
		// One user per email, on every route: an address signs up on its
		// own stream only.
		id, err := IDForEmail(d.Email)
		if err != nil {
			return nil, err
		}
		if want := Kind + ":" + id; c.Stream != want {
			return nil, decider.Invalid("email %q signs up on stream %s only, not %s", events.Clip(d.Email, 80), want, events.Clip(c.Stream, 80))
		}
		if s.Email != "" {
			return nil, decider.Conflict("%s is signed up already", s.Stream)
		}
		return decider.Event(Kind, EventUserSignedUp, d)
	default:
		return nil, decider.UnknownCommand(Kind, c.Type)
	}
}

// Evolve applies one stored event.
func Evolve(s State, e events.Event) (State, error) {
	fail := func(why string) (State, error) {
		return s, fmt.Errorf("%s %s: %w: %s", Kind, e.Type, events.ErrInvalidEvent, why)
	}
	next := s
	switch e.Type {
	case EventUserSignedUp:
		var d SignUp
		if err := decider.DecodeEvent(Kind, e, &d); err != nil {
			return s, err
		}
		if d.Email == "" || d.Name == "" {
			return fail("email and name are required")
		}
		if s.Email != "" {
			return fail("signed up twice")
		}
		next.Email, next.Name, next.WelcomeEmail = d.Email, d.Name, Pending
	case EventWelcomeEmailSent:
		if err := decider.DecodeEvent(Kind, e, &struct{}{}); err != nil {
			return s, err
		}
		if s.WelcomeEmail != Pending {
			return fail(fmt.Sprintf("welcome email is %q, not pending", s.WelcomeEmail))
		}
		next.WelcomeEmail = Done
	case EventStepFailed:
		_, errs, err := decider.EvolveStepFailed(Kind, e, s.Errors, s.owes)
		if err != nil {
			return s, err
		}
		next.WelcomeEmail, next.Errors = Failed, errs
	case EventStepAttemptFailed:
		attempts, err := decider.EvolveAttempt(Kind, e, s.Attempts, s.owes)
		if err != nil {
			return s, err
		}
		next.Attempts = attempts
	default:
		return s, fmt.Errorf("%s: %w %q", Kind, decider.ErrUnknownEvent, e.Type)
	}
	next.Stream, next.Version = e.Stream, e.Version
	return next, nil
}

// Private is the user's access rule (decider.Decider.Private): a user
// stream belongs to the holder of a verified email address (Caller.Email)
// whose IDForEmail is the stream's id, for reading and for commands alike;
// admins are let through by the runtime before it asks.
func Private(s State, c decider.Caller, _ decider.Access) bool {
	if c.Email == "" {
		return false
	}
	id, err := IDForEmail(c.Email)
	return err == nil && s.Stream == Kind+":"+id
}

// owes reports whether a step of that name is still owed.
func (s State) owes(step string) bool {
	return step == StepWelcome && s.WelcomeEmail == Pending
}

// Steps lists the background steps the user still owes: the welcome email
// until it is sent or has failed.
func Steps(s State) []decider.Step {
	if s.WelcomeEmail != Pending {
		return nil
	}
	return []decider.Step{{
		Name:   StepWelcome,
		Key:    s.Stream + "/" + StepWelcome,
		Action: decider.StepEmail,
		Email: &decider.Email{
			To:      s.Email,
			Subject: "Welcome, " + s.Name + "!",
			Body:    "Hi " + s.Name + ",\n\nwelcome aboard: your account is ready.\n",
		},
	}}
}

// Complete turns the outcome of a step into the event that records it; a
// step that is not owed any more completes as a no-op.
func Complete(s State, r decider.StepResult) ([]events.Event, error) {
	if r.Step != StepWelcome || s.WelcomeEmail != Pending {
		return nil, nil
	}
	if r.Err != "" {
		return decider.StepFailedEvent(Kind, r)
	}
	return decider.Event(Kind, EventWelcomeEmailSent, struct{}{})
}

// RecordAttempt turns a failed attempt of the welcome step that will be
// retried into StepAttemptFailed; an attempt of a step not owed, or one
// already recorded, records nothing.
func RecordAttempt(s State, r decider.StepResult) ([]events.Event, error) {
	if !s.owes(r.Step) {
		return nil, nil
	}
	return decider.AttemptEvent(Kind, r, s.Attempts[r.Step])
}

// Attempts returns the recorded failed attempts of a step.
func Attempts(s State, step string) Attempt { return s.Attempts[step] }

// validEmail reports whether s is a bare address: net/mail parses it to
// itself, without a display name, and it is at most MaxEmail bytes.
func validEmail(s string) bool {
	if len(s) > MaxEmail {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// New returns the user kind, with its welcome email step, for the runtime
// and the replay.
func New() decider.Kind {
	return decider.New(decider.Decider[State]{Name: Kind, Initial: Initial, Decide: Decide, Evolve: Evolve,
		Steps: Steps, Complete: Complete, RecordAttempt: RecordAttempt, Attempts: Attempts, Private: Private})
}
