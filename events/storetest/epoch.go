package storetest

import (
	"testing"

	"github.com/b6368a97/engine/events"
)

// checkEpochFormat fails unless e is a well-formed epoch: 1 to
// events.MaxEpochLen visible ASCII characters.
func checkEpochFormat(t *testing.T, what, e string) {
	t.Helper()
	if e == "" || len(e) > events.MaxEpochLen {
		t.Fatalf("%s: want an epoch of 1-%d characters, got %q", what, events.MaxEpochLen, e)
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= ' ' || e[i] > '~' {
			t.Fatalf("%s: want an epoch of visible ASCII, got %q", what, e)
		}
	}
}

// testEpoch: a store has a well-formed epoch from the start, the same on
// every call (appends and Close change nothing), and two new stores have
// different ones.
func testEpoch(t *testing.T, s suite) {
	st := s.store(t)
	first := st.Epoch()
	checkEpochFormat(t, "Epoch of a new store", first)
	if again := st.Epoch(); again != first {
		t.Fatalf("Epoch called twice: got %q, then %q", first, again)
	}
	mustAppend(t, st, "room:epoch", events.NoStream, batch("epoch", 3))
	if err := st.SetPending(t.Context(), "room:epoch", true); err != nil {
		t.Fatalf("SetPending: %v", err)
	}
	if got := st.Epoch(); got != first {
		t.Fatalf("Epoch after writes: want %q, got %q", first, got)
	}
	other := s.store(t)
	if o := other.Epoch(); o == first {
		t.Fatalf("two new stores share the epoch %q", o)
	} else {
		checkEpochFormat(t, "Epoch of a second new store", o)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := st.Epoch(); got != first {
		t.Fatalf("Epoch after Close: want %q, got %q", first, got)
	}
}

// testReopenKeepsEpoch: the epoch is part of the data: the same after
// every reopen of a directory, empty or not, and different in another
// directory.
func testReopenKeepsEpoch(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	st := d.openAt(t, dir)
	want := st.Epoch()
	checkEpochFormat(t, "Epoch of a new store", want)

	st = d.reopen(t, st, dir)
	if got := st.Epoch(); got != want {
		t.Fatalf("Epoch after reopening an empty store: want %q, got %q", want, got)
	}
	mustAppend(t, st, "room:epoch", events.NoStream, batch("epoch", 2))
	for i := range 2 {
		st = d.reopen(t, st, dir)
		if got := st.Epoch(); got != want {
			t.Fatalf("Epoch after reopen %d with events: want %q, got %q", i+1, want, got)
		}
	}
	if v := streamVersion(t, st, "room:epoch"); v != 2 {
		t.Fatalf("StreamVersion(room:epoch) after the reopens: want 2, got %d", v)
	}

	other := d.openAt(t, t.TempDir())
	if got := other.Epoch(); got == want {
		t.Fatalf("a store in another directory has the same epoch %q", got)
	}
}
