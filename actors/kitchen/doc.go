// Package kitchen is the kitchen kind: a decider over "kitchen:main" (any
// kitchen:ID works the same way), the board of open tickets that order
// actors write to from their background steps.
//
// It owns the commands AddTicket {order, items} and CloseTicket {order},
// the events TicketAdded {order, items} and TicketClosed {order}, the state
// (open tickets only, in the order they were added) and the pure functions
// Decide and Evolve. It imports only the events package: no I/O, no clock,
// no goroutines.
//
// Rules, from the protocol and where it is silent:
//
//   - Both commands are internal (Internal, decider.Decider.Internal): the
//     order kind's steps send them, and the runtime refuses them from
//     clients with forbidden, with or without auth.
//   - order must be an order stream id ("order:ID"); items follow the
//     order kind's rules (1–50 items, name 1–64 characters without control
//     characters, qty 1–99), so a ticket never holds what no order could.
//   - Adding a ticket for an order whose ticket is open, or closing a
//     ticket that is not open, decides no events and no error: an order's
//     step that is retried after a lost reply (at-least-once) then has no
//     second effect. A ticket closed earlier can be added again; the order
//     kind never asks for that, because it adds its ticket only before it
//     asks to close it.
//   - Evolve is strict: a TicketAdded for an open ticket or a TicketClosed
//     for a ticket that is not open is a broken log (events.ErrInvalidEvent).
//
// Concurrency: pure functions; Evolve never modifies the slices of the State
// it is given, so states may be shared between goroutines.
package kitchen
