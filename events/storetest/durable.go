package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// durableSuite opens stores on a directory, again and again.
type durableSuite struct {
	open func(t *testing.T, dir string) events.Store
}

// openAt opens the store kept in dir; it is closed when t ends unless the
// test closes it first.
func (d durableSuite) openAt(t *testing.T, dir string) events.Store {
	t.Helper()
	st := d.open(t, dir)
	if st == nil {
		t.Fatalf("open(%s) returned a nil store", dir)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close at the end of the test: want nil, got %v", err)
		}
	})
	return st
}

func (d durableSuite) reopen(t *testing.T, st events.Store, dir string) events.Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("Close before reopening: %v", err)
	}
	return d.openAt(t, dir)
}

type durableTest struct {
	name string
	run  func(t *testing.T, d durableSuite)
}

func durableTests() []durableTest {
	return []durableTest{
		{"ReopenKeepsEverything", testReopenKeepsEverything},
		{"ReopenEmpty", testReopenEmpty},
		{"ReopenRepeatedly", testReopenRepeatedly},
		{"CloseKeepsCompletedAppends", testCloseKeepsCompletedAppends},
		{"ReopenKeepsEpoch", testReopenKeepsEpoch},
		{"ReopenListsStreams", testReopenListsStreams},
	}
}

func testReopenKeepsEverything(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	ctx := t.Context()
	st := d.openAt(t, dir)
	given := time.Date(2023, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	first := mustAppend(t, st, "room:a", events.NoStream, []events.Event{
		{ID: "a-1", Type: "Created", Time: given, Meta: events.Meta{Correlation: "c1", Causation: "k1"}},
		{ID: "a-2", Type: "Posted", Data: []byte(`{"text":"héllo \u2603","n":[1,2,3]}`)},
		{ID: "a-3", Type: "Posted", Data: []byte(`{}`)},
	})
	mustAppend(t, st, "order:b", events.NoStream, batch("b", 2))
	mustAppend(t, st, "room:a", events.Exactly(3), batch("a4", 1))
	if err := st.SaveSnapshot(ctx, events.Snapshot{Stream: "room:a", Version: 3, Data: []byte("state@3")}); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	for _, p := range []struct {
		stream string
		on     bool
	}{{"room:a", true}, {"order:b", true}, {"user:c", true}, {"user:c", false}} {
		if err := st.SetPending(ctx, p.stream, p.on); err != nil {
			t.Fatalf("SetPending(%s, %v): %v", p.stream, p.on, err)
		}
	}
	all := readAll(t, st)

	st = d.reopen(t, st, dir)
	checkReopened(t, st, all, first.Events)
	checkHeadsContinue(t, st)
	checkIDsRemembered(t, st, first.Events)
	// An older snapshot is still ignored.
	if err := st.SaveSnapshot(ctx, events.Snapshot{Stream: "room:a", Version: 2, Data: []byte("state@2")}); err != nil {
		t.Fatalf("SaveSnapshot of an older version: %v", err)
	}
	if snap, err := st.LoadSnapshot(ctx, "room:a"); err != nil || snap.Version != 3 {
		t.Fatalf("LoadSnapshot after saving an older one: want version 3, got %d, %v", snap.Version, err)
	}

	// Follow on the reopened store: catch-up over the old and new events,
	// then a live one.
	f := newFollower(0, 10)
	f.mark = 9
	done := goFollow(ctx, st, 0, f.fn)
	signal(t, "Follow to catch up after reopen", f.reached)
	live := mustAppend(t, st, "room:n", events.Exactly(2), batch("n3", 1))
	if err := await(t, "Follow after reopen", done); !errors.Is(err, errStop) {
		t.Fatalf("Follow after reopen: want positions 1..10 and the callback's error, got %v (delivered up to %d)", err, f.last)
	}
	checkEvents(t, "Follow after reopen", f.got, readAll(t, st))
	if last := f.got[len(f.got)-1]; last.ID != live.Events[0].ID {
		t.Fatalf("Follow after reopen: want the live event %s last, got %s", live.Events[0].ID, last.ID)
	}

	// And once more, with everything written since.
	all = readAll(t, st)
	st = d.reopen(t, st, dir)
	checkEvents(t, "ReadAll after the second reopen", readAll(t, st), all)
	if v := streamVersion(t, st, "room:n"); v != 3 {
		t.Fatalf("StreamVersion(room:n) after the second reopen: want 3, got %d", v)
	}
}

// checkReopened: everything written before the reopen is there.
func checkReopened(t *testing.T, st events.Store, all, first []events.Event) {
	ctx := t.Context()
	checkEvents(t, "ReadAll after reopen", readAll(t, st), all)
	checkEvents(t, "ReadStream(room:a) after reopen", readStream(t, st, "room:a")[:3], first)
	if h := head(t, st); h != 6 {
		t.Fatalf("Head after reopen: want 6, got %d", h)
	}
	for stream, want := range map[string]uint64{"room:a": 4, "order:b": 2, "user:c": 0} {
		if v := streamVersion(t, st, stream); v != want {
			t.Fatalf("StreamVersion(%s) after reopen: want %d, got %d", stream, want, v)
		}
	}
	snap, err := st.LoadSnapshot(ctx, "room:a")
	if err != nil || snap.Version != 3 || string(snap.Data) != "state@3" {
		t.Fatalf("LoadSnapshot(room:a) after reopen: want version 3 %q, got version %d %q, %v", "state@3", snap.Version, snap.Data, err)
	}
	if _, err := st.LoadSnapshot(ctx, "order:b"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("LoadSnapshot(order:b) after reopen: want ErrNotFound, got %v", err)
	}
	if got, want := pending(t, st), []string{"order:b", "room:a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Pending after reopen: want %v, got %v", want, got)
	}

}

// checkHeadsContinue: positions and versions go on where they were.
func checkHeadsContinue(t *testing.T, st events.Store) {
	ctx := t.Context()
	next := mustAppend(t, st, "room:a", events.Exactly(4), batch("a5", 1))
	if next.Version() != 5 || next.Position() != 7 {
		t.Fatalf("first append after reopen: want version 5 position 7, got %d and %d", next.Version(), next.Position())
	}
	fresh := mustAppend(t, st, "room:n", events.NoStream, batch("n", 2))
	checkPositions(t, "append to a new stream after reopen", fresh.Events, []uint64{8, 9})
	if _, err := st.Append(ctx, "order:b", events.NoStream, batch("b2", 1)); !errors.Is(err, events.ErrWrongExpectedVersion) {
		t.Fatalf("NoStream on order:b after reopen: want ErrWrongExpectedVersion, got %v", err)
	} else if cur, _ := events.CurrentVersion(err); cur != 2 {
		t.Fatalf("NoStream on order:b after reopen: want current version 2, got %d", cur)
	}

}

// checkIDsRemembered: event ids stored before the reopen still make a
// retry a duplicate and a reuse an error.
func checkIDsRemembered(t *testing.T, st events.Store, first []events.Event) {
	ctx := t.Context()
	retry, err := st.Append(ctx, "room:a", events.NoStream, []events.Event{
		{ID: "a-1", Type: "Created"}, {ID: "a-2", Type: "Posted"}, {ID: "a-3", Type: "Posted"},
	})
	if err != nil || !retry.Duplicate {
		t.Fatalf("retry of the first batch after reopen: want Duplicate, got %+v, %v", retry.Duplicate, err)
	}
	checkEvents(t, "retry of the first batch after reopen", retry.Events, first)
	before := capture(t, st)
	if _, err := st.Append(ctx, "room:a", events.AnyVersion, []events.Event{ev("a-1", "Created", ""), ev("a-new", "Posted", "")}); !errors.Is(err, events.ErrDuplicateID) {
		t.Fatalf("partial retry after reopen: want ErrDuplicateID, got %v", err)
	}
	if _, err := st.Append(ctx, "order:b", events.AnyVersion, []events.Event{ev("a-2", "Posted", "")}); !errors.Is(err, events.ErrDuplicateID) {
		t.Fatalf("id of room:a appended to order:b after reopen: want ErrDuplicateID, got %v", err)
	}
	checkUnchanged(t, "rejected retries after reopen", st, before)

}

func testReopenEmpty(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	st := d.openAt(t, dir)
	st = d.reopen(t, st, dir)
	if h := head(t, st); h != 0 {
		t.Fatalf("Head of a reopened empty store: want 0, got %d", h)
	}
	if p := pending(t, st); len(p) != 0 {
		t.Fatalf("Pending of a reopened empty store: want none, got %v", p)
	}
	res := mustAppend(t, st, "room:a", events.NoStream, batch("a", 1))
	if res.Position() != 1 || res.Version() != 1 {
		t.Fatalf("first append to a reopened empty store: want version 1 position 1, got %d and %d", res.Version(), res.Position())
	}
}

func testReopenRepeatedly(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	const rounds = 4
	var want []events.Event
	for r := range rounds {
		st := d.openAt(t, dir)
		checkEvents(t, fmt.Sprintf("ReadAll after open %d", r+1), readAll(t, st), want)
		res := mustAppend(t, st, "room:r", events.Exactly(uint64(2*r)), batch(fmt.Sprintf("r%d", r), 2))
		checkPositions(t, fmt.Sprintf("append after open %d", r+1), res.Events, []uint64{uint64(2*r + 1), uint64(2*r + 2)})
		want = append(want, res.Events...)
		if err := st.Close(); err != nil {
			t.Fatalf("Close %d: %v", r+1, err)
		}
	}
}

// testCloseKeepsCompletedAppends races appends with Close: every append
// that returned success must be there after reopen, and nothing else.
func testCloseKeepsCompletedAppends(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	st := d.openAt(t, dir)
	var mu sync.Mutex
	var committed []events.Event
	done := raceAppends(t, st, 3, func(i, j int) (string, []events.Event) {
		return fmt.Sprintf("room:c%d", i), batch(fmt.Sprintf("c%d-%d", i, j), 2)
	}, func(res events.AppendResult) {
		mu.Lock()
		committed = append(committed, res.Events...)
		mu.Unlock()
	})
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	signal(t, "appenders to see ErrClosed", done)
	if t.Failed() {
		return
	}

	st = d.openAt(t, dir)
	all := readAll(t, st)
	checkPositions(t, "ReadAll after reopen", all, seq(1, uint64(len(committed))))
	byPos := make(map[uint64]events.Event, len(committed))
	for _, e := range committed {
		byPos[e.Position] = e
	}
	for _, e := range all {
		want, ok := byPos[e.Position]
		if !ok {
			t.Fatalf("position %d (%s) is stored but no append reported it", e.Position, e.ID)
		}
		if diff := diffEvent(e, want); diff != "" {
			t.Fatalf("position %d after reopen differs from what Append returned: %s", e.Position, diff)
		}
	}
}
