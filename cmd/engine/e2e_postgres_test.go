package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/pgstore"
	"github.com/b6368a97/engine/events/pgstore/pgtest"
)

// postgresStore returns an ENGINE_STORE URL naming a fresh schema of the
// server in ENGINE_TEST_POSTGRES (the test skips without it) and drops
// the schema when the test ends, after the stores opened in it closed.
func postgresStore(t *testing.T) string {
	t.Helper()
	u, _ := postgresSchema(t)
	return u
}

// postgresSchema is postgresStore that also returns the schema's name.
func postgresSchema(t *testing.T) (storeURL, schema string) {
	t.Helper()
	base := pgtest.URL(t)
	schema = pgtest.Schema(t, base)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema
}

// TestE2EExportToPostgres moves a deployment from the embedded store to
// PostgreSQL: engine export of the embedded store, engine import into a
// fresh schema; the PostgreSQL store then holds the same log and an engine
// serving from it the same states.
func TestE2EExportToPostgres(t *testing.T) {
	pg := postgresStore(t)
	src := t.TempDir()
	e := startEngine(t, src)
	streams := fillDeployment(t, e)
	srcEpoch := e.m.Store().Epoch()
	wantStates := map[string]string{}
	for _, s := range streams {
		wantStates[s] = stateWithoutEpoch(t, e.state(s), srcEpoch)
	}
	if err := e.close(); err != nil {
		t.Fatal(err)
	}
	stored := readStore(t, src, "", 0)

	code, full, stderr := runCmd("export", "-data", src)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("no store in the schema", func(t *testing.T) {
		for _, args := range [][]string{{"import", "-store", pg, file}, {"export", "-store", pg}} {
			code, out, stderr := runCmd(args...)
			if code != 1 || out != "" || !strings.Contains(stderr, "no store in PostgreSQL schema") {
				t.Fatalf("%s: exit %d, stdout %q, stderr %q; want 1 and no store", args[0], code, out, stderr)
			}
		}
		if _, err := OpenExistingStore(Config{Store: pg}, slog.New(slog.DiscardHandler)); !errors.Is(err, pgstore.ErrNoStore) {
			t.Fatalf("OpenExistingStore: %v, want pgstore.ErrNoStore", err)
		}
	})
	t.Run("import -create", func(t *testing.T) {
		code, out, stderr := runCmd("import", "-create", "-store", pg, file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if want := fmt.Sprintf("imported %d events (0 already stored)\n", len(stored)); out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
	})
	t.Run("PostgreSQL holds the same log", func(t *testing.T) {
		store, err := OpenExistingStore(Config{Store: pg}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		got, err := store.ReadAll(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Same streams, versions, ids, types, times, data, meta and order;
		// the positions are the new store's own, gap-free from 1.
		if !sameEvents(got, stored, false) {
			t.Fatalf("PostgreSQL log (%d events) differs from the embedded one (%d events)", len(got), len(stored))
		}
		for i, ev := range got {
			if ev.Position != uint64(i+1) {
				t.Fatalf("event %d at position %d", i, ev.Position)
			}
		}
		for _, s := range streams {
			evs, err := store.ReadStream(t.Context(), s, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var want []events.Event
			for _, ev := range stored {
				if ev.Stream == s {
					want = append(want, ev)
				}
			}
			if len(want) == 0 || !sameEvents(evs, want, false) {
				t.Errorf("%s: %d events, want the %d of the embedded store", s, len(evs), len(want))
			}
		}
		// And the PostgreSQL store exports what was imported.
		code, again, stderr := runCmd("export", "-store", pg)
		if code != 0 {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		if !sameEvents(decodeAll(t, again), decodeAll(t, full), false) {
			t.Fatalf("re-export differs:\n%s\nwant:\n%s", again, full)
		}
	})
	t.Run("importing twice is a no-op", func(t *testing.T) {
		code, out, stderr := runCmd("import", "-store", pg, file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if want := fmt.Sprintf("imported 0 events (%d already stored)\n", len(stored)); out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
	})
	t.Run("an engine on PostgreSQL serves the same states", func(t *testing.T) {
		e2 := startEngine(t, t.TempDir(), func(m *Main) { m.Config.Store = pg })
		dstEpoch := e2.m.Store().Epoch()
		if dstEpoch == srcEpoch {
			t.Errorf("the imported store has the exporter's epoch %q", srcEpoch)
		}
		for _, s := range streams {
			if got := stateWithoutEpoch(t, e2.state(s), dstEpoch); got != wantStates[s] {
				t.Errorf("%s:\n%s\nwant:\n%s", s, got, wantStates[s])
			}
		}
		// It takes new commands on the imported streams.
		e2.command("room:lobby", "PostMessage", map[string]string{"user": "ann", "text": "moved"})
		if err := e2.close(); err != nil {
			t.Fatal(err)
		}
	})
}
