// Package hub fans the global event log out to this node's subscribers.
//
// In a cluster every node runs one Hub. Its follower reads the global log
// (events.Store.Follow, every committed event in position order, none
// skipped) and hands each event to the hub entry of its stream: one entry
// per stream that has local subscribers, shared by all of them. A stream
// without a local subscriber costs one map lookup. Subscriptions never go
// to the stream's owner node, so handovers of ownership never touch them.
//
// Hub.Subscribe honours the contract of actors.Runtime.Subscribe
// (actors.SubscribeRequest, actors.Sink, actors.Subscription), so the
// WebSocket transport can use either.
//
// # No gap, no duplicate
//
// A subscription's sink gets the events with version > last, where last
// is From (or, with From nil, the version read at subscription), in
// version order, each once. Every event passes through one place, the
// subscription, which knows last: it hands an event on only when its
// version is last+1, drops one at or below last, and when the next event
// it has is further ahead it first reads the missing range from the store.
//
// The subscription is registered with its stream's entry in holding mode
// (the follower's deliveries for it are kept, not handed on) BEFORE it
// reads the stream's version with StreamVersion. That order is the whole
// argument:
//
//   - The follower only ever dispatches durable events, and it looks the
//     entry up for each event after Follow has handed it over. An event
//     it dispatched before the registration was therefore durable before
//     the StreamVersion read that follows the registration, and is
//     counted in the version V it returns (and can be read from the store).
//   - An event with version > V was not durable at that read, so the
//     follower dispatches it after the registration, and it reaches the
//     hold.
//
// So after reading the store up to V, the held events (and those that
// keep arriving) cover every version above V, in version order (one
// follower, per-stream versions follow positions). The subscription
// hands them over with the dedupe rule above and then switches, under the
// entry's lock (no delivery in flight), to direct delivery: live.
//
// A hold is bounded (Config.HoldLimit); beyond it the subscriber is
// treated as too slow and ends with Overflow. To keep the hold small for
// long catch-ups (100,000 events), a subscription with From first reads
// the stored events up to the version read at Subscribe WITHOUT being
// registered, at the sink's pace (Sink.WaitRoom before each event, pages
// of at most 256), reads the version again and repeats while the last
// round read more than a page (at most a few rounds); only then does it
// register and read the last stretch while holding. A subscription
// without From registers at once: there is nothing to read, and the hold
// only covers the StreamVersion round trip.
//
// # Ending
//
// Live deliveries never block the follower: when Sink.Enqueue refuses, or
// the hold is full, the subscription ends and Sink.Overflow is called
// once, with no hub lock held (so Overflow may call Cancel); the
// subscriber resumes with From. A store error during the catch-up, or a
// WaitRoom error, ends it the same way. When Follow fails (the database
// connection is lost), every registered subscription (live or holding)
// ends with Overflow, the error is logged, and the follower restarts
// after a back-off from the last position it dispatched; subscriptions
// made meanwhile are correct by the argument above. Cancel is idempotent,
// leaves presence, and once it returns nothing more is enqueued.
//
// Stop ends the follower and every subscription WITHOUT calling Overflow,
// like actors.Runtime.Stop: the transport closes its connections itself
// on shutdown. Their members leave presence, so LocalMembers is called
// with the emptied sets; Stop waits for those calls (bounded by its ctx).
//
// # Presence
//
// For streams where Config.HasPresence is true, a subscription with a
// Member joins when it goes live (after its catch-up) and leaves on
// Cancel, Overflow and Stop. The hub keeps per stream the local members
// (counted by name) and the cluster-wide set last given to SetMembers;
// what subscribers see is their union, sorted. Whenever the union
// changes, the live subscribers whose last presence list differs get a
// presence Delivery; a newcomer always gets the current list at once.
// Whenever the local set changes, Config.LocalMembers is called with it
// from a per-stream goroutine, with no hub lock held: calls for one
// stream never overlap and come in order; when the set changes again
// while a call runs, the next call carries the newest set (intermediate
// sets may be skipped, a change undone before it was reported is not
// reported), so the last call always carries the current set.
//
// # Locks
//
// Hub.mu (entries, lifecycle) → entry.mu (subscribers, members) →
// subscription.mu (its state; every Sink.Enqueue runs under it) →
// Hub.rmu (LocalMembers reporters). Sink.Enqueue therefore must not call
// back into the hub; Sink.Overflow and Config.LocalMembers are called
// with no lock held. Sink.WaitRoom runs on a subscription's reader with
// no lock held.
package hub
