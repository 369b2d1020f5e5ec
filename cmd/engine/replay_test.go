package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../testdata"

func TestReplayPrintsTheGoldenStates(t *testing.T) {
	logs, err := filepath.Glob(filepath.Join(testdata, "*.jsonl"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no testdata logs: %v", err)
	}
	var all []json.RawMessage // every golden state, file after file
	for _, log := range logs {
		want, err := os.ReadFile(strings.TrimSuffix(log, ".jsonl") + ".state.json")
		if err != nil {
			t.Fatal(err)
		}
		var states []json.RawMessage
		if err := json.Unmarshal(want, &states); err != nil {
			t.Fatalf("%s: %v", log, err)
		}
		all = append(all, states...)
		t.Run(filepath.Base(log), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runReplay([]string{log}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("output differs from the golden state of %s", log)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
	t.Run("every file: one array in argument order", func(t *testing.T) {
		if len(logs) < 2 {
			t.Fatalf("want two logs or more, have %v", logs)
		}
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"replay"}, logs...), func(string) string { return "" }, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		got := oneJSONArray(t, stdout.Bytes())
		if len(got) != len(all) {
			t.Fatalf("%d states, want %d (the goldens' states one file after another)", len(got), len(all))
		}
		for i := range got {
			if !jsonEqual(t, string(got[i]), string(all[i])) {
				t.Errorf("state %d:\n%s\nwant:\n%s", i, got[i], all[i])
			}
		}
	})
}

// oneJSONArray checks that b is exactly one JSON value, an array, and
// returns its elements.
func oneJSONArray(t *testing.T, b []byte) []json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	var arr []json.RawMessage
	if err := dec.Decode(&arr); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%.300s", err, b)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("output holds more than one JSON value (next token: %v)", err)
	}
	return arr
}

func TestReplayFailures(t *testing.T) {
	good := filepath.Join(testdata, "game.jsonl")
	gap := filepath.Join(testdata, "broken", "version_gap.jsonl")
	tests := []struct {
		name       string
		args       []string
		code       int
		stderr     string // a part of stderr
		wantStdout bool
	}{
		{name: "version gap", args: []string{gap}, code: 1, stderr: gap + ": line 4: broken log: room:lobby: version 4 after 2 (a gap)"},
		{name: "unknown event", args: []string{filepath.Join(testdata, "broken", "unknown_event_type.jsonl")}, code: 1, stderr: "unknown_event_type.jsonl: line 3: room:lobby version 3: room: unknown event type \"MessageDeleted\""},
		{name: "malformed", args: []string{filepath.Join(testdata, "broken", "malformed_line.jsonl")}, code: 1, stderr: "malformed_line.jsonl: line 3: bad envelope"},
		{name: "good file then broken one", args: []string{good, gap}, code: 1, stderr: gap + ": line 4:"},
		{name: "missing file", args: []string{filepath.Join(testdata, "nope.jsonl")}, code: 1, stderr: "nope.jsonl: no such file"},
		{name: "no file", args: nil, code: 2, stderr: "Usage: engine replay"},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Usage: engine replay"},
		{name: "unknown flag", args: []string{"-x"}, code: 2, stderr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runReplay(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d (stderr: %s)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr = %q, want it to hold %q", stderr.String(), tt.stderr)
			}
			if (stdout.Len() > 0) != tt.wantStdout {
				t.Errorf("stdout = %.200q", stdout.String())
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("engine -h: exit %d: %s", code, stderr.String())
	}
	var cfg Config
	for _, s := range cfg.settings() {
		for _, want := range []string{"-" + s.flag, s.env} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("engine -h does not mention %s", want)
			}
		}
	}
	for _, sub := range []string{"replay", "export", "import"} {
		if !strings.Contains(stderr.String(), sub) {
			t.Errorf("engine -h does not mention the %s subcommand", sub)
		}
	}
}

func TestBadSettingsExit2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown flag", []string{"-nope"}, nil},
		{"bad duration flag", []string{"-cook-time", "soon"}, nil},
		{"bad duration env", nil, map[string]string{"ENGINE_IDLE_TIMEOUT": "-1s"}},
		{"stray argument", []string{"serve-please"}, nil},
		{"bad log format", []string{"-log-format", "xml"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			if code := run(context.Background(), tc.args, getenv, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
		})
	}
}
