package actors

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// StateAt folds the stream up to the version asked, whether or not a
// snapshot exists below or above it, and gives the same JSON as State at
// the current version.
func TestStateAt(t *testing.T) {
	cfg := rtConfig(rtMemStore(t))
	cfg.SnapshotEvery = 4
	r := rtStart(t, cfg)
	ctx := rtCtx(t)
	for i := 1; i <= 10; i++ {
		rtExec(t, r, "counter:h", "Add", `{"by":`+strconv.Itoa(i)+`}`)
	}
	rtWaitFor(t, "a snapshot at 8", func() bool {
		snap, err := cfg.Store.LoadSnapshot(ctx, "counter:h")
		return err == nil && snap.Version == 8
	})
	wantN := map[uint64]int{}
	n := 0
	for v := uint64(1); v <= 10; v++ {
		n += int(v)
		wantN[v] = n
	}
	for v := uint64(1); v <= 10; v++ { // below the snapshot (from 0), at it, above it
		view, err := r.StateAt(ctx, "counter:h", v, decider.Caller{Anonymous: true})
		if err != nil {
			t.Fatalf("StateAt %d: %v", v, err)
		}
		var got rtCounter
		if err := json.Unmarshal(view.JSON, &got); err != nil {
			t.Fatal(err)
		}
		if view.Version != v || got.Version != v || got.N != wantN[v] || len(got.Hist) != int(v) {
			t.Errorf("StateAt %d: version %d, state %+v, want n %d", v, view.Version, got, wantN[v])
		}
	}
	cur, err := r.State(ctx, "counter:h", decider.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	at, err := r.StateAt(ctx, "counter:h", 10, decider.Caller{})
	if err != nil || string(at.JSON) != string(cur.JSON) {
		t.Errorf("StateAt(current) = %s, %v; State = %s", at.JSON, err, cur.JSON)
	}
	for _, c := range []struct {
		stream string
		v      uint64
		want   error
	}{
		{"counter:h", 0, events.ErrNotFound},
		{"counter:h", 11, events.ErrNotFound},
		{"counter:none", 1, events.ErrNotFound},
		{"nokind:x", 1, ErrUnknownKind},
		{"bad", 1, events.ErrInvalidStream},
	} {
		if _, err := r.StateAt(ctx, c.stream, c.v, decider.Caller{}); !errors.Is(err, c.want) {
			t.Errorf("StateAt(%s, %d): %v, want %v", c.stream, c.v, err, c.want)
		}
	}
	if r.rtActive("counter:none") {
		t.Error("StateAt activated an actor for a shared kind")
	}
}

// A snapshot that the kind cannot read is skipped: the fold starts from 0.
func TestStateAtUnreadableSnapshot(t *testing.T) {
	store := rtMemStore(t)
	r := rtStart(t, rtConfig(store))
	ctx := rtCtx(t)
	for range 3 {
		rtExec(t, r, "counter:u", "Inc", `{}`)
	}
	if err := store.SaveSnapshot(ctx, events.Snapshot{Stream: "counter:u", Version: 2, Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	view, err := r.StateAt(ctx, "counter:u", 3, decider.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	var got rtCounter
	if err := json.Unmarshal(view.JSON, &got); err != nil || got.N != 3 {
		t.Fatalf("StateAt 3 = %s (%v), want n 3", view.JSON, err)
	}
}

// A stored event the kind does not know is a corrupt stream.
func TestStateAtCorrupt(t *testing.T) {
	store := rtMemStore(t)
	r := rtStart(t, rtConfig(store))
	if _, err := store.Append(rtCtx(t), "counter:c", events.NoStream, []events.Event{{ID: "x1", Type: "Incremented"}, {ID: "x2", Type: "Weird"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StateAt(rtCtx(t), "counter:c", 1, decider.Caller{}); err != nil {
		t.Fatalf("StateAt before the bad event: %v", err)
	}
	var le *LoadError
	if _, err := r.StateAt(rtCtx(t), "counter:c", 2, decider.Caller{}); !errors.As(err, &le) || le.Version != 2 || !errors.Is(err, ErrCorruptStream) {
		t.Fatalf("StateAt at the bad event: %v, want a LoadError at 2", err)
	}
}

// The private rule is applied on the current state; CheckList lets only
// admins and anonymous callers list a private kind.
func TestStateAtPrivateAndCheckList(t *testing.T) {
	r := rtStart(t, rtSafeConfig(t, rtSafeRule))
	ctx := rtCtx(t)
	ann, bob := decider.Caller{User: "ann"}, decider.Caller{User: "bob"}
	admin, anon := decider.Caller{User: "root", Admin: true}, decider.Caller{Anonymous: true}
	if _, err := r.StateAt(ctx, "safe:p", 1, bob); !errors.Is(err, decider.ErrForbidden) {
		t.Fatalf("StateAt of an ownerless stream: %v, want forbidden", err)
	}
	if _, err := r.Execute(ctx, decider.Command{Stream: "safe:p", Type: "Put", Caller: ann}, events.AnyVersion); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]decider.Caller{"ann": ann, "root": admin, "anon": anon} {
		if _, err := r.StateAt(ctx, "safe:p", 1, c); err != nil {
			t.Errorf("StateAt by %s: %v", name, err)
		}
	}
	if _, err := r.StateAt(ctx, "safe:p", 1, bob); !errors.Is(err, decider.ErrForbidden) {
		t.Errorf("StateAt by bob: %v, want forbidden", err)
	}
	// Forbidden comes before not found: bob learns nothing of the versions.
	if _, err := r.StateAt(ctx, "safe:p", 9, bob); !errors.Is(err, decider.ErrForbidden) {
		t.Errorf("StateAt by bob beyond the head: %v, want forbidden", err)
	}
	for _, c := range []struct {
		kind   string
		caller decider.Caller
		want   error
	}{
		{"safe", ann, decider.ErrForbidden},
		{"safe", admin, nil},
		{"safe", anon, nil},
		{"counter", bob, nil},
		{"nokind", admin, ErrUnknownKind},
	} {
		if err := r.CheckList(c.kind, c.caller); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("CheckList(%s, %+v) = %v, want %v", c.kind, c.caller, err, c.want)
		}
	}
}
