package kinds_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
)

var (
	update = flag.Bool("update", false, "rewrite testdata/*.state.json from the logs")
	gen    = flag.Bool("gen", false, "rewrite testdata/*.jsonl from the scenarios")
)

const testdata = "../../testdata"

// logs lists the recorded logs, sorted.
func logs(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(testdata, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/*.jsonl")
	}
	sort.Strings(paths)
	return paths
}

func goldenPath(log string) string {
	return strings.TrimSuffix(log, ".jsonl") + ".state.json"
}

// TestTestdataLogs checks that every committed log is exactly what its
// scenario records through the kinds' own Decide, Steps and Complete; with
// -gen it writes them.
func TestTestdataLogs(t *testing.T) {
	for name, scenario := range scenarios {
		t.Run(name, func(t *testing.T) {
			got := scenario(t).jsonl()
			path := filepath.Join(testdata, name+".jsonl")
			if *gen {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -gen to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is not what the scenario records now: first difference at line %d (run with -gen to rewrite, then -update)", path, firstDiffLine(got, want))
			}
		})
	}
}

func firstDiffLine(a, b []byte) int {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestGolden folds every testdata/*.jsonl through actors.Replay with the
// registry and compares the states with testdata/NAME.state.json; with
// -update it writes them.
func TestGolden(t *testing.T) {
	for _, path := range logs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			streams, err := actors.ReplayFile(kinds.ByName, path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := actors.StatesJSON(streams)
			if err != nil {
				t.Fatal(err)
			}
			golden := goldenPath(path)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("replay of %s differs from %s at line %d (run with -update if the change is intended)", path, golden, firstDiffLine(got, want))
			}
		})
	}
}

var msTime = regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

// TestLogsAreWellFormed checks what the protocol says of an exported log,
// beyond what a replay checks: positions 1, 2, 3 … across the file, unique
// ids, times in UTC with milliseconds.
func TestLogsAreWellFormed(t *testing.T) {
	for _, path := range logs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dec := events.NewDecoder(bytes.NewReader(raw))
			ids := map[string]bool{}
			var n uint64
			for {
				ev, err := dec.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
				if ev.Position != n {
					t.Fatalf("line %d: position %d, want %d", dec.Line(), ev.Position, n)
				}
				if ids[ev.ID] {
					t.Fatalf("line %d: id %s used twice", dec.Line(), ev.ID)
				}
				ids[ev.ID] = true
				if ev.Time.IsZero() || ev.Time.Location() != ev.Time.UTC().Location() {
					t.Fatalf("line %d: time %v", dec.Line(), ev.Time)
				}
				if err := ev.Validate(); err != nil {
					t.Fatalf("line %d: %v", dec.Line(), err)
				}
			}
			lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
			for i, l := range lines {
				if !msTime.Match(l) {
					t.Fatalf("line %d: time is not RFC 3339 UTC with milliseconds", i+1)
				}
			}
			if n < 10 {
				t.Errorf("only %d events", n)
			}
		})
	}
}

// TestBrokenLogs replays each log of testdata/broken and checks that it
// fails on the expected line, for the expected reason.
func TestBrokenLogs(t *testing.T) {
	tests := []struct {
		file string
		line int
		is   error // nil: a decoding error, which names no sentinel
	}{
		{"version_gap.jsonl", 4, actors.ErrBrokenLog},
		{"version_out_of_order.jsonl", 5, actors.ErrBrokenLog},
		{"version_repeated.jsonl", 3, actors.ErrBrokenLog},
		{"first_version_not_1.jsonl", 2, actors.ErrBrokenLog},
		{"position_backwards.jsonl", 3, actors.ErrBrokenLog},
		{"unknown_event_type.jsonl", 3, decider.ErrUnknownEvent},
		{"unknown_kind.jsonl", 2, actors.ErrUnknownKind},
		{"malformed_line.jsonl", 3, nil},
		{"unknown_envelope_field.jsonl", 2, nil},
		{"unknown_data_field.jsonl", 3, events.ErrInvalidEvent},
		{"wrong_data_type.jsonl", 2, events.ErrInvalidEvent},
		{"bad_stream_id.jsonl", 2, events.ErrInvalidStream},
		{"missing_version.jsonl", 2, nil},
		{"impossible_transition.jsonl", 4, events.ErrInvalidEvent},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(testdata, "broken", tt.file)
			_, err := actors.ReplayFile(kinds.ByName, path)
			var le *events.LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *events.LineError", err)
			}
			if le.Line != tt.line {
				t.Errorf("error names line %d, want %d: %v", le.Line, tt.line, err)
			}
			if want := fmt.Sprintf("%s: line %d: ", path, tt.line); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to match %v", err, tt.is)
			}
		})
	}
	all, err := filepath.Glob(filepath.Join(testdata, "broken", "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if !seen[filepath.Base(p)] {
			t.Errorf("%s has no expectation in this test", p)
		}
	}
}

// TestSnapshotRoundTrip stops each golden replay part way, snapshots every
// stream through Kind.MarshalState, restores a new replay from the
// snapshots (Kind.UnmarshalState) and folds the rest: the final states must
// be those of the full replay.
func TestSnapshotRoundTrip(t *testing.T) {
	for _, path := range logs(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var evs []events.Event
		dec := events.NewDecoder(bytes.NewReader(raw))
		for {
			ev, err := dec.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		full, err := actors.Replay(kinds.ByName, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		want, err := actors.StatesJSON(full)
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{1, len(evs) / 3, len(evs) / 2, len(evs) - 1, len(evs)} {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(path), cut), func(t *testing.T) {
				first := actors.NewReplayer(kinds.ByName)
				for _, ev := range evs[:cut] {
					if err := first.Apply(ev); err != nil {
						t.Fatal(err)
					}
				}
				second := actors.NewReplayer(kinds.ByName)
				for _, s := range first.Streams() {
					data, err := s.Kind.MarshalState(s.State)
					if err != nil {
						t.Fatal(err)
					}
					if err := second.Restore(events.Snapshot{Stream: s.Stream, Version: s.Version, Data: data}); err != nil {
						t.Fatal(err)
					}
				}
				for _, ev := range evs[cut:] {
					if err := second.Apply(ev); err != nil {
						t.Fatalf("after the snapshot: %v", err)
					}
				}
				got, err := actors.StatesJSON(second.Streams())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("states differ from the full replay at line %d", firstDiffLine(got, want))
				}
			})
		}
	}
}
