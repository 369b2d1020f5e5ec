// Package decider is the contract between the actor runtime and the kinds
// it runs: the Command a client sends, the Decider a kind supplies (pure
// Decide and Evolve functions over its own state type, plus the background
// Steps its state owes), the step vocabulary (Step, StepResult, Email, the
// attempt records) and the errors a kind returns.
//
// A kind package imports this package and events, and nothing else of the
// engine; the runtime (package actors) imports it to run every kind the
// same way. Kind, the type-erased form made by New, is what the runtime,
// the replay and the kinds registry hold.
//
// Concurrency: everything here is plain data and pure functions. A Kind
// made by New is safe for concurrent use as long as the kind's functions
// are, which the contract requires (no I/O, no clock, no shared state).
package decider
