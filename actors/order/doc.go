// Package order is the order kind: a decider over "order:ID" with
// background steps.
//
// It owns the commands PlaceOrder {items:[{name,qty}], email?} and
// CancelOrder {}, the events OrderPlaced, OrderCancelled and the step
// completions KitchenNotified, OrderReady, TicketReleased, ReceiptSent and
// StepFailed, StepAttemptFailed (a failed attempt that will be retried), the state, and the pure functions Decide, Evolve, Steps and
// Complete. It imports only the events package: no I/O, no clock, no
// goroutines. It writes to the kitchen only through the steps it returns
// (commands AddTicket and CloseTicket to kitchen:main), never by importing
// the kitchen kind.
//
// Rules, from the protocol and where it is silent:
//
//   - PlaceOrder: 1–50 items, each with a name of 1–64 characters (runes,
//     no control characters) and a qty from 1 to 99 (a JSON integer); email
//     is optional and, when given, a bare address as net/mail parses it
//     (no display name, no angle brackets, no surrounding space), at most
//     254 bytes. Placing an order on a stream that has one is a conflict.
//   - Owner: OrderPlaced records the authenticated user who placed the
//     order (data "user", absent without auth and in older logs), shown as
//     the state's "user". Private makes order streams private to it (and
//     to admins); an order without an owner is for admins only. With auth
//     off nobody is checked.
//   - CancelOrder: allowed while the order is placed or in the kitchen;
//     before any order, after OrderReady and a second time it is a
//     conflict.
//   - status: placed -> in_kitchen (KitchenNotified) -> ready (OrderReady),
//     or cancelled. A failed step does not change the status (it stays
//     within the protocol's four values); it shows in steps, with the last
//     error under "errors".
//   - steps: kitchen (AddTicket to kitchen:main) -> cook (wait for the cook
//     time) -> receipt (email, only when an email was given; "skipped"
//     otherwise). Each is pending, done, failed or skipped. A step that
//     depends on a failed one is skipped (cook and receipt on kitchen,
//     receipt on cook); cancelling skips every step still pending.
//   - ticket: the kitchen's ticket must close when the order is ready,
//     cancelled, or will never be cooked (kitchen or cook failed). That is an
//     internal step, "ticket" (CloseTicket to kitchen:main, completed by
//     TicketReleased), shown in the state field "ticket" — none, open,
//     releasing, released or failed — and not among "steps". A cancel
//     while the kitchen step is still pending also releases, because that
//     step may be in flight (or may have reached the kitchen before a
//     crash); CloseTicket of a ticket that is not open is a no-op in the
//     kitchen, so this costs nothing when no ticket was added.
//   - Steps returns the steps still owed in the order they must run:
//     kitchen, cook, ticket, receipt (the ticket is released before the
//     receipt is mailed so a slow mailer never holds a kitchen ticket).
//     Each step's idempotency key is stream + "/" + name.
//   - RecordAttempt turns a failed attempt of the first owed step that the
//     runtime will retry into StepAttemptFailed {step, error, attempt}
//     (attempt counted across restarts, the error clipped to 512 bytes).
//     It never changes the steps' values; the state's "attempts" field
//     keeps, per step, {count, last_error, first_at} (first_at: the time
//     of the first such event, from which the runtime's retry budget
//     counts), also after the step completes. Attempts returns it.
//   - Complete turns a step's outcome into its event, or StepFailed {step,
//     error, attempts} when it failed (the error clipped to 512 bytes). A
//     step that is not owed any more (a duplicate, or one made moot by a
//     cancel) completes as a no-op; a step reported before an earlier owed
//     one is a conflict, since the runtime runs only the first.
//   - Evolve is strict: an event the state cannot follow (a second
//     OrderPlaced, OrderReady before KitchenNotified, …), unknown fields or
//     values of the wrong type make it fail (events.ErrInvalidEvent).
//
// Concurrency: pure functions; Evolve never modifies the slices or maps of
// the State it is given, so states may be shared between goroutines.
package order
