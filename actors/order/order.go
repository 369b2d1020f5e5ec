package order

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Kind is the stream kind this package decides for.
const Kind = "order"

// Command and event type names. They are recorded in logs: never rename.
const (
	CommandPlaceOrder  = "PlaceOrder"
	CommandCancelOrder = "CancelOrder"

	EventOrderPlaced     = "OrderPlaced"
	EventOrderCancelled  = "OrderCancelled"
	EventKitchenNotified = "KitchenNotified"
	EventOrderReady      = "OrderReady"
	EventTicketReleased  = "TicketReleased"
	EventReceiptSent     = "ReceiptSent"
	EventStepFailed      = decider.EventStepFailed
	// EventStepAttemptFailed records a failed attempt that will be retried.
	EventStepAttemptFailed = decider.EventStepAttemptFailed
)

// Step names.
const (
	StepKitchen = "kitchen"
	StepCook    = "cook"
	StepTicket  = "ticket"
	StepReceipt = "receipt"
)

// Order statuses.
const (
	StatusPlaced    = "placed"
	StatusInKitchen = "in_kitchen"
	StatusReady     = "ready"
	StatusCancelled = "cancelled"
)

// Step states (S in the protocol).
const (
	Pending = "pending"
	Done    = "done"
	Failed  = "failed"
	Skipped = "skipped"
)

// Ticket states: the kitchen ticket's life as the order knows it.
const (
	TicketNone      = "none"      // nothing added yet
	TicketOpen      = "open"      // KitchenNotified: the ticket is on the board
	TicketReleasing = "releasing" // the "ticket" step (CloseTicket) is owed
	TicketReleased  = "released"  // TicketReleased
	TicketFailed    = "failed"    // the ticket step failed finally
)

// The kitchen the steps write to and its commands (the kitchen kind's
// names, repeated here because kinds never import each other).
const (
	KitchenStream      = "kitchen:main"
	KitchenAddTicket   = "AddTicket"
	KitchenCloseTicket = "CloseTicket"
)

// Limits.
const (
	MaxItems    = 50
	MaxQty      = 99
	MaxItemName = 64
	MaxEmail    = 254
)

// State is an order as clients read it.
type State struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Items   []Item `json:"items"`
	Email   string `json:"email"`
	// User is the order's owner, who placed it (OrderPlaced.User); empty
	// when it was placed without auth or before owners were recorded.
	User string `json:"user,omitempty"`
	// Status is empty until the order is placed.
	Status string     `json:"status"`
	Steps  StepStates `json:"steps"`
	// Ticket is the kitchen ticket's state (Ticket* constants).
	Ticket string `json:"ticket"`
	// Errors holds the last error of each failed step.
	Errors map[string]string `json:"errors,omitempty"`
	// Attempts holds, for each step with recorded failed attempts (retried
	// or still to be retried), their count and last error. It is kept
	// after the step completes, as its history.
	Attempts map[string]Attempt `json:"attempts,omitempty"`
}

// Attempt is what the state keeps of a step's failed attempts.
type Attempt = decider.StepAttempts

// StepStates are the states of the protocol's three background steps.
type StepStates struct {
	Kitchen string `json:"kitchen"`
	Cook    string `json:"cook"`
	Receipt string `json:"receipt"`
}

// Item is a line of an order.
type Item = decider.Item

// MarshalJSON writes no items as [] rather than null.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	p := plain(s)
	p.Items = decider.List(p.Items)
	return events.EncodeData(p)
}

// PlaceOrder is the data of CommandPlaceOrder.
type PlaceOrder struct {
	Items []Item `json:"items"`
	Email string `json:"email,omitempty"`
}

// OrderPlaced is the data of EventOrderPlaced. User, the authenticated
// user who placed the order (its owner, see Private), was added later:
// absent in older logs and when auth is off.
type OrderPlaced struct {
	Items []Item `json:"items"`
	Email string `json:"email,omitempty"`
	User  string `json:"user,omitempty"`
}

// StepFailed is the data of EventStepFailed.
type StepFailed = decider.StepFailed

// StepAttemptFailed is the data of EventStepAttemptFailed: attempt number
// Attempt (1-based, counted across restarts) of Step failed with Error and
// will be retried.
type StepAttemptFailed = decider.StepAttemptFailed

// Initial is the state of an order stream with no events.
func Initial(stream string) State {
	return State{Stream: stream, Items: []Item{}, Ticket: TicketNone}
}

// Decide validates a command against the order and returns the events it
// produces.
func Decide(s State, c decider.Command) ([]events.Event, error) {
	switch c.Type {
	case CommandPlaceOrder:
		var d PlaceOrder
		if err := decider.DecodeCommand(Kind, c, &d); err != nil {
			return nil, err
		}
		if err := CheckItems(d.Items); err != nil {
			return nil, err
		}
		if d.Email != "" && !ValidEmail(d.Email) {
			return nil, decider.Invalid("email %q is not a valid address", events.Clip(d.Email, 80))
		}
		if s.Status != "" {
			return nil, decider.Conflict("the order was placed already")
		}
		return decider.Event(Kind, EventOrderPlaced, OrderPlaced{Items: d.Items, Email: d.Email, User: c.User})
	case CommandCancelOrder:
		if err := decider.DecodeCommand(Kind, c, &struct{}{}); err != nil {
			return nil, err
		}
		switch s.Status {
		case StatusPlaced, StatusInKitchen:
			return decider.Event(Kind, EventOrderCancelled, struct{}{})
		case "":
			return nil, decider.Conflict("no order was placed")
		default:
			return nil, decider.Conflict("the order is %s", s.Status)
		}
	default:
		return nil, decider.UnknownCommand(Kind, c.Type)
	}
}

// Private is the order's access rule (decider.Decider.Private): an order
// belongs to the user who placed it. Before it is placed anyone may give
// it a command (placing it makes them its owner) and nobody may read it,
// so that nobody can watch an order that someone else will place; once
// placed only its owner may, and an order placed without a user (auth
// off, or a log from before owners were recorded) is nobody's: admins
// only (the runtime lets admins through before asking).
func Private(s State, c decider.Caller, a decider.Access) bool {
	if s.Status == "" {
		return a == decider.Write
	}
	return s.User != "" && s.User == c.User
}

// CheckItems applies the item rules: 1–50 items, name 1–64 runes without
// control characters, qty 1–99.
func CheckItems(items []Item) error {
	if len(items) < 1 || len(items) > MaxItems {
		return decider.Invalid("an order has 1-%d items, got %d", MaxItems, len(items))
	}
	for i, it := range items {
		if n := utf8.RuneCountInString(it.Name); n < 1 || n > MaxItemName {
			return decider.Invalid("items[%d].name must be 1-%d characters, got %d", i, MaxItemName, n)
		}
		if strings.ContainsFunc(it.Name, unicode.IsControl) {
			return decider.Invalid("items[%d].name must not hold control characters", i)
		}
		if it.Qty < 1 || it.Qty > MaxQty {
			return decider.Invalid("items[%d].qty must be 1-%d, got %d", i, MaxQty, it.Qty)
		}
	}
	return nil
}

// ValidEmail reports whether s is a bare address: net/mail parses it to
// itself, without a display name, and it is at most MaxEmail bytes.
func ValidEmail(s string) bool {
	if len(s) > MaxEmail {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// Evolve applies one stored event.
func Evolve(s State, e events.Event) (State, error) {
	var (
		next State
		err  error
	)
	switch e.Type {
	case EventOrderPlaced:
		next, err = evolvePlaced(s, e)
	case EventOrderCancelled, EventKitchenNotified, EventOrderReady, EventTicketReleased, EventReceiptSent:
		if err = decodeEmpty(e); err == nil {
			next, err = evolveProgress(s, e)
		}
	case EventStepFailed:
		next, err = evolveStepFailed(s, e)
	case EventStepAttemptFailed:
		next = s
		next.Attempts, err = decider.EvolveAttempt(Kind, e, s.Attempts, s.owes)
	default:
		return s, fmt.Errorf("%s: %w %q", Kind, decider.ErrUnknownEvent, e.Type)
	}
	if err != nil {
		return s, err
	}
	next.Stream, next.Version = e.Stream, e.Version
	return next, nil
}

// invalid is the error of a stored event the state cannot take: a broken
// log.
func invalid(e events.Event, why string) error {
	return fmt.Errorf("%s %s: %w: %s", Kind, e.Type, events.ErrInvalidEvent, why)
}

func evolvePlaced(s State, e events.Event) (State, error) {
	var d OrderPlaced
	if err := decider.DecodeEvent(Kind, e, &d); err != nil {
		return s, err
	}
	if len(d.Items) == 0 {
		return s, invalid(e, "no items")
	}
	if s.Status != "" {
		return s, invalid(e, "the order was placed already")
	}
	s.Items, s.Email, s.User, s.Status = d.Items, d.Email, d.User, StatusPlaced
	s.Steps = StepStates{Kitchen: Pending, Cook: Pending, Receipt: Pending}
	if d.Email == "" {
		s.Steps.Receipt = Skipped
	}
	return s, nil
}

// evolveProgress applies the events without data that move an order
// along: cancelled, and each step done.
func evolveProgress(s State, e events.Event) (State, error) {
	next := s
	switch e.Type {
	case EventOrderCancelled:
		if s.Status != StatusPlaced && s.Status != StatusInKitchen {
			return s, invalid(e, fmt.Sprintf("cannot cancel an order that is %q", s.Status))
		}
		next.Status = StatusCancelled
		next.Steps = StepStates{Kitchen: skip(s.Steps.Kitchen), Cook: skip(s.Steps.Cook), Receipt: skip(s.Steps.Receipt)}
		if s.Ticket == TicketNone || s.Ticket == TicketOpen {
			next.Ticket = TicketReleasing
		}
	case EventKitchenNotified:
		if s.Steps.Kitchen != Pending {
			return s, invalid(e, fmt.Sprintf("kitchen step is %q, not pending", s.Steps.Kitchen))
		}
		next.Steps.Kitchen, next.Status, next.Ticket = Done, StatusInKitchen, TicketOpen
	case EventOrderReady:
		if s.Steps.Cook != Pending || s.Steps.Kitchen != Done {
			return s, invalid(e, fmt.Sprintf("cook step is %q and kitchen step %q", s.Steps.Cook, s.Steps.Kitchen))
		}
		next.Steps.Cook, next.Status, next.Ticket = Done, StatusReady, TicketReleasing
	case EventTicketReleased:
		if s.Ticket != TicketReleasing {
			return s, invalid(e, fmt.Sprintf("ticket is %q, not releasing", s.Ticket))
		}
		next.Ticket = TicketReleased
	case EventReceiptSent:
		if s.Steps.Receipt != Pending || s.Status != StatusReady {
			return s, invalid(e, fmt.Sprintf("receipt step is %q and the order %q", s.Steps.Receipt, s.Status))
		}
		next.Steps.Receipt = Done
	}
	return next, nil
}

func evolveStepFailed(s State, e events.Event) (State, error) {
	d, errs, err := decider.EvolveStepFailed(Kind, e, s.Errors, s.owes)
	if err != nil {
		return s, err
	}
	next := s
	next.Errors = errs
	switch d.Step {
	case StepKitchen:
		next.Steps = StepStates{Kitchen: Failed, Cook: skip(s.Steps.Cook), Receipt: skip(s.Steps.Receipt)}
		// The AddTicket may have landed with its reply lost.
		next.Ticket = TicketReleasing
	case StepCook:
		next.Steps.Cook, next.Steps.Receipt = Failed, skip(s.Steps.Receipt)
		next.Ticket = TicketReleasing
	case StepReceipt:
		next.Steps.Receipt = Failed
	case StepTicket:
		next.Ticket = TicketFailed
	}
	return next, nil
}

// skip marks a step that was still to run as skipped.
func skip(step string) string {
	if step == Pending {
		return Skipped
	}
	return step
}

// owes reports whether a step of that name is still owed.
func (s State) owes(step string) bool {
	switch step {
	case StepKitchen:
		return s.Steps.Kitchen == Pending
	case StepCook:
		return s.Steps.Cook == Pending
	case StepReceipt:
		return s.Steps.Receipt == Pending
	case StepTicket:
		return s.Ticket == TicketReleasing
	}
	return false
}

// DefaultCookTime is how long the cook step waits unless New is given
// another time.
const DefaultCookTime = 3 * time.Second

// New returns the order kind, with its background steps, for the runtime
// and the replay. cookTime is how long the cook step waits (0: the
// default).
func New(cookTime time.Duration) decider.Kind {
	if cookTime <= 0 {
		cookTime = DefaultCookTime
	}
	return decider.New(decider.Decider[State]{
		Name:          Kind,
		Initial:       Initial,
		Decide:        Decide,
		Evolve:        Evolve,
		Steps:         func(s State) []decider.Step { return steps(s, cookTime) },
		Complete:      Complete,
		RecordAttempt: RecordAttempt,
		Attempts:      Attempts,
		Private:       Private,
	})
}

// Steps lists the background steps the order still owes, in the order they
// must run, with the default cook time.
func Steps(s State) []decider.Step { return steps(s, DefaultCookTime) }

func steps(s State, cookTime time.Duration) []decider.Step {
	id := s.Stream
	if sid, err := events.ParseStreamID(s.Stream); err == nil {
		id = sid.ID
	}
	var out []decider.Step
	if s.owes(StepKitchen) {
		data, _ := json.Marshal(struct {
			Order string `json:"order"`
			Items []Item `json:"items"`
		}{s.Stream, s.Items})
		out = append(out, decider.Step{Name: StepKitchen, Key: s.Stream + "/" + StepKitchen, Action: decider.StepCommand,
			Target: KitchenStream, Command: KitchenAddTicket, Data: data})
	}
	if s.owes(StepCook) {
		out = append(out, decider.Step{Name: StepCook, Key: s.Stream + "/" + StepCook, Action: decider.StepWait, Wait: cookTime})
	}
	if s.owes(StepTicket) {
		data, _ := json.Marshal(struct {
			Order string `json:"order"`
		}{s.Stream})
		out = append(out, decider.Step{Name: StepTicket, Key: s.Stream + "/" + StepTicket, Action: decider.StepCommand,
			Target: KitchenStream, Command: KitchenCloseTicket, Data: data})
	}
	if s.owes(StepReceipt) {
		var body strings.Builder
		fmt.Fprintf(&body, "Thank you for your order %s.\n\n", id)
		for _, it := range s.Items {
			fmt.Fprintf(&body, "%2d × %s\n", it.Qty, it.Name)
		}
		body.WriteString("\nIt is ready for you.\n")
		out = append(out, decider.Step{Name: StepReceipt, Key: s.Stream + "/" + StepReceipt, Action: decider.StepEmail,
			Email: &decider.Email{To: s.Email, Subject: "Your receipt for order " + id, Body: body.String()}})
	}
	return out
}

// Complete turns the outcome of a step into the event that records it.
func Complete(s State, r decider.StepResult) ([]events.Event, error) {
	owed := Steps(s)
	i := -1
	for j, st := range owed {
		if st.Name == r.Step {
			i = j
			break
		}
	}
	switch {
	case i < 0:
		return nil, nil // a duplicate, or made moot by a cancel
	case i > 0:
		return nil, decider.Conflict("step %s reported before step %s", r.Step, owed[0].Name)
	}
	if r.Err != "" {
		return decider.StepFailedEvent(Kind, r)
	}
	switch r.Step {
	case StepKitchen:
		return decider.Event(Kind, EventKitchenNotified, struct{}{})
	case StepCook:
		return decider.Event(Kind, EventOrderReady, struct{}{})
	case StepTicket:
		return decider.Event(Kind, EventTicketReleased, struct{}{})
	default: // StepReceipt: owes knows no other step
		return decider.Event(Kind, EventReceiptSent, struct{}{})
	}
}

// RecordAttempt turns a failed attempt of the first owed step that will be
// retried into StepAttemptFailed; an attempt of any other step, or one
// already recorded, records nothing.
func RecordAttempt(s State, r decider.StepResult) ([]events.Event, error) {
	if owed := Steps(s); len(owed) == 0 || owed[0].Name != r.Step {
		return nil, nil
	}
	return decider.AttemptEvent(Kind, r, s.Attempts[r.Step])
}

// Attempts returns the recorded failed attempts of a step.
func Attempts(s State, step string) Attempt { return s.Attempts[step] }

func decodeEmpty(e events.Event) error { return decider.DecodeEvent(Kind, e, &struct{}{}) }
