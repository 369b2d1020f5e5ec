package storetest

import (
	"testing"

	"github.com/b6368a97/engine/events"
)

// Run runs the conformance suite against stores made by open, which must
// return a new, empty store each time it is called (see the package doc).
// Every subtest opens its own store and runs in parallel with the others.
func Run(t *testing.T, open func(t *testing.T) events.Store) {
	t.Helper()
	run(t, suite{open: open}, contractTests())
}

// RunDurable runs everything Run does, each subtest on a store opened in a
// fresh t.TempDir(), and then the persistence tests under "Durable", which
// Close a store and open it again on the same dir. open opens the store kept
// in dir (see the package doc).
func RunDurable(t *testing.T, open func(t *testing.T, dir string) events.Store) {
	t.Helper()
	fresh := func(t *testing.T) events.Store { return open(t, t.TempDir()) }
	run(t, suite{open: fresh}, contractTests())
	d := durableSuite{open: open}
	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		for _, tc := range durableTests() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, d)
			})
		}
	})
}

// suite hands each subtest a fresh store.
type suite struct {
	open func(t *testing.T) events.Store
}

// store opens a fresh store that is closed when t ends.
func (s suite) store(t *testing.T) events.Store {
	t.Helper()
	st := s.open(t)
	if st == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close at the end of the test: want nil, got %v", err)
		}
	})
	return st
}

type contractTest struct {
	name string
	run  func(t *testing.T, s suite)
}

// contractTests lists the subtests of Run; a function rather than a
// package variable so the package holds no mutable state.
func contractTests() []contractTest {
	return []contractTest{
		{"AppendReadRoundTrip", testAppendReadRoundTrip},
		{"AppendCopiesInput", testAppendCopiesInput},
		{"ExpectedVersion", testExpectedVersion},
		{"ExactlyOneWins", testExactlyOneWins},
		{"RacingWriters", testRacingWriters},
		{"ConcurrentStreams", testConcurrentStreams},
		{"Idempotency", testIdempotency},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"Iterators", testIterators},
		{"StreamVersionAndHead", testStreamVersionAndHead},
		{"Snapshots", testSnapshots},
		{"Pending", testPending},
		{"Streams", testStreams},
		{"FollowCatchUp", testFollowCatchUp},
		{"FollowLive", testFollowLive},
		{"FollowAfterHead", testFollowAfterHead},
		{"FollowFnError", testFollowFnError},
		{"FollowCancel", testFollowCancel},
		{"CancelledContext", testCancelledContext},
		{"BadAppend", testBadAppend},
		{"BadStreamID", testBadStreamID},
		{"MaxEventSize", testMaxEventSize},
		{"Close", testClose},
		{"CloseRacingAppends", testCloseRacingAppends},
		{"Epoch", testEpoch},
	}
}

func run(t *testing.T, s suite, tests []contractTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, s)
		})
	}
}
