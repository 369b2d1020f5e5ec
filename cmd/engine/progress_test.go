package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step at every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func TestProgressOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, name: "engine import", live: true, now: fakeClock(100 * time.Millisecond)}
	p.start = p.now()
	p.shown = p.start
	p.setTotal(1000)
	for i := 1; i <= 10; i++ {
		p.add(100, int64(i*100))
	}
	p.finish()
	out := buf.String()
	// Every 100 ms of fake time, rewritten every 250 ms or so: lines at
	// 300, 600 and 900 events (3, 6 and 9 clock readings after the start).
	for _, want := range []string{
		"\rengine import: 300 events, 1000 events/s, 30%",
		"\rengine import: 600 events, 1000 events/s, 60%",
		"\rengine import: 900 events, 1000 events/s, 90%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
	// The summary replaces the progress line: blanks, then the summary.
	last := out[strings.LastIndex(out, "\r")+1:]
	if want := "engine import: 1000 events in 1.1s (909 events/s)\n"; last != want {
		t.Errorf("summary %q, want %q", last, want)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("more than one line ends: %q", out)
	}
}

func TestProgressUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, name: "engine import", live: true, now: fakeClock(time.Second)}
	p.start = p.now()
	p.shown = p.start
	p.add(5, 0)
	if got := buf.String(); got != "\rengine import: 5 events, 5 events/s" {
		t.Errorf("progress line %q", got)
	}
	p.clear()
	if got := buf.String(); !strings.HasSuffix(got, "\r"+strings.Repeat(" ", 35)+"\r") {
		t.Errorf("clear left %q", got)
	}
}

func TestProgressNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "engine export")
	if p.live {
		t.Fatal("a buffer is taken for a terminal")
	}
	p.now = fakeClock(time.Second)
	p.start = p.now()
	for range 10 {
		p.add(1, 0)
	}
	p.finish()
	if got, want := buf.String(), "engine export: 10 events in 1s (10 events/s)\n"; got != want {
		t.Errorf("stderr %q, want only the summary %q", got, want)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is taken for a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is taken for a terminal")
	}
}
