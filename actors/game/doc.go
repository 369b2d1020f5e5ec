// Package game is the score board kind: a decider over the stream "game:ID".
//
// It owns the game's commands (UpdateScore, EndGame), its events
// (ScoreUpdated, GameEnded), its state and the pure functions Decide and
// Evolve. It imports only the events package: no I/O, no clock, no
// goroutines.
//
// Rules, from the protocol and where it is silent:
//
//   - UpdateScore {team, score} -> ScoreUpdated {team, score}. team is 1–64
//     characters (runes) without control characters. score is a JSON
//     integer literal from 0 to MaxScore (2^53-1, the largest integer every
//     JSON client reads exactly): a fraction (1.5, 1.0, 1e3), a negative
//     number, a string, null or a missing score is rejected. The new score
//     replaces the team's old one; any number of teams may play.
//   - EndGame {} -> GameEnded {}. A game may end before any score was set.
//   - After GameEnded every command is a conflict (decider.ErrConflict):
//     UpdateScore, and EndGame a second time.
//   - Input is validated before the state is looked at, so a malformed
//     command is bad_request even on an ended game.
//   - Unknown fields and values of the wrong type are rejected in commands
//     (decider.ErrInvalid) and make Evolve fail on stored events
//     (events.ErrInvalidEvent), as does an event the state cannot follow
//     (a score after the end, a second end).
//
// Concurrency: pure functions; Evolve never modifies the map of the State
// it is given, so states may be shared between goroutines.
package game
