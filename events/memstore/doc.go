// Package memstore is an events.Store that keeps everything in memory.
//
// It owns nothing on disk: Close discards the data, so it serves tests,
// benchmarks (the "memory" baseline of the actor runtime) and short-lived
// demo processes. It passes the conformance suite in events/storetest.
//
// Concurrency: every method is safe for concurrent use. One RWMutex guards
// the log; appends hold it exclusively for the few map and slice operations
// of a commit and reads share it, so no call starts a goroutine. An event is
// "durable" as soon as its append releases the lock; the Watermark that
// Follow waits on is advanced right after. The store copies every byte slice
// it is given, and callers must not mutate the slices it returns (the
// events.Store contract), which lets reads share stored data without copying.
package memstore
