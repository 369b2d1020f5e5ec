package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// These tests drive the writer by hand on a store whose goroutines are not
// started: they build a group request by request, commit it (visible in
// Pebble, WAL sync not awaited) and acknowledge it when they choose, so the
// batch semantics and the watermark cap are checked deterministically.

func openStopped(t *testing.T) *Store {
	t.Helper()
	cfg := testConfig(t)
	cfg.MaxPendingSyncs = 4 // the tests seal up to that many rounds before acknowledging
	s, err := open(t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.db.Close(); err != nil {
			t.Errorf("close pebble: %v", err)
		}
	})
	return s
}

func fixedNow() time.Time { return time.Date(2026, 11, 25, 16, 37, 55, 123456789, time.UTC) }

func appendReq(ctx context.Context, stream string, exp events.ExpectedVersion, ids ...string) *request {
	evs := make([]events.Event, len(ids))
	for i, id := range ids {
		evs[i] = events.Event{ID: id, Type: "Tested", Data: []byte(fmt.Sprintf(`{"id":%q}`, id))}
	}
	return newAppendRequest(ctx, stream, exp, evs, fixedNow)
}

// commitGroup adds reqs to one group in order, applies it and seals it
// as a round, without acknowledging it. It returns the requests that add
// refused (to be carried to the next group).
func commitGroup(s *Store, reqs ...*request) (carried []*request) {
	w := s.w
	g := &group{}
	for _, r := range reqs {
		if !w.add(g, r) {
			carried = append(carried, r)
		}
	}
	w.slots <- struct{}{}
	w.seal(g)
	return carried
}

// ackNext acknowledges the oldest sealed round.
func ackNext(t *testing.T, s *Store) {
	t.Helper()
	select {
	case r := <-s.w.rounds:
		if err := s.w.ackRound(r, nil); err != nil {
			t.Fatalf("ack: %v", err)
		}
	default:
		t.Fatal("ack: no sealed round")
	}
}

type wantAppend struct {
	version, position uint64 // first assigned; 0 when an error is expected
	err               error
	duplicate         bool
}

func checkReq(t *testing.T, name string, r *request, want wantAppend) {
	t.Helper()
	select {
	case <-r.done:
	default:
		t.Fatalf("%s: not replied to", name)
	}
	res, err := r.result()
	if want.err != nil {
		if !errors.Is(err, want.err) {
			t.Fatalf("%s: want error %v, got %v (result %+v)", name, want.err, err, res)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: want success, got %v", name, err)
	}
	if res.Duplicate != want.duplicate {
		t.Fatalf("%s: Duplicate = %v, want %v", name, res.Duplicate, want.duplicate)
	}
	for i, e := range res.Events {
		if e.Version != want.version+uint64(i) || e.Position != want.position+uint64(i) || e.Stream != r.stream {
			t.Fatalf("%s: event %d is %s/%d@%d, want %s/%d@%d", name, i, e.Stream, e.Version, e.Position,
				r.stream, want.version+uint64(i), want.position+uint64(i))
		}
	}
}

func TestGroupRequestsSeeEachOther(t *testing.T) {
	s := openStopped(t)
	ctx := t.Context()
	r1 := appendReq(ctx, "room:a", events.NoStream, "a1", "a2")
	r2 := appendReq(ctx, "room:a", events.Exactly(2), "a3") // sees r1
	r3 := appendReq(ctx, "room:a", events.Exactly(1), "a4") // stale: fails alone
	r4 := appendReq(ctx, "room:b", events.NoStream, "a1")   // reuses r1's id: next group
	r5 := appendReq(ctx, "room:b", events.AnyVersion, "b1") // takes the position r3 did not use
	r6 := appendReq(ctx, "room:b", events.NoStream, "b2")   // sees r5
	r7 := appendReq(ctx, "room:a", events.Exactly(1), "a1", "a2")
	carried := commitGroup(s, r1, r2, r3, r4, r5, r6)
	if len(carried) != 1 || carried[0] != r4 {
		t.Fatalf("carried to the next group: %v, want only r4", carried)
	}
	// r7 retries r1 in the next group, with a stale expected version.
	if carried = commitGroup(s, r4, r7); len(carried) != 0 {
		t.Fatalf("second group carried %d requests", len(carried))
	}
	ackNext(t, s)
	ackNext(t, s)

	tests := []struct {
		name string
		r    *request
		want wantAppend
	}{
		{"r1 first append", r1, wantAppend{version: 1, position: 1}},
		{"r2 sees r1", r2, wantAppend{version: 3, position: 3}},
		{"r3 stale", r3, wantAppend{err: events.ErrWrongExpectedVersion}},
		{"r4 id of another stream", r4, wantAppend{err: events.ErrDuplicateID}},
		{"r5 after a failure", r5, wantAppend{version: 1, position: 4}},
		{"r6 sees r5", r6, wantAppend{err: events.ErrWrongExpectedVersion}},
		{"r7 retry of r1", r7, wantAppend{version: 1, position: 1, duplicate: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkReq(t, tc.name, tc.r, tc.want) })
	}
	if cur, _ := events.CurrentVersion(r3.err); cur != 3 {
		t.Errorf("r3: current version %d in the error, want 3 (after r1 and r2)", cur)
	}
	if cur, _ := events.CurrentVersion(r6.err); cur != 1 {
		t.Errorf("r6: current version %d in the error, want 1 (after r5)", cur)
	}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range all {
		got = append(got, fmt.Sprintf("%s/%d@%d:%s", e.Stream, e.Version, e.Position, e.ID))
	}
	want := []string{"room:a/1@1:a1", "room:a/2@2:a2", "room:a/3@3:a3", "room:b/1@4:b1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log = %v, want %v", got, want)
	}
}

func TestGroupSkipsCancelledRequest(t *testing.T) {
	s := openStopped(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	gone := appendReq(ctx, "room:a", events.NoStream, "x1")
	kept := appendReq(t.Context(), "room:a", events.NoStream, "x2")
	commitGroup(s, gone, kept)
	ackNext(t, s)
	checkReq(t, "cancelled", gone, wantAppend{err: context.Canceled})
	checkReq(t, "next", kept, wantAppend{version: 1, position: 1})
}

// TestReadsCappedAtWatermark commits two groups on the same stream and
// acknowledges one at a time: Pebble shows a committed batch before its
// sync, and no read may.
func TestReadsCappedAtWatermark(t *testing.T) {
	s := openStopped(t)
	ctx := t.Context()
	commitGroup(s, appendReq(ctx, "room:a", events.NoStream, "a1", "a2"))
	commitGroup(s, appendReq(ctx, "room:a", events.Exactly(2), "a3"), appendReq(ctx, "room:b", events.NoStream, "b1"))

	// Both groups are visible in Pebble…
	if v, err := durableVersion(s.db, "room:a", math.MaxUint64); err != nil || v != 3 {
		t.Fatalf("Pebble's view of room:a: version %d, %v; want 3 (the test needs committed, unsynced data)", v, err)
	}

	type view struct {
		head, versionA, versionB uint64
		all, streamA             int
	}
	look := func() view {
		t.Helper()
		var v view
		var err error
		if v.head, err = s.Head(ctx); err != nil {
			t.Fatal(err)
		}
		if v.versionA, err = s.StreamVersion(ctx, "room:a"); err != nil {
			t.Fatal(err)
		}
		if v.versionB, err = s.StreamVersion(ctx, "room:b"); err != nil {
			t.Fatal(err)
		}
		all, err := s.ReadAll(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.ReadStream(ctx, "room:a", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.all, v.streamA = len(all), len(a)
		return v
	}
	steps := []struct {
		name string
		ack  bool
		want view
	}{
		{"nothing synced", false, view{}},
		{"first group synced", true, view{head: 2, versionA: 2, all: 2, streamA: 2}},
		{"both synced", true, view{head: 4, versionA: 3, versionB: 1, all: 4, streamA: 3}},
	}
	for _, st := range steps {
		if st.ack {
			ackNext(t, s)
		}
		if got := look(); got != st.want {
			t.Fatalf("%s: reads show %+v, want %+v", st.name, got, st.want)
		}
	}
}

// TestPrecheckWindow covers the writer's trust in the callers' id
// pre-checks: an id written after a pre-check, and a pre-check older than
// the ids the writer still remembers, are both looked up in Pebble.
func TestPrecheckWindow(t *testing.T) {
	s := openStopped(t)
	s.w.recentMax = 2
	ctx := t.Context()

	// The pre-check of late ran before any group: it found nothing.
	late := appendReq(ctx, "room:b", events.NoStream, "x1")
	late.seen = s.w.applied.Load()
	first := appendReq(ctx, "room:a", events.NoStream, "x1")
	commitGroup(s, first)
	commitGroup(s, late)
	ackNext(t, s)
	ackNext(t, s)
	checkReq(t, "first", first, wantAppend{version: 1, position: 1})
	checkReq(t, "id written after the pre-check", late, wantAppend{err: events.ErrDuplicateID})

	// Push x1 out of the remembered ids, then present a stale pre-check
	// that claims x1 is new.
	for i := range 3 {
		commitGroup(s, appendReq(ctx, "room:a", events.AnyVersion, fmt.Sprintf("y%d", i)))
		ackNext(t, s)
	}
	if _, ok := s.w.recent[hashID("x1")]; ok || s.w.recentFloor == 0 {
		t.Fatalf("x1 still remembered (floor %d): the test needs it forgotten", s.w.recentFloor)
	}
	stale := appendReq(ctx, "room:c", events.NoStream, "x1")
	stale.seen = 0
	commitGroup(s, stale)
	ackNext(t, s)
	checkReq(t, "pre-check older than the window", stale, wantAppend{err: events.ErrDuplicateID})

	// A fresh pre-check of a new id is trusted and the append proceeds.
	fresh := appendReq(ctx, "room:c", events.NoStream, "z1")
	if err := s.precheckIDs(fresh); err != nil {
		t.Fatal(err)
	}
	commitGroup(s, fresh)
	ackNext(t, s)
	checkReq(t, "fresh", fresh, wantAppend{version: 1, position: 5})
}
