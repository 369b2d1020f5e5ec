// Package storetest is the conformance suite of the events.Store contract.
// Every store package runs it from its own tests, the way watermill's
// pubsub/tests is run by every Pub/Sub:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) events.Store {
//			return memstore.New()
//		})
//	}
//
// A store that keeps its data across Close and a new open on the same
// directory runs RunDurable instead, which runs everything Run does and adds
// the persistence tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunDurable(t, func(t *testing.T, dir string) events.Store {
//			s, err := pebblestore.Open(dir, …)
//			if err != nil {
//				t.Fatalf("open %s: %v", dir, err)
//			}
//			return s
//		})
//	}
//
// The two entry points are:
//
//	func Run(t *testing.T, open func(t *testing.T) events.Store)
//	func RunDurable(t *testing.T, open func(t *testing.T, dir string) events.Store)
//
// Contract for open:
//   - Run's open returns a new, empty store each time it is called; the
//     suite calls it once per subtest, from the subtest's goroutine, so it
//     may call t.Fatal and t.Cleanup on the t it is given.
//   - RunDurable's open opens the store kept in dir, which the suite creates
//     with t.TempDir(): empty the first time, and the same data again when
//     the suite reopens dir after Close. Only one store is open on a dir at
//     a time.
//   - The suite closes every store it opens (also via t.Cleanup), so Close
//     must be safe to call twice, as events.Store requires anyway. An open
//     func may register its own cleanup too.
//
// Subtests run in parallel (t.Parallel) with each other, each on its own
// store, so open must be safe to call concurrently. Failures name the
// expectation and what the store returned. The suite only uses the public
// events API; it never sleeps: it waits on channels with deadlines.
//
// What it covers, one subtest each (run one with
// -run 'TestConformance/<name>'): the append/read round trip (versions,
// gap-free positions, Time and Data defaults, Meta), copying of inputs,
// expected versions, exactly one winner among racing exact appends,
// racing writers retrying on conflict, concurrent appends to many streams,
// idempotent retries and ErrDuplicateID, ReadStream and ReadAll with
// after/limit, the iterators over several pages, StreamVersion and Head,
// snapshots, the pending index, Follow (catch-up, live under concurrent
// appends, after the head, callback errors, cancellation), calls with a
// cancelled context, malformed input (each sentinel error, nothing
// stored), the MaxEventSize boundary, and Close (a waiting Follow ends
// with ErrClosed, appends racing with Close, every call afterwards), and
// the epoch (well-formed, stable across calls, writes and Close, different
// for two new stores). Under "Durable", RunDurable adds: everything
// survives Close and reopen (events, versions, positions, stream heads,
// snapshots, pending index, event ids), an empty store reopens empty,
// repeated reopens, every append that returned success before Close is
// there after reopen and nothing else, and the epoch is the same after
// every reopen of a directory and different in another directory.
//
// Concurrency contract of the package itself: Run and RunDurable must be
// called from a test goroutine; they hold no state between calls.
package storetest
