package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// A command id is a promise that the request is the same: a repeat with
// another type, other data or another expected version is refused, the way
// Stripe refuses a reused idempotency key; white space in the data does not
// make a command different.
func TestIdempotencyMismatch(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	cmd := func(typ, data string) decider.Command {
		return decider.Command{Stream: "counter:m", Type: typ, ID: "k1", Data: json.RawMessage(data)}
	}
	first, err := r.Execute(ctx, cmd("IfBelow", `{"limit":5}`), events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cmd      decider.Command
		expected events.ExpectedVersion
		mismatch bool
	}{
		{"same command", cmd("IfBelow", `{"limit":5}`), events.AnyVersion, false},
		{"same data, other spacing", cmd("IfBelow", "{ \"limit\" : 5 }"), events.AnyVersion, false},
		{"other data", cmd("IfBelow", `{"limit":6}`), events.AnyVersion, true},
		{"other type", cmd("Inc", `{"limit":5}`), events.AnyVersion, true},
		{"other expected version", cmd("IfBelow", `{"limit":5}`), events.Exactly(0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Execute(ctx, tt.cmd, tt.expected)
			if tt.mismatch {
				if !errors.Is(err, ErrIdempotencyMismatch) {
					t.Fatalf("Execute = %+v, %v; want ErrIdempotencyMismatch", res, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(res, first) {
				t.Fatalf("Execute = %+v, %v; want the first result %+v", res, err, first)
			}
		})
	}
	if view, err := r.State(ctx, "counter:m", decider.Caller{}); err != nil || view.Version != 1 {
		t.Fatalf("State after the repeats = v%d, %v; want version 1", view.Version, err)
	}
}

// Within one batch (commands that queued behind the same append), the
// second use of an id with another command is refused too.
func TestIdempotencyMismatchInOneBatch(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, data := range []string{`{"limit":5}`, `{"limit":6}`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Execute(ctx, decider.Command{Stream: "counter:b", Type: "IfBelow", ID: "k", Data: json.RawMessage(data)}, events.AnyVersion)
		}()
	}
	wg.Wait()
	mismatches := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrIdempotencyMismatch):
			mismatches++
		case err != nil:
			t.Fatalf("Execute: %v", err)
		}
	}
	if mismatches != 1 {
		t.Fatalf("errors %v: want exactly one ErrIdempotencyMismatch", errs)
	}
}

// The crash-test bug: a command id whose events precede the latest
// snapshot was forgotten by the next process, so a retry that Decide now
// rejects (the order was placed already) answered a conflict instead of the
// first reply. The window travels in the snapshot: the retry gets the first
// result and appends nothing, and a different command under the same id is
// still refused.
func TestIdempotencyAcrossSnapshotAndRestart(t *testing.T) {
	dir := t.TempDir()
	store := rtOpenPebble(t, dir)
	cfg := rtConfig(store)
	cfg.SnapshotEvery = 2
	r := rtStart(t, cfg)
	ctx := rtCtx(t)
	k := decider.Command{Stream: "counter:k", Type: "IfBelow", ID: "K", Data: json.RawMessage(`{"limit":1}`)}
	first, err := r.Execute(ctx, k, events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	two, err := r.Execute(ctx, decider.Command{Stream: "counter:k", Type: "AddTwice", ID: "T", Data: json.RawMessage(`{"by":2}`)}, events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // past two more snapshots; IfBelow {limit:1} now conflicts
		rtExec(t, r, "counter:k", "Inc", "")
	}
	rtStop(t, r)
	store.Close()

	store = rtOpenPebble(t, dir)
	if snap, err := store.LoadSnapshot(ctx, "counter:k"); err != nil || snap.Version < first.Version+4 {
		t.Fatalf("latest snapshot = v%d, %v; want one well after K", snap.Version, err)
	}
	cfg.Store = store
	r2 := rtStart(t, cfg)
	before, err := r2.State(ctx, "counter:k", decider.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := r2.Execute(ctx, k, events.AnyVersion)
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("K after the restart = %+v, %v; want the first result %+v", again, err, first)
	}
	if again, err := r2.Execute(ctx, decider.Command{Stream: "counter:k", Type: "AddTwice", ID: "T", Data: json.RawMessage(`{"by":2}`)}, events.AnyVersion); err != nil || !reflect.DeepEqual(again, two) {
		t.Fatalf("T after the restart = %+v, %v; want the first result %+v", again, err, two)
	}
	other := k
	other.Data = json.RawMessage(`{"limit":9}`)
	if res, err := r2.Execute(ctx, other, events.AnyVersion); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("K with other data after the restart = %+v, %v; want ErrIdempotencyMismatch", res, err)
	}
	if res, err := r2.Execute(ctx, k, events.Exactly(first.Version-1)); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("K with another expected version after the restart = %+v, %v; want ErrIdempotencyMismatch", res, err)
	}
	after, err := r2.State(ctx, "counter:k", decider.Caller{})
	if err != nil || after.Version != before.Version || string(after.JSON) != string(before.JSON) {
		t.Fatalf("state after the repeats = %s, %v; want %s", after.JSON, err, before.JSON)
	}
	evs, err := store.ReadStream(ctx, "counter:k", 0, 100)
	if err != nil || uint64(len(evs)) != before.Version {
		t.Fatalf("%d events stored, %v; want %d", len(evs), err, before.Version)
	}
}

// The window round-trips through a snapshot oldest first, with its
// versions, no-ops and fingerprints, and a smaller window keeps the newest.
func TestSnapshotEnvelope(t *testing.T) {
	w := cmdWindow{max: 4}
	w.put("a", cmdRecord{first: 1, last: 1, n: 1, sum: 11})
	w.put("b", cmdRecord{last: 1, sum: 12}) // a no-op at version 1
	w.put("c", cmdRecord{first: 2, last: 4, n: 3})
	w.put("d", cmdRecord{first: 5, last: 5, n: 1, sum: 14})
	w.put("e", cmdRecord{first: 6, last: 7, n: 2, sum: 15}) // a is forgotten
	state := []byte(`{"stream":"counter:x","version":7}`)
	data := encodeSnapshot(state, &w)

	type rec struct {
		id  string
		rec cmdRecord
	}
	back := cmdWindow{max: 4}
	st, win, err := decodeSnapshot(data)
	if err != nil || string(st) != string(state) {
		t.Fatalf("state %q, %v", st, err)
	}
	back.loadSaved(string(win))
	if again := encodeSnapshot(state, &back); string(again) != string(data) {
		t.Fatalf("an undecoded window is not written back as it was")
	}
	var got []rec
	back.each(func(id string, r cmdRecord) { got = append(got, rec{id, r}) })
	want := []rec{
		{"b", cmdRecord{last: 1, sum: 12}},
		{"c", cmdRecord{first: 2, last: 4, n: 3}},
		{"d", cmdRecord{first: 5, last: 5, n: 1, sum: 14}},
		{"e", cmdRecord{first: 6, last: 7, n: 2, sum: 15}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records %+v, want %+v", got, want)
	}

	small := cmdWindow{max: 2}
	small.loadSaved(string(win))
	if _, ok := small.get("c"); ok || small.len() != 2 {
		t.Fatalf("a window of 2 holds %v", small.m)
	}
	if r, ok := small.get("e"); !ok || r.sum != 15 {
		t.Fatalf("e = %+v, %v", r, ok)
	}

	var empty cmdWindow
	if b := encodeSnapshot(state, &empty); string(b) != string(state) {
		t.Fatalf("without ids the snapshot is %q, want the bare state", b)
	}
	if st, win, err := decodeSnapshot(state); err != nil || string(st) != string(state) || win != nil {
		t.Fatalf("a bare state decodes as %q, %q, %v", st, win, err)
	}
	for i := len(snapMagic); i < len(data)-len(state); i++ {
		if _, _, err := decodeSnapshot(data[:i]); err == nil {
			t.Fatalf("an envelope cut at %d bytes decodes", i)
		}
	}
}

// Snapshots written before the envelope (the bare state) still load, and
// an envelope that cannot be read makes the actor replay the whole stream.
func TestSnapshotCompatibility(t *testing.T) {
	for _, tt := range []struct {
		name string
		data func(state []byte) []byte
	}{
		{"bare state", func(state []byte) []byte { return state }},
		{"corrupt envelope", func([]byte) []byte { return []byte(snapMagic + "\xff") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := rtMemStore(t)
			ctx := rtCtx(t)
			r := rtStart(t, rtConfig(store))
			for range 3 {
				rtExec(t, r, "counter:c", "Add", `{"by":2}`)
			}
			want, err := r.State(ctx, "counter:c", decider.Caller{})
			if err != nil {
				t.Fatal(err)
			}
			rtStop(t, r)
			// A snapshot at version 2 with a wrong total: only a reader that
			// uses it gets 4 + 2; a full replay gets 6 either way.
			data := tt.data([]byte(`{"stream":"counter:c","version":2,"n":4,"hist":[2,2]}`))
			if err := store.SaveSnapshot(ctx, events.Snapshot{Stream: "counter:c", Version: 2, Data: data}); err != nil {
				t.Fatal(err)
			}
			r2 := rtStart(t, rtConfig(store))
			got, err := r2.State(ctx, "counter:c", decider.Caller{})
			if err != nil || string(got.JSON) != string(want.JSON) {
				t.Fatalf("state = %s, %v; want %s", got.JSON, err, want.JSON)
			}
		})
	}
}

// A reload (another writer moved the stream under the actor) replays the
// events after the snapshot again; the ids the window knows keep their
// fingerprints, so a reused id is still refused afterwards.
func TestIdempotencyFingerprintSurvivesReload(t *testing.T) {
	store := rtMemStore(t)
	r := rtStart(t, rtConfig(store))
	ctx := rtCtx(t)
	k := decider.Command{Stream: "counter:r", Type: "Add", ID: "K", Data: json.RawMessage(`{"by":1}`)}
	if _, err := r.Execute(ctx, k, events.AnyVersion); err != nil {
		t.Fatal(err)
	}
	ev := events.Event{ID: newID(time.Now()), Type: "Incremented"}
	if _, err := store.Append(ctx, "counter:r", events.Exactly(1), []events.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if res := rtExec(t, r, "counter:r", "Inc", ""); res.Version != 3 { // conflicts, reloads
		t.Fatalf("version after the reload = %d, want 3", res.Version)
	}
	other := k
	other.Data = json.RawMessage(`{"by":2}`)
	if res, err := r.Execute(ctx, other, events.AnyVersion); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("K with other data after the reload = %+v, %v; want ErrIdempotencyMismatch", res, err)
	}
}

// BenchmarkWindowPut: remembering the id of each command on a full
// window (the steady state of a busy stream whose commands carry ids).
func BenchmarkWindowPut(b *testing.B) {
	ids := make([]string, 4*DefaultIdempotencyWindow)
	for i := range ids {
		ids[i] = fmt.Sprintf("run-%d-%032d", i%7, i)
	}
	w := cmdWindow{max: DefaultIdempotencyWindow}
	for _, id := range ids[:DefaultIdempotencyWindow] {
		w.put(id, cmdRecord{first: 1, last: 1, n: 1, sum: 1})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.put(ids[i%len(ids)], cmdRecord{first: 2, last: 2, n: 1, sum: 3})
		i++
	}
}
