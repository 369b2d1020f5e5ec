package pebblestore

import (
	"errors"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/b6368a97/engine/events"
)

// rawDB opens dir with Pebble directly, for tests that edit the meta keys.
func rawDB(t *testing.T, dir string, edit func(db *pebble.DB) error) {
	t.Helper()
	db, err := pebble.Open(dir, pebbleOptions(testConfig(t).withDefaults()))
	if err != nil {
		t.Fatalf("pebble.Open(%s): %v", dir, err)
	}
	if err := edit(db); err != nil {
		t.Fatalf("edit %s: %v", dir, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("pebble close: %v", err)
	}
}

func closeStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestEpochOfAnOlderStore: a store written before epochs (a format marker
// and events, no epoch key) gets an epoch at its next open, keeps it from
// then on, and loses nothing.
func TestEpochOfAnOlderStore(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testConfig(t))
	if _, err := s.Append(t.Context(), "room:old", events.NoStream, testEvents("old", 3)); err != nil {
		t.Fatal(err)
	}
	before := s.Epoch()
	closeStore(t, s)
	rawDB(t, dir, func(db *pebble.DB) error { return db.Delete(metaEpochKey, pebble.Sync) })

	s = mustOpen(t, dir, testConfig(t))
	created := s.Epoch()
	if created == "" || created == before {
		t.Fatalf("epoch created for an older store: %q (the deleted one was %q)", created, before)
	}
	if v, err := s.StreamVersion(t.Context(), "room:old"); err != nil || v != 3 {
		t.Fatalf("StreamVersion(room:old): %d, %v; want 3", v, err)
	}
	closeStore(t, s)
	s = mustOpen(t, dir, testConfig(t))
	if got := s.Epoch(); got != created {
		t.Fatalf("epoch after another reopen: want %q, got %q", created, got)
	}
}

// TestEpochOfAWipedStore: removing the data directory and opening the same
// path again is a new store with a new epoch.
func TestEpochOfAWipedStore(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, testConfig(t))
	first := s.Epoch()
	closeStore(t, s)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, testConfig(t))
	if got := s.Epoch(); got == first {
		t.Fatalf("a wiped directory kept the epoch %q", got)
	}
}

// TestEpochCorrupt: an unusable stored epoch fails Open rather than being
// replaced, which would silently tell clients the data changed.
func TestEpochCorrupt(t *testing.T) {
	for name, v := range map[string][]byte{
		"empty":    {},
		"too long": make([]byte, events.MaxEpochLen+1),
		"binary":   {'a', 0, 'b'},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			closeStore(t, mustOpen(t, dir, testConfig(t)))
			rawDB(t, dir, func(db *pebble.DB) error { return db.Set(metaEpochKey, v, pebble.Sync) })
			s, err := Open(dir, testConfig(t))
			if err == nil {
				_ = s.Close()
				t.Fatal("Open with a corrupt epoch: want an error, got none")
			}
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("Open with a corrupt epoch: want errCorrupt, got %v", err)
			}
		})
	}
}
