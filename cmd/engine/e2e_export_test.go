package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
)

// runCmd runs a subcommand in-process, with an empty environment.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	return code, out.String(), errb.String()
}

// decodeAll reads a JSON Lines export back with the events package.
func decodeAll(t *testing.T, jsonl string) []events.Event {
	t.Helper()
	dec := events.NewDecoder(strings.NewReader(jsonl))
	var evs []events.Event
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("export does not decode: %v", err)
		}
		evs = append(evs, ev)
	}
}

// readStore opens the store of a stopped engine and reads one stream
// (after a version) or, with stream "", the whole log.
func readStore(t *testing.T, dir, stream string, after uint64) []events.Event {
	t.Helper()
	store, err := OpenStore(Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	var evs []events.Event
	if stream == "" {
		evs, err = store.ReadAll(ctx, after, 0)
	} else {
		evs, err = store.ReadStream(ctx, stream, after, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// stateWithoutEpoch checks that a state carries epoch as its "epoch"
// member and returns the state without it.
func stateWithoutEpoch(t *testing.T, state []byte, epoch string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(state, &m); err != nil {
		t.Fatalf("state %s: %v", state, err)
	}
	if got := string(m["epoch"]); got != strconv.Quote(epoch) {
		t.Fatalf("state %s: want epoch %q", state, epoch)
	}
	delete(m, "epoch")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestE2EExportImport(t *testing.T) {
	src := t.TempDir()
	e := startEngine(t, src)
	streams := fillDeployment(t, e)
	wantStates := map[string]string{}
	srcEpoch := e.m.Store().Epoch()
	for _, s := range streams {
		wantStates[s] = stateWithoutEpoch(t, e.state(s), srcEpoch)
	}
	t.Run("export while the server runs", func(t *testing.T) {
		// The embedded store is locked by the server: a clean refusal,
		// not a hang or a second writer.
		code, out, stderr := runCmd("export", "-data", src)
		if code != 1 || out != "" || !strings.Contains(stderr, src) {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and an error naming the store", code, out, stderr)
		}
	})
	if err := e.close(); err != nil {
		t.Fatal(err)
	}
	stored := readStore(t, src, "", 0)

	code, full, stderr := runCmd("export", "-data", src)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	exported := decodeAll(t, full)
	t.Run("export is the store's log", func(t *testing.T) {
		if !sameEvents(exported, stored, true) {
			t.Fatalf("export (%d events) differs from the store (%d events):\n%s", len(exported), len(stored), full)
		}
		if want := fmt.Sprintf("engine export: %d events in ", len(stored)); !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "\r") {
			t.Errorf("stderr %q, want one summary line %q… and no progress line", stderr, want)
		}
	})
	t.Run("one stream from a version", func(t *testing.T) {
		code, out, stderr := runCmd("export", "-data", src, "-stream", "room:lobby", "-from", "2")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		got := decodeAll(t, out)
		if !sameEvents(got, readStore(t, src, "room:lobby", 2), true) || len(got) != 2 || got[0].Version != 3 {
			t.Fatalf("export -stream room:lobby -from 2:\n%s", out)
		}
	})
	t.Run("bad stream", func(t *testing.T) {
		if code, _, stderr := runCmd("export", "-data", src, "-stream", "nope"); code != 2 || stderr == "" {
			t.Fatalf("exit %d, stderr %q; want 2 and a message", code, stderr)
		}
	})

	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	t.Run("import into a fresh store", func(t *testing.T) {
		code, out, stderr := runCmd("import", "-create", "-data", dst, file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if want := fmt.Sprintf("imported %d events (0 already stored)\n", len(stored)); out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
		code, again, stderr := runCmd("export", "-data", dst)
		if code != 0 {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		// Same streams, versions, ids, types, times, data and meta; the
		// positions are the new store's own.
		if !sameEvents(decodeAll(t, again), exported, false) {
			t.Fatalf("re-export differs:\n%s\nwant:\n%s", again, full)
		}
	})
	t.Run("importing twice is a no-op", func(t *testing.T) {
		before := readStore(t, dst, "", 0)
		code, out, stderr := runCmd("import", "-data", dst, file)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if want := fmt.Sprintf("imported 0 events (%d already stored)\n", len(stored)); out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
		if after := readStore(t, dst, "", 0); !sameEvents(after, before, true) {
			t.Fatalf("the second import changed the store: %d events before, %d after", len(before), len(after))
		}
	})
	t.Run("the imported store serves the same states", func(t *testing.T) {
		e2 := startEngine(t, dst)
		// The states are the same but for the epoch: the imported store
		// is new data with an epoch of its own.
		dstEpoch := e2.m.Store().Epoch()
		if dstEpoch == srcEpoch {
			t.Errorf("the imported store has the exporter's epoch %q", srcEpoch)
		}
		for _, s := range streams {
			if got := stateWithoutEpoch(t, e2.state(s), dstEpoch); got != wantStates[s] {
				t.Errorf("%s:\n%s\nwant:\n%s", s, got, wantStates[s])
			}
		}
	})

	t.Run("broken logs fail naming the line", func(t *testing.T) {
		// The export with room:lobby's version 2 left out: version 3 then
		// does not continue the stream.
		var kept []string
		gapLine := 0
		for l := range strings.SplitSeq(strings.TrimSuffix(full, "\n"), "\n") {
			ev, err := events.DecodeEnvelope([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Stream == "room:lobby" && ev.Version == 2 {
				continue
			}
			kept = append(kept, l)
			if ev.Stream == "room:lobby" && ev.Version == 3 {
				gapLine = len(kept)
			}
		}
		gapFile := filepath.Join(t.TempDir(), "gap.jsonl")
		if err := os.WriteFile(gapFile, []byte(strings.Join(kept, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, file string
			line       int
		}{
			{"version gap in an export", gapFile, gapLine},
			{"testdata version gap", filepath.Join(testdata, "broken", "version_gap.jsonl"), 4},
			{"testdata malformed line", filepath.Join(testdata, "broken", "malformed_line.jsonl"), -1},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, out, stderr := runCmd("import", "-create", "-data", t.TempDir(), tc.file)
				if code != 1 {
					t.Fatalf("exit %d (stdout %q), want 1", code, out)
				}
				want := tc.file + ": line "
				if tc.line > 0 {
					want = fmt.Sprintf("%s: line %d:", tc.file, tc.line)
				}
				if !strings.Contains(stderr, want) {
					t.Fatalf("stderr %q does not name %q", stderr, want)
				}
			})
		}
	})
}

// fillDeployment gives a running engine what a deployment holds: rooms,
// a finished game, a user and an order whose background steps are all
// done. It returns the streams written.
func fillDeployment(t *testing.T, e *engine) []string {
	t.Helper()
	for i := 1; i <= 4; i++ {
		e.command("room:lobby", "PostMessage", map[string]string{"user": "ann", "text": fmt.Sprintf("hi %d, \"quoted\" <html> é", i)})
	}
	e.command("game:main", "UpdateScore", map[string]any{"team": "home", "score": 1})
	e.command("game:main", "UpdateScore", map[string]any{"team": "away", "score": 2})
	e.command("room:other", "PostMessage", map[string]string{"user": "bob", "text": "elsewhere"})
	e.command("game:main", "EndGame", map[string]any{})
	r := e.do("POST", "/signup", []byte(`{"email":"dan@example.com","name":"Dan"}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("signup: %s", r)
	}
	var su struct{ User string }
	if err := json.Unmarshal(r.body, &su); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/orders", []byte(`{"items":[{"name":"tea","qty":1}],"email":"dan@example.com"}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %s", r)
	}
	var ord struct{ Order string }
	if err := json.Unmarshal(r.body, &ord); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every background step done", func() (bool, error) {
		p, err := e.m.Store().Pending(context.Background())
		return len(p) == 0, err
	})
	return []string{"room:lobby", "room:other", "game:main", su.User, ord.Order, "kitchen:main"}
}
