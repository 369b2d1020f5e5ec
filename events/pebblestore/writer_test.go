package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/b6368a97/engine/events"
)

// Most of these tests drive the writer by hand. The test holds the leader
// role (w.leaders = 1), so assign queues appends without handing
// out batches; the test then writes batches to Pebble (build + Apply) and
// completes them in the tracker in the order it chooses. Waits are on
// conditions (a call returned, a caller waits for the watermark), never on
// time; guard only turns a hang into a failure.

const guard = time.Minute

// openManual opens a store without the id-filter scan and takes the
// leader role, so that assign hands no batch to anyone.
func openManual(t *testing.T, dir string, cfg Config) *Store {
	t.Helper()
	s, err := open(dir, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	s.w.mu.Lock()
	s.w.leaders = 1
	s.w.mu.Unlock()
	return s
}

// manualStore is openManual on a new directory, closed at cleanup.
func manualStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s := openManual(t, t.TempDir(), cfg)
	t.Cleanup(func() { closeUnlessFailed(t, s) })
	return s
}

// closeUnlessFailed closes s, unless the test failed: a caller may then be
// stuck in the store, and Close would wait for it forever, hiding the
// failure behind the test binary's timeout.
func closeUnlessFailed(t *testing.T, s *Store) {
	t.Helper()
	if t.Failed() {
		return
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func fixedNow() time.Time { return time.Date(2026, 11, 25, 16, 37, 55, 123456789, time.UTC) }

func appendReq(ctx context.Context, stream string, exp events.ExpectedVersion, ids ...string) *request {
	evs := make([]events.Event, len(ids))
	for i, id := range ids {
		evs[i] = events.Event{ID: id, Type: "Tested", Data: []byte(fmt.Sprintf(`{"id":%q}`, id))}
	}
	return newAppendRequest(ctx, stream, exp, evs, fixedNow)
}

// mustAssign assigns r, which must be admitted at once.
func mustAssign(t *testing.T, s *Store, r *request) {
	t.Helper()
	batch, ok := s.w.assign(r, nil)
	if batch != nil {
		t.Fatalf("assign %s: handed out a batch though the test leads", r.stream)
	}
	if !ok {
		t.Fatalf("assign %s: refused: %v (duplicate %v)", r.stream, r.err, r.duplicate != nil)
	}
}

// commit writes reqs to Pebble as one synced batch, as a leader does; the
// tracker is not told.
func commit(t *testing.T, s *Store, reqs ...*request) {
	t.Helper()
	b, err := s.w.build(reqs)
	if b != nil {
		defer b.Close()
	}
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// commitDone commits reqs and completes them, led by a caller with no
// append of its own in the batch.
func commitDone(t *testing.T, s *Store, reqs ...*request) {
	t.Helper()
	commit(t, s, reqs...)
	s.w.t.complete(reqs, nil, nil)
}

// async runs a call on its own goroutine.
type async[T any] struct {
	done chan struct{}
	val  T
}

func start[T any](f func() T) *async[T] {
	a := &async[T]{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.val = f()
	}()
	return a
}

func (a *async[T]) finished() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *async[T]) result(t *testing.T, what string) T {
	t.Helper()
	select {
	case <-a.done:
		return a.val
	case <-time.After(guard):
		t.Fatalf("%s: no return after %v", what, guard)
		panic("unreachable")
	}
}

// startAssign runs assign on its own goroutine; the value is assign's ok.
func startAssign(s *Store, r *request) *async[bool] {
	return start(func() bool {
		batch, ok := s.w.assign(r, nil)
		if batch != nil {
			panic("assign handed out a batch though the test leads")
		}
		return ok
	})
}

// waitsForWatermark reports, as soon as it can tell, whether a's call is
// blocked waiting for the durable watermark (true) or returned (false).
// Only one call at a time may wait in the tests that use it. complete
// drops the tracker's wait channel when it moves the watermark, so a
// channel seen after a complete returned was made by a caller that
// checked the new watermark and went back to waiting.
func waitsForWatermark[T any](t *testing.T, s *Store, a *async[T]) bool {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		if a.finished() {
			return false
		}
		s.w.t.mu.Lock()
		waiting := s.w.t.moved != nil
		s.w.t.mu.Unlock()
		if waiting {
			return true
		}
		if time.Now().After(deadline) {
			t.Fatalf("call neither returned nor waits for the watermark after %v", guard)
		}
		runtime.Gosched()
	}
}

// signalOf returns the signal waiting on r.done, if any.
func signalOf(r *request) (signal, bool) {
	select {
	case sig := <-r.done:
		return sig, true
	default:
		return 0, false
	}
}

func wantSettled(t *testing.T, name string, r *request) {
	t.Helper()
	if sig, ok := signalOf(r); !ok || sig != sigSettled {
		t.Fatalf("%s: signal %v (sent %v), want sigSettled", name, sig, ok)
	}
}

func wantNoSignal(t *testing.T, name string, r *request) {
	t.Helper()
	if sig, ok := signalOf(r); ok {
		t.Fatalf("%s: got signal %v, want none yet", name, sig)
	}
}

type wantAppend struct {
	version, position uint64 // first assigned
	err               error  // expected error, or nil
	duplicate         bool
}

func checkResult(t *testing.T, name string, r *request, want wantAppend) {
	t.Helper()
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
	if len(res.Events) != len(r.evs) {
		t.Fatalf("%s: %d events, want %d", name, len(res.Events), len(r.evs))
	}
	for i, e := range res.Events {
		if e.Version != want.version+uint64(i) || e.Position != want.position+uint64(i) || e.Stream != r.stream || e.ID != r.evs[i].ID {
			t.Fatalf("%s: event %d is %s/%d@%d %s, want %s/%d@%d %s", name, i, e.Stream, e.Version, e.Position, e.ID,
				r.stream, want.version+uint64(i), want.position+uint64(i), r.evs[i].ID)
		}
		wantTime := fixedNow().Truncate(time.Millisecond)
		if wantData := fmt.Sprintf(`{"id":%q}`, e.ID); string(e.Data) != wantData || !e.Time.Equal(wantTime) {
			t.Fatalf("%s: event %d has data %s, time %v; want %s, %v", name, i, e.Data, e.Time, wantData, wantTime)
		}
	}
}

// logOf renders the readable log as stream/version@position:id.
func logOf(t *testing.T, s *Store) []string {
	t.Helper()
	all, err := s.ReadAll(t.Context(), 0, 0)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	out := []string{}
	for _, e := range all {
		out = append(out, fmt.Sprintf("%s/%d@%d:%s", e.Stream, e.Version, e.Position, e.ID))
	}
	return out
}

func wantLog(t *testing.T, s *Store, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := logOf(t, s); !slices.Equal(got, want) {
		t.Fatalf("log = %v, want %v", got, want)
	}
}

// pebbleVersion is the stream's last version in Pebble, uncapped: what
// the writer loads as the stream's head.
func pebbleVersion(t *testing.T, db *pebble.DB, stream string) uint64 {
	t.Helper()
	v, err := durableVersion(db, stream, math.MaxUint64)
	if err != nil {
		t.Fatalf("durableVersion(%s): %v", stream, err)
	}
	return v
}

// TestAssignedRequestsSeeEachOther: appends assigned while earlier ones
// are in flight see them (versions, expected versions, ids), and replies
// that report what is in flight wait until it is durable.
func TestAssignedRequestsSeeEachOther(t *testing.T) {
	s := manualStore(t, testConfig(t))
	ctx := t.Context()
	r1 := appendReq(ctx, "room:a", events.NoStream, "a1", "a2")
	r2 := appendReq(ctx, "room:a", events.Exactly(2), "a3")       // sees r1
	r3 := appendReq(ctx, "room:a", events.Exactly(1), "a4")       // stale
	r4 := appendReq(ctx, "room:b", events.NoStream, "a1")         // reuses r1's id
	r5 := appendReq(ctx, "room:b", events.AnyVersion, "b1")       // while r4 waits
	r6 := appendReq(ctx, "room:b", events.NoStream, "b2")         // sees r5
	r7 := appendReq(ctx, "room:a", events.Exactly(1), "a1", "a2") // retries r1

	mustAssign(t, s, r1)
	mustAssign(t, s, r2)
	if _, ok := s.w.assign(r3, nil); ok {
		t.Fatal("r3 assigned despite a stale expected version")
	}
	if r3.after != 3 {
		t.Fatalf("r3: reply waits for position %d, want 3 (r2's)", r3.after)
	}

	// r4's id is r1's, in flight: assign waits until r1 and r2 are durable
	// (r4's pre-check, at durable 0, could not see them), without holding
	// the writer: r5 is assigned meanwhile.
	a4 := startAssign(s, r4)
	if !waitsForWatermark(t, s, a4) {
		t.Fatalf("r4 settled (%v) while the append holding its id is in flight", r4.err)
	}
	a5 := startAssign(s, r5)
	if !a5.result(t, "assign r5 while r4 waits") {
		t.Fatalf("r5 refused: %v", r5.err)
	}
	commitDone(t, s, r1)
	wantSettled(t, "r1", r1)
	if !waitsForWatermark(t, s, a4) {
		t.Fatalf("r4 settled (%v) before r2 was durable", r4.err)
	}
	commitDone(t, s, r2)
	wantSettled(t, "r2", r2)
	if a4.result(t, "assign r4") {
		t.Fatal("r4 assigned though its id is stored on room:a")
	}

	if _, ok := s.w.assign(r6, nil); ok {
		t.Fatal("r6 assigned with NoStream on a stream r5 created")
	}
	// r7 retries r1 (with a stale expected version): it waits for r5,
	// then gets r1's events.
	a7 := startAssign(s, r7)
	if !waitsForWatermark(t, s, a7) {
		t.Fatalf("r7 settled (%v) while r5 is in flight", r7.err)
	}
	commitDone(t, s, r5)
	wantSettled(t, "r5", r5)
	if a7.result(t, "assign r7") {
		t.Fatal("r7 assigned: a retry wrote its events again")
	}

	tests := []struct {
		name string
		r    *request
		want wantAppend
	}{
		{"r1 first append", r1, wantAppend{version: 1, position: 1}},
		{"r2 sees r1", r2, wantAppend{version: 3, position: 3}},
		{"r3 stale", r3, wantAppend{err: events.ErrWrongExpectedVersion}},
		{"r4 id of another stream", r4, wantAppend{err: events.ErrDuplicateID}},
		{"r5 assigned while r4 waited", r5, wantAppend{version: 1, position: 4}},
		{"r6 sees r5", r6, wantAppend{err: events.ErrWrongExpectedVersion}},
		{"r7 retry of r1", r7, wantAppend{version: 1, position: 1, duplicate: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkResult(t, tc.name, tc.r, tc.want) })
	}
	for _, c := range []struct {
		name string
		r    *request
		cur  uint64
	}{{"r3", r3, 3}, {"r6", r6, 1}} {
		if cur, ok := events.CurrentVersion(c.r.err); !ok || cur != c.cur {
			t.Errorf("%s: current version %d (%v) in %v, want %d", c.name, cur, ok, c.r.err, c.cur)
		}
	}
	if s.w.lastPos != 4 {
		t.Errorf("last assigned position %d, want 4: a refused append used positions", s.w.lastPos)
	}
	wantLog(t, s, "room:a/1@1:a1", "room:a/2@2:a2", "room:a/3@3:a3", "room:b/1@4:b1")
}

// TestAssignSkipsCancelledRequest: an append whose caller gave up before
// assign has no effect (no position, no version, no remembered id).
func TestAssignSkipsCancelledRequest(t *testing.T) {
	s := manualStore(t, testConfig(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	gone := appendReq(ctx, "room:a", events.NoStream, "x1")
	kept := appendReq(t.Context(), "room:a", events.NoStream, "x2")
	if _, ok := s.w.assign(gone, nil); ok {
		t.Fatal("a cancelled append was assigned")
	}
	if !errors.Is(gone.err, context.Canceled) || gone.position != 0 {
		t.Fatalf("cancelled append: err %v, position %d; want context.Canceled, 0", gone.err, gone.position)
	}
	if s.w.assignedSince(0, gone.hashes) {
		t.Fatal("the cancelled append's id is remembered as assigned")
	}
	mustAssign(t, s, kept)
	commitDone(t, s, kept)
	wantSettled(t, "kept", kept)
	checkResult(t, "kept", kept, wantAppend{version: 1, position: 1})
	wantLog(t, s, "room:a/1@1:x2")
}

// storeView is what the public reads show.
type storeView struct {
	head, versionA, versionB uint64
	all, streamA, streams    int
}

func lookAt(t *testing.T, s *Store) storeView {
	t.Helper()
	ctx := t.Context()
	var v storeView
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
	streams, err := s.Streams(ctx, "room", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.all, v.streamA, v.streams = len(all), len(a), len(streams)
	return v
}

// TestCompletionCoversEarlierBatches writes two batches to Pebble in
// position order, as leaders do, and completes the later one first (its
// leader woke first): its sync covers the earlier batch, so every caller
// of both is settled at once and reads show both; the earlier leader's
// completion then finds its own append settled and signals no one again.
// Before anything completes, Pebble holds both batches and no read shows
// them.
func TestCompletionCoversEarlierBatches(t *testing.T) {
	s := manualStore(t, testConfig(t))
	ctx := t.Context()
	r1 := appendReq(ctx, "room:a", events.NoStream, "a1", "a2")
	r2a := appendReq(ctx, "room:a", events.Exactly(2), "a3")
	r2b := appendReq(ctx, "room:b", events.NoStream, "b1")
	r3 := appendReq(ctx, "room:b", events.Exactly(1), "b2")
	for _, r := range []*request{r1, r2a, r2b, r3} {
		mustAssign(t, s, r)
	}
	waiter := start(func() error { return s.w.t.wait(ctx, 4) })
	if !waitsForWatermark(t, s, waiter) {
		t.Fatalf("wait for position 4 returned %v with nothing durable", waiter.val)
	}
	first, second := []*request{r1}, []*request{r2a, r2b}
	commit(t, s, first...)
	commit(t, s, second...)
	if v := pebbleVersion(t, s.db, "room:a"); v != 3 {
		t.Fatalf("Pebble holds room:a at version %d, want 3 (the test needs both batches written)", v)
	}
	if got := lookAt(t, s); got != (storeView{}) {
		t.Fatalf("before any completion reads show %+v, want nothing", got)
	}

	// The second batch's leader (r2a's caller) completes first.
	if !s.w.t.complete(second, nil, r2a) {
		t.Fatal("second batch: complete does not report its leader's append settled")
	}
	want := storeView{head: 4, versionA: 3, versionB: 1, all: 4, streamA: 3, streams: 2}
	if got := lookAt(t, s); got != want {
		t.Fatalf("after the second batch: reads show %+v, want %+v", got, want)
	}
	if d := s.w.t.durable.Load(); d != 4 {
		t.Fatalf("after the second batch: durable %d, want 4", d)
	}
	wantSettled(t, "r1 (earlier batch, covered)", r1)
	wantSettled(t, "r2b", r2b)
	wantNoSignal(t, "r2a (the completing leader's own)", r2a)
	wantNoSignal(t, "r3 (not written)", r3)
	if err := waiter.result(t, "wait for position 4"); err != nil {
		t.Fatalf("wait for position 4: %v", err)
	}

	// The first batch's leader wakes later: nothing left to settle.
	if !s.w.t.complete(first, nil, r1) {
		t.Fatal("first batch: complete does not report its leader's append settled")
	}
	for _, r := range []*request{r1, r2a, r2b, r3} {
		wantNoSignal(t, "after the first batch: "+r.evs[0].ID, r)
	}
	if d := s.w.t.durable.Load(); d != 4 {
		t.Fatalf("after the first batch: durable %d, want 4", d)
	}

	commitDone(t, s, r3)
	wantSettled(t, "r3", r3)
	checkResult(t, "r1", r1, wantAppend{version: 1, position: 1})
	checkResult(t, "r2a", r2a, wantAppend{version: 3, position: 3})
	checkResult(t, "r2b", r2b, wantAppend{version: 1, position: 4})
	checkResult(t, "r3", r3, wantAppend{version: 2, position: 5})
	checkLog(t, s)
}

// TestCoveredAppendKeepsItsResult settles an earlier batch through a
// later batch's sync, then fails the store before the earlier batch's own
// leader completes it: the append stays acknowledged as written (its
// caller may already be reading the result), and the late completion
// reports it settled.
func TestCoveredAppendKeepsItsResult(t *testing.T) {
	s := manualStore(t, testConfig(t))
	ctx := t.Context()
	r1 := appendReq(ctx, "room:a", events.NoStream, "a1")
	r2 := appendReq(ctx, "room:b", events.NoStream, "b1")
	mustAssign(t, s, r1)
	mustAssign(t, s, r2)
	commit(t, s, r1)
	commit(t, s, r2)
	if !s.w.t.complete([]*request{r2}, nil, r2) {
		t.Fatal("second batch: complete does not report its leader's append settled")
	}
	wantSettled(t, "r1 (covered)", r1)
	boom := errors.New("boom")
	s.w.t.fail(boom)
	if !s.w.t.complete([]*request{r1}, nil, r1) {
		t.Fatal("first batch after the failure: complete does not report its covered append settled")
	}
	checkResult(t, "r1", r1, wantAppend{version: 1, position: 1})
	checkResult(t, "r2", r2, wantAppend{version: 1, position: 2})
	if _, err := s.Append(ctx, "room:c", events.NoStream, testEvents("later", 1)); !errors.Is(err, boom) {
		t.Fatalf("append after the failure: %v, want %v", err, boom)
	}
}

// TestPebblePanicFailsStore makes Pebble panic while it commits a
// leader's batch (as its Fatalf does when a WAL write fails), with another
// append queued behind it. The leader turns the panic into the store's
// failure and passes the lead on: both callers get the error (none hangs,
// as they did while a panic left the lead held), neither append is in
// Pebble, the store refuses what follows, and Close returns.
func TestPebblePanicFailsStore(t *testing.T) {
	s, err := Open(t.TempDir(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	applying := make(chan struct{})
	s.w.apply = func(b *pebble.Batch) error {
		calls++
		if calls > 1 {
			return s.w.applyNoSyncWait(b)
		}
		// The first batch: wait until the second append is queued, then
		// fail as Pebble does when its WAL write fails (Fatalf panics).
		close(applying)
		deadline := time.Now().Add(guard)
		for {
			s.w.mu.Lock()
			queued := len(s.w.pending)
			s.w.mu.Unlock()
			if queued > 0 {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("the second append never queued")
			}
			runtime.Gosched()
		}
		return s.w.applyNoSyncWait(nil) // a nil batch panics in Pebble
	}
	ctx := t.Context()
	first := startAppend(ctx, s, "room:a", events.NoStream, "f1")
	select { // the first caller leads, past gathering: the second queues
	case <-applying:
	case <-time.After(guard):
		t.Fatal("the first append's batch was never applied")
	}
	second := startAppend(ctx, s, "room:b", events.NoStream, "s1")
	for name, c := range map[string]*async[reply]{"first (its commit panicked)": first, "second (queued behind it)": second} {
		if r := c.result(t, name); !errors.Is(r.err, errPebblePanic) {
			t.Fatalf("%s: %+v, %v; want an error wrapping %v", name, r.res, r.err, errPebblePanic)
		}
	}
	for _, stream := range []string{"room:a", "room:b"} {
		if v := pebbleVersion(t, s.db, stream); v != 0 {
			t.Fatalf("Pebble holds %s at version %d, want nothing written", stream, v)
		}
	}
	if _, err := s.Append(ctx, "room:c", events.NoStream, testEvents("later", 1)); !errors.Is(err, errPebblePanic) {
		t.Fatalf("append after the failure: %v, want %v", err, errPebblePanic)
	}
	s.w.mu.Lock()
	leaders, pending := s.w.leaders, len(s.w.pending)
	s.w.mu.Unlock()
	if leaders != 0 || pending != 0 {
		t.Fatalf("after the failure: %d leaders, %d pending; want none", leaders, pending)
	}
	closed := start(func() error { return s.Close() })
	if err := closed.result(t, "close"); err != nil && !errors.Is(err, errPebblePanic) {
		t.Fatalf("close after the failure: %v", err)
	}
}

// pollUntil calls check until it reports done, failing the test with the
// failure check reports, or when guard passes first.
func pollUntil(t *testing.T, what string, check func() (done bool, failure string)) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		done, failure := check()
		if done {
			return
		}
		if failure != "" {
			t.Fatal(failure)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, guard)
		}
		runtime.Gosched()
	}
}

// TestRepairTail crashes a store with some of its assigned appends in
// Pebble and some not, and checks that Open removes everything above the
// first gap, with its stream and id entries, and nothing else.
func TestRepairTail(t *testing.T) {
	tests := []struct {
		name      string
		committed string // which of A (room:a, 2 events), B (room:b), C (room:a, 2 events) reach Pebble, in that order
		log       []string
		versionA  uint64
		versionB  uint64
		removed   int // events repair reports removed; 0: no repair
		reuseC    error
	}{
		{"middle missing", "CA", []string{"room:a/1@1:a1", "room:a/2@2:a2"}, 2, 0, 2, nil},
		{"first missing", "CB", nil, 0, 0, 3, nil},
		{"last missing", "BA", []string{"room:a/1@1:a1", "room:a/2@2:a2", "room:b/1@3:b1"}, 2, 1, 0, nil},
		{"none missing", "CAB", []string{"room:a/1@1:a1", "room:a/2@2:a2", "room:b/1@3:b1", "room:a/3@4:c1", "room:a/4@5:c2"}, 4, 1, 0, events.ErrDuplicateID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dir := t.TempDir()
			s := openManual(t, dir, testConfig(t))
			reqs := map[byte]*request{
				'A': appendReq(ctx, "room:a", events.NoStream, "a1", "a2"),
				'B': appendReq(ctx, "room:b", events.NoStream, "b1"),
				'C': appendReq(ctx, "room:a", events.Exactly(2), "c1", "c2"),
			}
			for _, k := range []byte("ABC") {
				mustAssign(t, s, reqs[k])
			}
			for _, k := range []byte(tc.committed) {
				commit(t, s, reqs[k])
			}
			// Crash: Pebble closes with whatever the WAL holds; nothing
			// was completed, so nothing was acknowledged.
			if err := s.db.Close(); err != nil {
				t.Fatalf("close pebble: %v", err)
			}

			logs := &lockedBuffer{}
			cfg := testConfig(t)
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			s = mustOpen(t, dir, cfg)
			wantLog(t, s, tc.log...)
			checkLog(t, s)
			report := fmt.Sprintf("removed=%d", tc.removed)
			if got := logs.String(); (tc.removed > 0) != strings.Contains(got, "removed unacknowledged events") ||
				tc.removed > 0 && !strings.Contains(got, report) {
				t.Fatalf("Open logged %q; want a repair report with %s: %v", got, report, tc.removed > 0)
			}
			for stream, want := range map[string]uint64{"room:a": tc.versionA, "room:b": tc.versionB} {
				if v, err := s.StreamVersion(ctx, stream); err != nil || v != want {
					t.Fatalf("StreamVersion(%s) = %d, %v; want %d", stream, v, err, want)
				}
				if v := pebbleVersion(t, s.db, stream); v != want {
					t.Fatalf("Pebble holds %s at version %d, want %d: stream entries of removed events survived", stream, v, want)
				}
			}
			// Every id of a stored event is stored, and no other.
			stored := map[string]bool{}
			for _, e := range checkLog(t, s) {
				stored[e.ID] = true
			}
			for _, id := range []string{"a1", "a2", "b1", "c1", "c2"} {
				if _, ok, err := get(s.db, idKey(nil, id)); err != nil || ok != stored[id] {
					t.Fatalf("id %s stored %v (%v), want %v", id, ok, err, stored[id])
				}
			}

			// The next append takes the position after the log, and the
			// stream heads are the repaired ones.
			head := uint64(len(tc.log))
			res, err := s.Append(ctx, "room:a", events.Exactly(tc.versionA), testEvents("next", 1))
			if err != nil {
				t.Fatalf("append after reopen: %v", err)
			}
			if e := res.Events[0]; e.Position != head+1 || e.Version != tc.versionA+1 {
				t.Fatalf("append after reopen: version %d position %d, want %d and %d", e.Version, e.Position, tc.versionA+1, head+1)
			}
			// C's ids are free again unless C is stored.
			res, err = s.Append(ctx, "room:c", events.NoStream, []events.Event{
				{ID: "c1", Type: "Tested", Data: []byte(`{}`)}, {ID: "c2", Type: "Tested", Data: []byte(`{}`)},
			})
			switch {
			case tc.reuseC != nil:
				if !errors.Is(err, tc.reuseC) {
					t.Fatalf("reusing C's ids: %v (%+v), want %v", err, res, tc.reuseC)
				}
			case err != nil || res.Duplicate || res.Events[0].Position != head+2:
				t.Fatalf("reusing C's ids on room:c: %+v, %v; want a new append at position %d", res, err, head+2)
			}
			checkLog(t, s)
		})
	}
}

// TestPrecheckWindow covers the writer's trust in the callers' id
// pre-checks: an id assigned after a pre-check, and a pre-check older than
// the ids the writer still remembers, are both looked up in Pebble once
// everything assigned is durable; a fresh pre-check of a new id is trusted
// with appends in flight.
func TestPrecheckWindow(t *testing.T) {
	s := manualStore(t, testConfig(t))
	s.w.recentMax = 2 // before the first assign allocates the ring
	ctx := t.Context()

	// The pre-check of late ran before first was assigned: it found
	// nothing, and saw durable position 0.
	late := appendReq(ctx, "room:b", events.NoStream, "x1")
	if err := s.precheckIDs(late); err != nil || late.found || late.seen != 0 {
		t.Fatalf("pre-check: %v, found %v, seen %d", err, late.found, late.seen)
	}
	first := appendReq(ctx, "room:a", events.NoStream, "x1")
	mustAssign(t, s, first)
	commit(t, s, first) // in Pebble, not durable yet
	a := startAssign(s, late)
	if !waitsForWatermark(t, s, a) {
		t.Fatalf("late settled (%v) before first was durable", late.err)
	}
	s.w.t.complete([]*request{first}, nil, nil)
	if a.result(t, "assign late") {
		t.Fatal("late assigned: the id assigned after its pre-check was missed")
	}
	checkResult(t, "first", first, wantAppend{version: 1, position: 1})
	checkResult(t, "id written after the pre-check", late, wantAppend{err: events.ErrDuplicateID})

	// Push x1 out of the remembered ids, then present a stale pre-check
	// that claims x1 is new.
	for i := range 3 {
		r := appendReq(ctx, "room:a", events.AnyVersion, fmt.Sprintf("y%d", i))
		mustAssign(t, s, r)
		commitDone(t, s, r)
	}
	if s.w.assignedSince(0, []uint64{hashID("x1")}) || s.w.recentFloor == 0 {
		t.Fatalf("x1 still remembered (floor %d): the test needs it forgotten", s.w.recentFloor)
	}
	stale := appendReq(ctx, "room:c", events.NoStream, "x1")
	stale.seen = 0
	if _, ok := s.w.assign(stale, nil); ok {
		t.Fatal("stale assigned: a pre-check older than the remembered ids was trusted")
	}
	checkResult(t, "pre-check older than the window", stale, wantAppend{err: events.ErrDuplicateID})

	// A fresh pre-check of a new id is trusted and the append proceeds.
	fresh := appendReq(ctx, "room:c", events.NoStream, "z1")
	if err := s.precheckIDs(fresh); err != nil {
		t.Fatal(err)
	}
	mustAssign(t, s, fresh)
	commitDone(t, s, fresh)
	checkResult(t, "fresh", fresh, wantAppend{version: 1, position: 5})

	// Trusted with an append in flight: assign does not wait for it.
	inflight := appendReq(ctx, "room:d", events.NoStream, "w1")
	mustAssign(t, s, inflight)
	fresh2 := appendReq(ctx, "room:e", events.NoStream, "z2")
	if err := s.precheckIDs(fresh2); err != nil {
		t.Fatal(err)
	}
	a = startAssign(s, fresh2)
	if waitsForWatermark(t, s, a) {
		t.Fatal("fresh2 waits for the append in flight though its pre-check is trusted")
	}
	if !a.val {
		t.Fatalf("fresh2 refused: %v", fresh2.err)
	}

	// A pre-check that found an id (a retry) waits for what is in flight
	// and gets the original.
	retry := appendReq(ctx, "room:a", events.AnyVersion, "y0")
	if err := s.precheckIDs(retry); err != nil || !retry.found {
		t.Fatalf("pre-check of a stored id: %v, found %v", err, retry.found)
	}
	a = startAssign(s, retry)
	if !waitsForWatermark(t, s, a) {
		t.Fatalf("retry settled (%v) with appends in flight", retry.err)
	}
	commitDone(t, s, inflight, fresh2)
	if a.result(t, "assign retry") {
		t.Fatal("retry assigned: a stored id was written again")
	}
	checkResult(t, "inflight", inflight, wantAppend{version: 1, position: 6})
	checkResult(t, "fresh2", fresh2, wantAppend{version: 1, position: 7})
	checkResult(t, "retry", retry, wantAppend{version: 2, position: 2, duplicate: true})
	checkLog(t, s)
}

// waitPending waits until n appends are pending, failing if one of the
// calls returns first.
func waitPending[T any](t *testing.T, s *Store, n int, calls ...*async[T]) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		s.w.mu.Lock()
		got := len(s.w.pending)
		s.w.mu.Unlock()
		if got >= n {
			return
		}
		for i, c := range calls {
			if c.finished() {
				t.Fatalf("call %d returned (%+v) before %d appends were pending", i, c.val, n)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d appends pending after %v, want %d", got, guard, n)
		}
		runtime.Gosched()
	}
}

type reply struct {
	res events.AppendResult
	err error
}

func startAppend(ctx context.Context, s *Store, stream string, exp events.ExpectedVersion, ids ...string) *async[reply] {
	evs := make([]events.Event, len(ids))
	for i, id := range ids {
		evs[i] = events.Event{ID: id, Type: "Tested", Data: []byte(`{}`)}
	}
	return start(func() reply {
		res, err := s.Append(ctx, stream, exp, evs)
		return reply{res, err}
	})
}

// TestFailedCommitPoisonsStore fails one batch's commit and checks that
// every caller waiting on the store gets the error (none hangs), later
// calls fail at once, the watermark never passes the failed position, and
// a reopen removes what was committed above it.
func TestFailedCommitPoisonsStore(t *testing.T) {
	dir := t.TempDir()
	s := openManual(t, dir, testConfig(t))
	first := s
	t.Cleanup(func() { closeUnlessFailed(t, first) }) // a no-op once closed below
	w := s.w
	w.mu.Lock()
	w.maxBatch = 1 // one append per taken batch
	w.mu.Unlock()
	ctx := t.Context()

	g1 := startAppend(ctx, s, "room:a", events.NoStream, "g1")
	waitPending(t, s, 1, g1)
	g2 := startAppend(ctx, s, "room:b", events.NoStream, "g2")
	waitPending(t, s, 2, g1, g2)
	g3 := startAppend(ctx, s, "room:c", events.NoStream, "g3")
	waitPending(t, s, 3, g1, g2, g3)
	// A reply that reports what is in flight waits for it.
	stale := startAppend(ctx, s, "room:a", events.Exactly(5), "s1")
	if !waitsForWatermark(t, s, stale) {
		t.Fatalf("stale append returned %v with room:a's head in flight", stale.val.err)
	}

	// The test leads: g2's batch commits, g1's fails.
	w.mu.Lock()
	b1, b2 := w.take(nil), w.take(nil)
	w.mu.Unlock()
	if len(b1) != 1 || len(b2) != 1 || b1[0].stream != "room:a" || b2[0].stream != "room:b" {
		t.Fatalf("batches %v and %v, want g1's and g2's", b1, b2)
	}
	// g2's batch reaches Pebble above g1's, which fails. The writer never
	// does this (a leader fails the store before passing the lead on);
	// here it checks that the tracker refuses g2 and that Open repairs
	// the gap.
	commit(t, s, b2...)
	leader := &request{} // the leading caller's own append, in neither batch
	boom := errors.New("boom")
	if w.t.complete(b1, boom, leader) {
		t.Fatal("complete reports the leader's append settled")
	}
	if w.t.complete(b2, nil, leader) {
		t.Fatal("complete reports the leader's append settled")
	}
	for name, c := range map[string]*async[reply]{"g1 (failed)": g1, "g2 (committed above the failure)": g2, "stale (waiting for its reply)": stale} {
		if r := c.result(t, name); !errors.Is(r.err, boom) {
			t.Fatalf("%s: %+v, %v; want %v", name, r.res, r.err, boom)
		}
	}

	// g3 was never taken: its caller becomes leader, as lead would make
	// it, and fails its append without writing it.
	w.mu.Lock()
	r3 := w.pending[0]
	r3.leadSent = true
	r3.done <- sigLead
	w.mu.Unlock()
	if r := g3.result(t, "g3"); !errors.Is(r.err, boom) {
		t.Fatalf("g3: %+v, %v; want %v", r.res, r.err, boom)
	}
	w.mu.Lock()
	leaders, pending := w.leaders, len(w.pending)
	w.mu.Unlock()
	if leaders != 0 || pending != 0 {
		t.Fatalf("after the last leader: %d leaders, %d pending; want none", leaders, pending)
	}

	// Later calls fail at once.
	if _, err := s.Append(ctx, "room:d", events.NoStream, testEvents("later", 1)); !errors.Is(err, boom) {
		t.Fatalf("append after the failure: %v, want %v", err, boom)
	}
	if err := s.SaveSnapshot(ctx, events.Snapshot{Stream: "room:b", Version: 0, Data: []byte(`{}`)}); !errors.Is(err, boom) {
		t.Fatalf("snapshot after the failure: %v, want %v", err, boom)
	}
	// g2 is in Pebble, above the failed position: never readable.
	if v := pebbleVersion(t, s.db, "room:b"); v != 1 {
		t.Fatalf("Pebble holds room:b at %d, want 1 (the test needs g2 committed)", v)
	}
	if got := lookAt(t, s); got != (storeView{}) {
		t.Fatalf("reads show %+v after the failure, want nothing", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Reopen: g2 sits above a gap and is removed.
	s = mustOpen(t, dir, testConfig(t))
	wantLog(t, s)
	if v := pebbleVersion(t, s.db, "room:b"); v != 0 {
		t.Fatalf("after reopen Pebble holds room:b at %d, want 0", v)
	}
	res, err := s.Append(ctx, "room:b", events.NoStream, []events.Event{{ID: "g2", Type: "Tested", Data: []byte(`{}`)}})
	if err != nil || res.Duplicate || res.Position() != 1 {
		t.Fatalf("retry of g2 after reopen: %+v, %v; want a new append at 1", res, err)
	}
}

// TestLeaderGathersQueuedAppends: a caller that found nobody leading
// takes along, after its yield, the appends queued meanwhile, up to
// maxBatch events in all, and writes them as one batch; the lead then
// passes to the caller of the append left pending.
func TestLeaderGathersQueuedAppends(t *testing.T) {
	s := manualStore(t, testConfig(t))
	w := s.w
	w.mu.Lock()
	w.leaders = 0 // nobody leads: the first append's caller will
	w.maxBatch = 3
	w.mu.Unlock()
	ctx := t.Context()
	req := func(stream, id string) *request {
		r := newAppendRequest(ctx, stream, events.NoStream, testEvents(id, 1), time.Now)
		if err := s.precheckIDs(r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := req("room:a", "a")
	batch, ok := w.assign(r1, nil)
	if !ok || len(batch) != 1 || batch[0] != r1 {
		t.Fatalf("assign with nobody leading: batch %v, %v; want the caller's own append to lead", batch, ok)
	}
	// Queued while r1's caller leads, as during its yield.
	r2, r3, r4 := req("room:b", "b"), req("room:c", "c"), req("room:d", "d")
	for _, r := range []*request{r2, r3, r4} {
		if b, ok := w.assign(r, nil); !ok || b != nil {
			t.Fatalf("assign under a leader: batch %v, %v; want the append pending", b, ok)
		}
	}
	batch = w.gather(batch)
	w.mu.Lock()
	pending := slices.Clone(w.pending)
	w.mu.Unlock()
	if len(batch) != 3 || batch[1] != r2 || batch[2] != r3 || len(pending) != 1 || pending[0] != r4 {
		t.Fatalf("gathered %d appends, %d left pending; want r1, r2 and r3 (maxBatch 3) and r4 pending", len(batch), len(pending))
	}
	if !r2.taken || !r3.taken || r4.taken {
		t.Fatalf("taken: r2 %v, r3 %v, r4 %v; want r2 and r3 only", r2.taken, r3.taken, r4.taken)
	}
	if !w.lead(batch, r1) {
		t.Fatal("the leader's own append is not settled after its batch")
	}
	for name, r := range map[string]*request{"r2": r2, "r3": r3} {
		if sig := <-r.done; sig != sigSettled || r.err != nil {
			t.Fatalf("%s: signal %v, err %v; want settled, written", name, sig, r.err)
		}
	}
	if sig := <-r4.done; sig != sigLead {
		t.Fatalf("r4's caller got signal %v, want the lead", sig)
	}
	wantLog(t, s, "room:a/1@1:a-0", "room:b/1@2:b-0", "room:c/1@3:c-0")

	// The test, as r4's caller, leads it.
	w.mu.Lock()
	r4.leadSent = false
	b4 := w.take(nil)
	w.mu.Unlock()
	commitDone(t, s, b4...)
	wantLog(t, s, "room:a/1@1:a-0", "room:b/1@2:b-0", "room:c/1@3:c-0", "room:d/1@4:d-0")
}

// TestCancelledCallers covers when a caller whose context ends may leave:
// not while its append is pending (it may have to lead it), but once a
// leader took it; the append then becomes durable anyway.
func TestCancelledCallers(t *testing.T) {
	s := manualStore(t, testConfig(t))
	w := s.w

	// Pending, then cancelled: the caller still leads its append.
	ctx1, cancel1 := context.WithCancel(t.Context())
	g1 := startAppend(ctx1, s, "room:a", events.NoStream, "k1")
	waitPending(t, s, 1, g1)
	cancel1()
	w.mu.Lock()
	r1 := w.pending[0]
	r1.leadSent = true
	r1.done <- sigLead // as lead hands the role on
	w.mu.Unlock()
	if r := g1.result(t, "g1"); r.err != nil || r.res.Position() != 1 {
		t.Fatalf("cancelled caller told to lead: %+v, %v; want its append at position 1", r.res, r.err)
	}
	w.mu.Lock()
	leaders, pending := w.leaders, len(w.pending)
	w.leaders = 1 // the test leads again
	w.mu.Unlock()
	if leaders != 0 || pending != 0 {
		t.Fatalf("after g1 led: %d leaders, %d pending; want none", leaders, pending)
	}

	// Taken by a leader, then cancelled: the caller leaves, the append
	// is written anyway (like a lost reply).
	ctx2, cancel2 := context.WithCancel(t.Context())
	g2 := startAppend(ctx2, s, "room:a", events.Exactly(1), "k2")
	waitPending(t, s, 1, g2)
	w.mu.Lock()
	batch := w.take(nil)
	w.mu.Unlock()
	cancel2()
	if r := g2.result(t, "g2"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled caller of a taken append: %+v, %v; want context.Canceled", r.res, r.err)
	}
	commitDone(t, s, batch...)
	w.mu.Lock()
	w.leaders--
	w.mu.Unlock()
	wantLog(t, s, "room:a/1@1:k1", "room:a/2@2:k2")
	res, err := s.Append(t.Context(), "room:a", events.Exactly(2), testEvents("k3", 1))
	if err != nil || res.Position() != 3 || res.Version() != 3 {
		t.Fatalf("append after: %+v, %v; want version 3 at position 3", res, err)
	}
}

// TestMaxInFlightAdmission assigns appends by hand under
// MaxInFlightEvents 2 and completes the oldest in flight one at a time:
// each append is admitted exactly when it fits, and one larger than the
// bound only when nothing else is in flight (and then alone).
func TestMaxInFlightAdmission(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxInFlightEvents = 2
	s := manualStore(t, cfg)
	ctx := t.Context()
	steps := []struct {
		name    string
		events  int
		release int // completions of the oldest append in flight before it is admitted
	}{
		{"first", 1, 0},
		{"second fits beside it", 1, 0},
		{"third waits for one", 1, 1},
		{"larger than the bound waits for all", 5, 2},
		{"next waits for the large one", 1, 1},
		{"two wait for room", 2, 1},
		{"one more waits", 1, 1},
	}
	var inflight []*request
	pos := uint64(0)
	for i, st := range steps {
		ids := make([]string, st.events)
		for k := range ids {
			ids[k] = fmt.Sprintf("s%d-%d", i, k)
		}
		r := appendReq(ctx, "room:a", events.AnyVersion, ids...)
		a := startAssign(s, r)
		for k := 0; ; k++ {
			blocked := waitsForWatermark(t, s, a)
			if k == st.release {
				if blocked {
					t.Fatalf("%s: still waits after %d completions", st.name, k)
				}
				break
			}
			if !blocked {
				t.Fatalf("%s: admitted after %d completions, want %d", st.name, k, st.release)
			}
			commitDone(t, s, inflight[0])
			inflight = inflight[1:]
		}
		if !a.val {
			t.Fatalf("%s: refused: %v", st.name, r.err)
		}
		if r.position != pos+1 {
			t.Fatalf("%s: position %d, want %d", st.name, r.position, pos+1)
		}
		pos += uint64(st.events)
		inflight = append(inflight, r)
		if n := s.w.lastPos - s.w.t.durable.Load(); n > 2 && len(inflight) > 1 {
			t.Fatalf("%s: %d positions in flight over %d appends", st.name, n, len(inflight))
		}
	}
	commitDone(t, s, inflight...)
	if all := checkLog(t, s); uint64(len(all)) != pos {
		t.Fatalf("log holds %d events, want %d", len(all), pos)
	}
}

// TestMaxInFlightAppends: with MaxInFlightEvents 2, an append of 5 events
// succeeds (alone), and concurrent appends of 1 to 5 events all succeed
// and are stored as acknowledged.
func TestMaxInFlightAppends(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxInFlightEvents = 2
	s := mustOpen(t, t.TempDir(), cfg)
	ctx := t.Context()
	res, err := s.Append(ctx, "room:big", events.NoStream, testEvents("big", 5))
	if err != nil || len(res.Events) != 5 || res.Events[0].Position != 1 {
		t.Fatalf("append of 5 events: %+v, %v; want positions 1..5", res, err)
	}

	const writers, appends = 6, 12
	var wg sync.WaitGroup
	acked := make([][]events.Event, writers)
	errs := make([]error, writers)
	for wr := range writers {
		wg.Go(func() {
			for i := range appends {
				n := 1 + (wr+i)%5
				res, err := s.Append(ctx, fmt.Sprintf("room:s%d", (wr+i)%3), events.AnyVersion, testEvents(fmt.Sprintf("w%d-%d", wr, i), n))
				if err != nil {
					errs[wr] = fmt.Errorf("writer %d append %d (%d events): %w", wr, i, n, err)
					return
				}
				if res.Duplicate || len(res.Events) != n {
					errs[wr] = fmt.Errorf("writer %d append %d: %+v", wr, i, res)
					return
				}
				acked[wr] = append(acked[wr], res.Events...)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	wantLogAsAcked(t, checkLog(t, s), append(acked, res.Events)...)
}

// TestHeadCacheKeepsInFlightHeads: with a cache of two stream heads,
// assign drops heads only once their appends are durable (a dropped head
// is reloaded from Pebble, which holds only what was committed), and a
// reloaded head is the stream's durable version.
func TestHeadCacheKeepsInFlightHeads(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxCachedStreams = 2
	s := manualStore(t, cfg)
	ctx := t.Context()
	cached := func() map[string]bool {
		s.w.mu.Lock()
		defer s.w.mu.Unlock()
		out := map[string]bool{}
		for k := range s.w.heads {
			out[k] = true
		}
		return out
	}
	id := 0
	assign := func(stream string, exp events.ExpectedVersion, want uint64) *request {
		t.Helper()
		id++
		r := appendReq(ctx, stream, exp, fmt.Sprintf("h%d", id))
		mustAssign(t, s, r)
		if r.version != want {
			t.Fatalf("%s: version %d, want %d", stream, r.version, want)
		}
		return r
	}

	// Three streams with appends in flight: the full cache drops none of
	// them, and the next append on room:a sees its head in flight.
	inflight := []*request{
		assign("room:a", events.NoStream, 1),
		assign("room:b", events.NoStream, 1),
		assign("room:c", events.NoStream, 1),
		assign("room:a", events.Exactly(1), 2),
	}
	if n := len(cached()); n != 3 {
		t.Fatalf("%d heads cached, want 3 (all in flight)", n)
	}
	commitDone(t, s, inflight...)

	// Now durable heads are dropped and reloaded, again and again.
	known := map[string]uint64{"room:a": 2, "room:b": 1, "room:c": 1}
	streams := []string{"room:a", "room:b", "room:c", "room:d", "room:e"}
	dropped := 0
	for round := range 6 {
		inflight = inflight[:0]
		for i, stream := range streams {
			exp := events.Exactly(known[stream])
			if (round+i)%3 == 0 {
				exp = events.AnyVersion
			}
			known[stream]++
			before := cached()
			inflight = append(inflight, assign(stream, exp, known[stream]))
			for k := range before {
				if !cached()[k] {
					dropped++
				}
			}
			if (round+i)%2 == 0 {
				commitDone(t, s, inflight...)
				inflight = inflight[:0]
			}
		}
		commitDone(t, s, inflight...)
	}
	if dropped == 0 {
		t.Fatal("no head dropped: the test needs evictions")
	}
	checkLog(t, s)
	for stream, v := range known {
		if got, err := s.StreamVersion(ctx, stream); err != nil || got != v {
			t.Fatalf("StreamVersion(%s) = %d, %v; want %d", stream, got, err, v)
		}
	}
}

// TestOversizedAppendNotOvertaken: an append larger than
// MaxInFlightEvents waits for what is in flight to drain, and an append
// that would fit meanwhile waits behind it instead of taking the room.
func TestOversizedAppendNotOvertaken(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxInFlightEvents = 2
	s := manualStore(t, cfg)
	ctx := t.Context()
	first := appendReq(ctx, "room:a", events.AnyVersion, "a1")
	mustAssign(t, s, first)
	big := appendReq(ctx, "room:b", events.AnyVersion, "b1", "b2", "b3", "b4", "b5")
	bigDone := startAssign(s, big)
	if !waitsForWatermark(t, s, bigDone) {
		t.Fatalf("the large append was admitted beside one in flight: %v", big.err)
	}
	small := appendReq(ctx, "room:c", events.AnyVersion, "c1") // would fit beside first
	smallDone := startAssign(s, small)
	pollUntil(t, "the small append is held back", func() (bool, string) {
		s.w.mu.Lock()
		held := s.w.heldBack
		s.w.mu.Unlock()
		if held != 1 && smallDone.finished() {
			return false, fmt.Sprintf("the small append overtook the large one at position %d", small.position)
		}
		return held == 1, ""
	})
	commitDone(t, s, first)
	if !bigDone.result(t, "large append") {
		t.Fatalf("large append refused: %v", big.err)
	}
	if big.position != 2 {
		t.Fatalf("large append at position %d, want 2", big.position)
	}
	if !waitsForWatermark(t, s, smallDone) {
		t.Fatalf("the small append was admitted beside the large one: position %d", small.position)
	}
	commitDone(t, s, big)
	if !smallDone.result(t, "small append") || small.position != 7 {
		t.Fatalf("small append: position %d, err %v; want 7", small.position, small.err)
	}
	commitDone(t, s, small)
	if all := checkLog(t, s); len(all) != 7 {
		t.Fatalf("log holds %d events, want 7", len(all))
	}
}
