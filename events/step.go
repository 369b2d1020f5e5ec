package events

import (
	"encoding/json"
	"time"
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
	// Action is what the runtime does: StepCommand, StepWait or StepEmail.
	Action string `json:"action"`
	// Target and Command: for StepCommand, the stream and command to send.
	Target  string          `json:"target,omitempty"`
	Command string          `json:"command,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Email: for StepEmail, the message to send.
	Email *Email `json:"email,omitempty"`
}

// Step actions.
const (
	// StepCommand sends Command with Data to the actor of Target; the step
	// succeeds when that command is acknowledged.
	StepCommand = "command"
	// StepWait waits for the runtime's configured cook time.
	StepWait = "wait"
	// StepEmail sends Email through the runtime's mailer.
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
