package actors_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// replayTally is a tiny kind for the replay tests: "Added" {n} adds n to a
// total; n < 0 makes Evolve panic, to test that a replay survives it.
type replayTally struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Total   int    `json:"total"`
	Note    string `json:"note,omitempty"`
}

func replayTallyKind() decider.Kind {
	return decider.New(decider.Decider[replayTally]{
		Name:    "tally",
		Initial: func(stream string) replayTally { return replayTally{Stream: stream} },
		Decide: func(replayTally, decider.Command) ([]events.Event, error) {
			return nil, decider.ErrUnknownCommand
		},
		Evolve: func(s replayTally, e events.Event) (replayTally, error) {
			if e.Type != "Added" {
				return s, fmt.Errorf("tally: %w %q", decider.ErrUnknownEvent, e.Type)
			}
			var d struct {
				N    int
				Note string
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return s, fmt.Errorf("tally: %w: %v", events.ErrInvalidEvent, err)
			}
			if d.N < 0 {
				panic("negative")
			}
			s.Stream, s.Version, s.Total = e.Stream, e.Version, s.Total+d.N
			if d.Note != "" {
				s.Note = d.Note
			}
			return s, nil
		},
	})
}

func replayLookup() func(string) (decider.Kind, bool) {
	k := replayTallyKind()
	return func(name string) (decider.Kind, bool) { return k, name == k.Name() }
}

// replayLine is one envelope of a test log.
func replayLine(stream string, version, position uint64, n int) string {
	return fmt.Sprintf(`{"stream":%q,"version":%d,"position":%d,"id":"%s-%d","type":"Added","time":"2026-11-25T16:37:55.123Z","data":{"n":%d}}`,
		stream, version, position, stream, version, n)
}

func TestReplayFoldsEveryStreamInOrderOfAppearance(t *testing.T) {
	log := strings.Join([]string{
		replayLine("tally:b", 1, 1, 10),
		replayLine("tally:a", 1, 2, 1),
		"",
		replayLine("tally:b", 2, 3, 20),
		replayLine("tally:a", 2, 4, 2),
		replayLine("tally:a", 3, 5, 3),
	}, "\n")
	got, err := actors.Replay(replayLookup(), strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	var sum []string
	for _, s := range got {
		st := s.State.(replayTally)
		sum = append(sum, fmt.Sprintf("%s@%d=%d", s.Stream, s.Version, st.Total))
		if s.Kind.Name() != "tally" || st.Version != s.Version || st.Stream != s.Stream {
			t.Errorf("stream %+v", s)
		}
	}
	if strings.Join(sum, " ") != "tally:b@2=30 tally:a@3=6" {
		t.Errorf("states = %v", sum)
	}

	js, err := actors.StatesJSON(got)
	if err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "stream": "tally:b",
    "version": 2,
    "total": 30
  },
  {
    "stream": "tally:a",
    "version": 3,
    "total": 6
  }
]
`
	if string(js) != want {
		t.Errorf("StatesJSON = %s\nwant %s", js, want)
	}
	if js, _ := actors.StatesJSON(nil); string(js) != "[]\n" {
		t.Errorf("StatesJSON(nil) = %q", js)
	}
}

func TestReplayRejectsBrokenLogs(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		line  int   // the line the error must name
		is    error // what it must match, when anything in particular
	}{
		{name: "first version is not 1", lines: []string{replayLine("tally:a", 2, 1, 1)}, line: 1, is: actors.ErrBrokenLog},
		{name: "gap", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:a", 2, 2, 1), replayLine("tally:a", 4, 3, 1)}, line: 3, is: actors.ErrBrokenLog},
		{name: "repeated version", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:a", 2, 2, 1), replayLine("tally:a", 2, 3, 1)}, line: 3, is: actors.ErrBrokenLog},
		{name: "version goes back", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:a", 2, 2, 1), replayLine("tally:a", 3, 3, 1), replayLine("tally:a", 1, 4, 1)}, line: 4, is: actors.ErrBrokenLog},
		{name: "gap in the second stream", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:b", 1, 2, 1), replayLine("tally:a", 2, 3, 1), replayLine("tally:b", 3, 4, 1)}, line: 4, is: actors.ErrBrokenLog},
		{name: "position goes back", lines: []string{replayLine("tally:a", 1, 5, 1), replayLine("tally:b", 1, 4, 1)}, line: 2, is: actors.ErrBrokenLog},
		{name: "position repeats", lines: []string{replayLine("tally:a", 1, 5, 1), replayLine("tally:b", 1, 5, 1)}, line: 2, is: actors.ErrBrokenLog},
		{name: "unknown kind", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("chat:a", 1, 2, 1)}, line: 2, is: actors.ErrUnknownKind},
		{name: "bad stream id", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:a b", 1, 2, 1)}, line: 2, is: events.ErrInvalidStream},
		{name: "unknown event type", lines: []string{replayLine("tally:a", 1, 1, 1), strings.Replace(replayLine("tally:a", 2, 2, 1), `"Added"`, `"Removed"`, 1)}, line: 2, is: decider.ErrUnknownEvent},
		{name: "bad data", lines: []string{replayLine("tally:a", 1, 1, 1), strings.Replace(replayLine("tally:a", 2, 2, 1), `{"n":1}`, `{"n":"x"}`, 1)}, line: 2, is: events.ErrInvalidEvent},
		{name: "Evolve panics", lines: []string{replayLine("tally:a", 1, 1, 1), replayLine("tally:a", 2, 2, -1)}, line: 2},
		{name: "malformed line", lines: []string{replayLine("tally:a", 1, 1, 1), `{"stream":"tally:a","version":2,`}, line: 2},
		{name: "unknown envelope field", lines: []string{replayLine("tally:a", 1, 1, 1), strings.Replace(replayLine("tally:a", 2, 2, 1), `{"stream"`, `{"color":"red","stream"`, 1)}, line: 2},
		{name: "blank lines count", lines: []string{replayLine("tally:a", 1, 1, 1), "", "  ", replayLine("tally:a", 3, 2, 1)}, line: 4, is: actors.ErrBrokenLog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := actors.Replay(replayLookup(), strings.NewReader(strings.Join(tt.lines, "\n")+"\n"))
			var le *events.LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *events.LineError", err)
			}
			if le.Line != tt.line {
				t.Errorf("error names line %d, want %d: %v", le.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tt.line)) {
				t.Errorf("message does not name the line: %v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to match %v", err, tt.is)
			}
		})
	}
}

func TestReplayRestoreFromSnapshot(t *testing.T) {
	k := replayTallyKind()
	r := actors.NewReplayer(replayLookup())
	snap, err := k.MarshalState(replayTally{Stream: "tally:a", Version: 2, Total: 40})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(events.Snapshot{Stream: "tally:a", Version: 2, Data: snap}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(events.Event{Stream: "tally:a", Version: 2, Type: "Added", Data: json.RawMessage(`{"n":1}`)}); !errors.Is(err, actors.ErrBrokenLog) {
		t.Errorf("version 2 after a snapshot at 2: err = %v", err)
	}
	if err := r.Apply(events.Event{Stream: "tally:a", Version: 3, Type: "Added", Data: json.RawMessage(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	got := r.Streams()
	if len(got) != 1 || got[0].Version != 3 || got[0].State.(replayTally).Total != 42 {
		t.Errorf("streams = %+v", got)
	}

	bad := []struct {
		name string
		snap events.Snapshot
	}{
		{"stream seen already", events.Snapshot{Stream: "tally:a", Version: 1, Data: snap}},
		{"unknown kind", events.Snapshot{Stream: "chat:a", Version: 1, Data: snap}},
		{"bad stream", events.Snapshot{Stream: "tally", Version: 1, Data: snap}},
		{"bad data", events.Snapshot{Stream: "tally:b", Version: 1, Data: []byte(`[`)}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Restore(tt.snap); err == nil {
				t.Error("Restore succeeded")
			}
		})
	}
}

func TestReplayFileNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.jsonl")
	log := replayLine("tally:a", 1, 1, 1) + "\n" + replayLine("tally:a", 3, 2, 1) + "\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := actors.ReplayFile(replayLookup(), path)
	if err == nil || !strings.Contains(err.Error(), path+": line 2:") {
		t.Errorf("err = %v", err)
	}
	if _, err := actors.ReplayFile(replayLookup(), filepath.Join(dir, "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestStatesJSONKeepsHTMLReadable(t *testing.T) {
	// The note holds tags, an ampersand and, literally, a backslash
	// followed by "u003c", which must stay escaped as it is.
	ev := events.Event{Stream: "tally:a", Version: 1, Type: "Added",
		Data: json.RawMessage(`{"n":1,"note":"<b>a & b</b> \\u003c"}`)}
	r := actors.NewReplayer(replayLookup())
	if err := r.Apply(ev); err != nil {
		t.Fatal(err)
	}
	js, err := actors.StatesJSON(r.Streams())
	if err != nil {
		t.Fatal(err)
	}
	if want := `"note": "<b>a & b</b> \\u003c"`; !strings.Contains(string(js), want) {
		t.Errorf("StatesJSON = %s, want it to hold %s", js, want)
	}
	var back []replayTally
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back[0].Note != `<b>a & b</b> \u003c` {
		t.Errorf("note reads back as %q", back[0].Note)
	}
}
