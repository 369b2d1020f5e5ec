// Package actors is the event-sourced actor runtime: one protoactor actor
// per active stream, written once and running every kind through the Kind
// interface (a Decider with its state type erased).
//
// What it owns:
//
//   - Activation (activation.go): on its first message a stream's actor
//     (stream.go) loads the latest snapshot and folds Kind.Evolve over the
//     events after it. A new activation of a stream waits until the
//     previous one has stopped.
//   - Commands (Runtime.Execute, command.go): Decide, give the events ids
//     and meta, append at the actor's version, fold, reply, publish, start
//     owed steps. Nothing is answered before the append is durable.
//     Commands that queue up behind an append are decided in order, each
//     on the state the earlier ones leave, and appended together in one
//     store call (group commit); a command alone is a batch of one, and
//     every command takes that one path. A failed append of several
//     commands reloads the stream and runs each again alone; a command
//     alone that conflicts with another writer of the same store (a
//     second runtime) is decided once more on the reloaded stream before
//     the conflict is reported. A command id makes a command idempotent:
//     the event ids derive from it, and the stream remembers its last
//     Config.IdempotencyWindow ids with their results and fingerprints,
//     across passivation and restarts (cmdWindow in idempotency.go has the
//     exact guarantee).
//   - Snapshots every Config.SnapshotEvery events (a failure is logged).
//     A snapshot holds the kind's state and the command window, in an
//     envelope that snapshots without it still load as (snapshot.go).
//   - Passivation (passivation.go) after Config.IdleTimeout without
//     messages, subscribers or a running step; the next message
//     reactivates the stream. An actor with a request queued never
//     passivates (it serves it, and looks again later), so the requests
//     sent for a stream are received in the order sent, across
//     activations. An actor whose stream has no events (a read
//     of a stream that does not exist, a rejected or no-op command, a
//     subscription since cancelled) retires as soon as it has answered,
//     unless it has a subscriber, a running step or a queued request.
//   - At most Config.MaxActors active actors (lru.go): past it, the least
//     recently used actor without a subscriber, a running step or a
//     queued request is passivated. The registry keeps those actors in a
//     list touched by every API call under the lock the call takes
//     anyway; eviction is a message to the chosen actor, which re-checks
//     that it is idle. Actors with subscribers or steps are never evicted,
//     so the bound is exceeded while more of them are pinned, and briefly
//     while evictions are in flight.
//   - Subscriptions (Runtime.Subscribe; subscription.go, subscribers.go):
//     the one catch-up-then-live path. Subscribed gets the stream's
//     version V first. A subscription From an earlier version is not
//     registered with the actor yet: its reader reads the stored events a
//     page at a time, paced by the consumer (Sink.WaitRoom), up to the
//     version the actor last reported, then asks the actor to go live at
//     the version it has reached; the actor registers it only if it is
//     still at that version (else the reader reads the rest and asks
//     again; after a few refusals it is registered with a small bounded
//     hold while it reads the last stretch). Live events never block the
//     actor: a full sink, a full hold or a store error during catch-up
//     ends the subscription with Sink.Overflow, and the subscriber resumes
//     From what it has. The subscription alone knows which versions its
//     sink has: no gap, no duplicate. Live-only and From >= V
//     subscriptions register at once.
//   - Presence (presence.go), in memory, for kinds that have it: a member
//     joins when its subscription is registered (after its catch-up) and
//     leaves on Cancel or overflow; every subscriber of the room is told.
//   - Background steps (steps.go): a child actor per running step,
//     spawned after the reply, retried with exponential backoff and jitter
//     up to Config.StepAttempts attempts and Config.StepMaxTime from the
//     first, completed through Kind.Complete (success or final failure),
//     appended the way commands are (persist, command.go). Each
//     failed attempt that will be retried is recorded in the stream through
//     Kind.RecordAttempt (StepAttemptFailed in the order and user kinds;
//     a successful first attempt records nothing), so that a resumed step
//     continues its attempt count and time budget (Kind.Attempts). Every
//     attempt is logged ("step attempt") and reported to
//     Observer.StepAttempt. The store's pending index lets Start resume
//     unfinished steps, including those interrupted in a back-off.
//   - Step executors: the runtime runs decider.StepCommand itself; every
//     other action runs through the Executor registered for it in
//     Config.Executors (Wait here; the email executor in package mail).
//
// Concurrency contract: Runtime's methods are safe for concurrent use.
// Everything about one stream happens on its actor, one message at a
// time; kind functions are only ever called from there. The caller of an
// API method waits on a reply channel with room for one answer, selecting
// on its own context, so an actor never blocks on a caller; a caller of
// Runtime.ExecuteFunc does not wait, and the actor calls its non-blocking
// done instead (a transport's ack). Actors call
// Sinks only through non-blocking Enqueue (and Overflow once), serialised
// per subscription; only a catch-up reader waits, in Sink.WaitRoom.
// Goroutines: mailbox goroutines of the runtime's dispatcher
// (reused while busy, gone after a second idle or at Stop), one goroutine
// per running step (owned by its child actor, stopped with it), one
// catch-up reader per subscription while it catches up (owned by the
// subscription, stopped by Cancel, an overflow or Stop), and one timer per
// active actor. Stop waits for all of them.
//
// Deliberately avoided in this protoactor version: Futures/RequestFuture
// (a late reply races with the timeout, upstream #1145), SetReceiveTimeout
// (its timer mutates the context from another goroutine, #1139), Stop for
// passivation (it drops queued messages: PoisonPill is used, after the
// registry has stopped routing to the actor), SpawnNamed (it runs the
// producer even when the name exists) and bounded mailboxes (they block
// the sender).
package actors
