// Package events owns the event log: the Event envelope that every layer
// shares, the Store contract that every storage backend implements, the
// errors the contract promises, stream-id validation and the JSON Lines codec.
//
// It imports the standard library only. Stores live in sub-packages
// (events/memstore, events/pebblestore, …) and all of them pass the
// conformance suite in events/storetest.
//
// Concurrency: every Store method is safe for concurrent use. Values of Event
// are plain data; a Store never retains or mutates a slice it was given after
// the call returns, and callers must not mutate slices a Store returns.
package events
