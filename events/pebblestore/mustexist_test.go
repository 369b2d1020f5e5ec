package pebblestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/b6368a97/engine/events"
)

// TestMustExist: with MustExist, Open refuses a directory without a store
// and leaves it as it was; a store that exists opens as usual.
func TestMustExist(t *testing.T) {
	mustExist := func(t *testing.T) Config {
		cfg := testConfig(t)
		cfg.MustExist = true
		return cfg
	}
	t.Run("no directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mistyped", "events")
		s, err := Open(dir, mustExist(t))
		if !errors.Is(err, ErrNoStore) {
			t.Fatalf("Open = %v, %v; want ErrNoStore", s, err)
		}
		if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open created %s (stat: %v)", filepath.Dir(dir), err)
		}
	})
	t.Run("directory without a store", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a store"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, mustExist(t))
		if !errors.Is(err, ErrNoStore) {
			t.Fatalf("Open = %v, %v; want ErrNoStore", s, err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("Open left %v in the directory; want only notes.txt", names)
		}
	})
	t.Run("existing store", func(t *testing.T) {
		dir := t.TempDir()
		s := mustOpen(t, dir, testConfig(t))
		if _, err := s.Append(t.Context(), "room:a", events.AnyVersion, testEvents("a", 3)); err != nil {
			t.Fatal(err)
		}
		epoch := s.Epoch()
		closeStore(t, s)
		s2, err := Open(dir, mustExist(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer closeStore(t, s2)
		if h, err := s2.Head(t.Context()); err != nil || h != 3 || s2.Epoch() != epoch {
			t.Errorf("reopened: head %d (%v), epoch %q; want 3 and %q", h, err, s2.Epoch(), epoch)
		}
	})
}
