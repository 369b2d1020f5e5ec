// Package room is the chat room kind: a decider over the stream "room:ID".
//
// It owns the room's command (PostMessage), its event (MessagePosted), its
// state and the pure functions the actor runtime and the replay run: Decide,
// Evolve and WithMembers. It imports only the events package: no I/O, no
// clock (a message's time is its event's time), no goroutines.
//
// Rules, from the protocol and where it is silent:
//
//   - PostMessage {user, text} -> MessagePosted {user, text}.
//   - user is 1–64 characters (runes) and holds no control character, since
//     it is printed on its own as "user: text"; text is 1–4096 characters
//     and may hold newlines. Data that is not valid UTF-8 is rejected rather
//     than repaired, so what is stored is what was sent.
//   - Who is speaking: when the command carries an authenticated user
//     (Command.User, auth on) data.user must be empty or that same user,
//     else the command is forbidden; the event records the authenticated
//     user. With auth off data.user is required.
//   - The state keeps the last 100 messages (MaxMessages), oldest first,
//     each with the version and time of its event.
//   - members is presence: who is subscribed right now. It is never stored
//     and Evolve never sets it; the runtime fills it with WithMembers, which
//     sorts and de-duplicates, for the state it shows.
//   - Unknown fields and values of the wrong type in a command are
//     rejected (decider.ErrInvalid); in a stored event they make Evolve fail
//     (events.ErrInvalidEvent), since a log this code does not fully
//     understand must not be folded silently.
//
// Concurrency: everything here is a pure function of its arguments; Evolve
// and WithMembers never modify the slices of the State they are given, so
// states may be shared between goroutines.
//
// Cost: a room's actor decides and folds every message, so that path
// avoids reflection and copying. PostMessage data and MessagePosted events
// of the usual shape ({"user":…,"text":…}, strings without escapes) are
// read and written by hand (json.go; a valid PostMessage allocates its
// event alone, a MessagePosted one string for its message), anything else
// by encoding/json with the same outcome; successive states' messages are
// windows of one array
// that Evolve appends to in place (msgLog), copied once per MaxMessages
// events rather than once per event.
package room
