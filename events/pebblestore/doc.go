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
// gap-free global positions, and commits the lot as one Pebble batch with
// pebble.Sync. It does not wait for that sync: while a batch syncs, the
// next one is built and committed, and an acknowledger goroutine waits for
// the syncs in commit order, advances the durable watermark and replies.
// There is no timer: a lone append is committed at once.
//
// Reads: Pebble makes a committed batch visible before its WAL sync
// returns, so every read is capped at the durable watermark (the last
// position whose batch has synced): ReadAll stops at it, ReadStream stops
// at the first event beyond it, StreamVersion and Head report it. Follow is
// events.Follow on that watermark.
//
// Storage layout is described in codec.go. Open does not scan the log: the
// last position is found with one seek, and a stream's head is loaded with
// one seek the first time the writer touches it.
//
// Concurrency: all Store methods are safe for concurrent use. The Store
// owns two goroutines (writer and acknowledger), started by Open and
// stopped by Close, which first stops accepting calls, then lets every
// in-flight call finish, then ends every Follow with events.ErrClosed and
// closes Pebble. After Close every method returns an error matching
// events.ErrClosed.
package pebblestore
