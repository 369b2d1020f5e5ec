// Package pebblestore is the embedded default events.Store, on Pebble
// (github.com/cockroachdb/pebble/v2). It passes the conformance suite in
// events/storetest, including the close-and-reopen tests, and a SIGKILL
// crash test (crash_test.go).
//
// Writes: every change (Append, SaveSnapshot, SetPending) goes through one
// writer goroutine owned by the Store. It takes whatever requests are
// queued, validates each against the stream heads it caches (so requests
// on the same stream in one batch see each other's effects, and a failing
// request leaves the others untouched), assigns consecutive versions and
// gap-free global positions, builds the group's batch and hands it to a
// committer goroutine, which applies the batches in order (so the WAL
// holds the log in position order), folding those queued behind one into
// it, and commits each round's last batch with a WAL sync request that it
// does not wait for. An acknowledger
// goroutine waits for the syncs in commit order, advances the durable
// watermark and replies. Pebble's WAL writer syncs back to back, folding
// every request queued during one sync into the next, so the disk never
// idles between syncs while the writer keeps building batches. There is no
// timer: a lone append is committed at once. The details are in writer.go.
//
// Idempotency: each append's ids are checked on the caller's goroutine,
// against an in-memory filter of every stored id (filled by a background
// scan at Open) or, when the filter cannot rule an id out, against
// Pebble; the writer then only checks the ids written since (writer.go).
//
// Reads: Pebble makes a committed batch visible before its WAL sync
// returns, so every read is capped at the durable watermark (the last
// position whose batch has synced): ReadAll stops at it, ReadStream stops
// at the first event beyond it, StreamVersion and Head report it. Follow is
// events.Follow on that watermark.
//
// Storage layout is described in codec.go: each event's bytes are stored
// once, under its global position; a stream key holds the position. Open
// does not scan the log: the last position is found with one seek, a
// stream's head is loaded with one seek the first time the writer touches
// it, and the id filter is filled in the background after Open returns. A
// store written in format 1 (a full copy of each event under its stream
// key as well) is rewritten to format 2 by Open, in place, before it
// returns (upgrade.go); a build that reads only format 1 refuses the store
// from the moment the upgrade starts.
//
// Concurrency: all Store methods are safe for concurrent use. The Store
// owns four goroutines, started by Open and stopped by Close: the writer,
// the committer, the acknowledger and the id-filter scan. Close first stops accepting
// calls, then lets every in-flight call finish, stops the scan, ends every
// Follow with events.ErrClosed and closes Pebble. After Close every method
// returns an error matching events.ErrClosed.
package pebblestore
