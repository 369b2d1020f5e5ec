// Package pebblestore is the embedded default events.Store, on Pebble
// (github.com/cockroachdb/pebble/v2). It passes the conformance suite in
// events/storetest, including the close-and-reopen tests, and a SIGKILL
// crash test (crash_test.go).
//
// Writes: appends are written by their callers, in group commits. Under
// one mutex an append is checked against the stream heads the writer
// caches (so appends on the same stream see each other's effects, and a
// failing append leaves the others untouched), given consecutive versions
// and gap-free global positions, and queued. One caller at a time leads:
// it takes every queued append (a caller that found nobody leading first
// yields the processor once, so that the appends of the same burst join
// its batch) into one Pebble batch, applies it with a
// WAL sync request, hands the lead to the caller of the oldest append
// queued meanwhile, and only then waits for its sync, so the next batch is
// applied while this one syncs and Pebble folds the syncs requested
// during one sync into the next. Batches reach the WAL in position order,
// so a batch's sync makes every batch before it durable too: a
// durability tracker advances the watermark to the end of the batch whose
// sync returned first and wakes the callers of every batch it covers.
// There is no writer goroutine and no timer: a lone append is committed
// by its own caller, after one yield that returns at once when nothing
// else is runnable. Snapshots and pending-index updates wait
// until every append assigned before them is durable, then commit one at
// a time. The details are in writer.go.
//
// Crash repair: the tracker only acknowledges a gap-free prefix of the
// log; batches reach the WAL in position order and Pebble replays it in
// order, so a crash leaves no gap. Should the log hold one anyway, Open
// removes the events above it in the last positions of the log
// (repair.go); Config.MaxInFlightEvents bounds how far back that is.
//
// Idempotency: each append's ids are checked on the caller's goroutine,
// against an in-memory filter of every stored id (filled by a background
// scan at Open, and by each append's check) or, when the filter cannot
// rule an id out, against Pebble; under the mutex only the ids assigned
// since are checked (writer.go).
//
// Reads: Pebble makes a committed batch visible before its WAL sync
// returns, so every read is capped at the durable watermark (the last
// position up to which every batch has synced): ReadAll stops at it,
// ReadStream stops at the first event beyond it, StreamVersion and Head
// report it. Follow is events.Follow on that watermark.
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
// owns one goroutine, the id-filter scan, started by Open and stopped by
// Close. Close first stops accepting calls, then lets every in-flight call
// finish, stops the scan, ends every Follow with events.ErrClosed and
// closes Pebble. After Close every method
// returns an error matching events.ErrClosed.
package pebblestore
