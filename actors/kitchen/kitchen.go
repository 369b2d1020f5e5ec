package kitchen

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Kind is the stream kind this package decides for.
const Kind = "kitchen"

// MainStream is the kitchen the order kind writes to.
const MainStream = "kitchen:main"

// Command and event type names. They are recorded in logs: never rename.
const (
	CommandAddTicket   = "AddTicket"
	CommandCloseTicket = "CloseTicket"
	EventTicketAdded   = "TicketAdded"
	EventTicketClosed  = "TicketClosed"
)

// Limits on a ticket's items (the order kind's).
const (
	MaxItems    = 50
	MaxQty      = 99
	MaxItemName = 64
)

// State is the kitchen as clients read it.
type State struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	// Tickets are the open tickets, in the order they were added.
	Tickets []Ticket `json:"tickets"`
}

// Ticket is one order's open ticket.
type Ticket struct {
	Order string `json:"order"`
	Items []Item `json:"items"`
}

// Item is a line of a ticket.
type Item = decider.Item

// MarshalJSON writes no tickets as [] rather than null.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	p := plain(s)
	p.Tickets = decider.List(p.Tickets)
	return events.EncodeData(p)
}

// TicketClosed is the data of CommandCloseTicket and EventTicketClosed;
// Ticket is the data of CommandAddTicket and EventTicketAdded.
type TicketClosed struct {
	Order string `json:"order"`
}

// Initial is the state of a kitchen with no events.
func Initial(stream string) State {
	return State{Stream: stream, Tickets: []Ticket{}}
}

// Open reports whether the order's ticket is open.
func (s State) Open(order string) bool { return s.index(order) >= 0 }

func (s State) index(order string) int {
	return slices.IndexFunc(s.Tickets, func(t Ticket) bool { return t.Order == order })
}

// Decide validates a command against the kitchen and returns the events it
// produces.
func Decide(s State, c decider.Command) ([]events.Event, error) {
	switch c.Type {
	case CommandAddTicket:
		var d Ticket
		if err := decider.DecodeCommand(Kind, c, &d); err != nil {
			return nil, err
		}
		if err := checkOrder(d.Order); err != nil {
			return nil, err
		}
		if err := checkItems(d.Items); err != nil {
			return nil, err
		}
		if s.Open(d.Order) {
			return nil, nil // a retried step: the ticket is there already
		}
		return decider.Event(Kind, EventTicketAdded, d)
	case CommandCloseTicket:
		var d TicketClosed
		if err := decider.DecodeCommand(Kind, c, &d); err != nil {
			return nil, err
		}
		if err := checkOrder(d.Order); err != nil {
			return nil, err
		}
		if !s.Open(d.Order) {
			return nil, nil // closed already, or never added
		}
		return decider.Event(Kind, EventTicketClosed, d)
	default:
		return nil, decider.UnknownCommand(Kind, c.Type)
	}
}

// Evolve applies one stored event.
func Evolve(s State, e events.Event) (State, error) {
	switch e.Type {
	case EventTicketAdded:
		var d Ticket
		if err := decider.DecodeEvent(Kind, e, &d); err != nil {
			return s, err
		}
		if d.Order == "" || len(d.Items) == 0 {
			return s, fmt.Errorf("%s %s: %w: order and items are required", Kind, e.Type, events.ErrInvalidEvent)
		}
		if s.Open(d.Order) {
			return s, fmt.Errorf("%s %s: %w: ticket of %s is open already", Kind, e.Type, events.ErrInvalidEvent, d.Order)
		}
		// A fresh slice: the caller's State keeps its own tickets.
		tickets := make([]Ticket, len(s.Tickets), len(s.Tickets)+1)
		copy(tickets, s.Tickets)
		s.Tickets = append(tickets, d)
	case EventTicketClosed:
		var d TicketClosed
		if err := decider.DecodeEvent(Kind, e, &d); err != nil {
			return s, err
		}
		i := s.index(d.Order)
		if i < 0 {
			return s, fmt.Errorf("%s %s: %w: no open ticket of %q", Kind, e.Type, events.ErrInvalidEvent, d.Order)
		}
		s.Tickets = slices.Concat(s.Tickets[:i], s.Tickets[i+1:])
	default:
		return s, fmt.Errorf("%s: %w %q", Kind, decider.ErrUnknownEvent, e.Type)
	}
	s.Stream, s.Version = e.Stream, e.Version
	return s, nil
}

func checkOrder(order string) error {
	id, err := events.ParseStreamID(order)
	if err != nil || id.Kind != "order" {
		return decider.Invalid("order must be an order stream (order:<id>), got %q", events.Clip(order, 80))
	}
	return nil
}

func checkItems(items []Item) error {
	if len(items) < 1 || len(items) > MaxItems {
		return decider.Invalid("a ticket has 1-%d items, got %d", MaxItems, len(items))
	}
	for i, it := range items {
		if n := utf8.RuneCountInString(it.Name); n < 1 || n > MaxItemName {
			return decider.Invalid("items[%d].name must be 1-%d characters, got %d", i, MaxItemName, n)
		}
		for _, r := range it.Name {
			if unicode.IsControl(r) {
				return decider.Invalid("items[%d].name must not hold control characters", i)
			}
		}
		if it.Qty < 1 || it.Qty > MaxQty {
			return decider.Invalid("items[%d].qty must be 1-%d, got %d", i, MaxQty, it.Qty)
		}
	}
	return nil
}

// New returns the kitchen kind, for the runtime and the replay.
func New() decider.Kind {
	return decider.New(decider.Decider[State]{Name: Kind, Initial: Initial, Decide: Decide, Evolve: Evolve,
		Internal: Internal})
}

// Internal are the kitchen's commands, all of them: only order actors
// send them, from their steps; the runtime refuses them from clients.
var Internal = []string{CommandAddTicket, CommandCloseTicket}
