package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressInterval is how often the progress line is rewritten.
const progressInterval = 250 * time.Millisecond

// progress reports a long export or import on stderr. When stderr is a
// terminal it keeps one line up to date, rewritten in place at most every
// progressInterval:
//
//	engine export: 120000 events, 48000 events/s, 37%
//
// (the percent only when the total is known). finish ends with a summary
// line, on a terminal or not:
//
//	engine export: 1234567 events in 25.7s (48038 events/s)
//
// When stderr is not a terminal (a pipe, a file, a test's buffer) the
// summary is all it writes.
type progress struct {
	w     io.Writer
	name  string // "engine export"
	live  bool   // w is a terminal: show the progress line
	now   func() time.Time
	start time.Time
	shown time.Time // when the line was last written
	width int       // of the line on screen, 0 when none

	events      int64
	done, total int64 // how far, of total, for the percent; total 0: unknown
}

func newProgress(w io.Writer, name string) *progress {
	p := &progress{w: w, name: name, live: isTerminal(w), now: time.Now}
	p.start = p.now()
	p.shown = p.start
	return p
}

// isTerminal reports whether w is a character device: a terminal (or
// /dev/null, where the progress line is harmless).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// add counts n more events and records how far the work is (done of the
// total given to setTotal), and rewrites the line when it is time.
func (p *progress) add(n int, done int64) {
	p.events += int64(n)
	p.done = done
	if !p.live {
		return
	}
	if now := p.now(); now.Sub(p.shown) >= progressInterval {
		p.shown = now
		line := fmt.Sprintf("%s: %d events, %.0f events/s", p.name, p.events, p.rate(now))
		if p.total > 0 {
			line += fmt.Sprintf(", %d%%", min(100, p.done*100/p.total))
		}
		p.show(line)
	}
}

// setTotal gives the size of the work, in the unit of add's done.
func (p *progress) setTotal(total int64) { p.total = total }

// rate is events per second since the start.
func (p *progress) rate(now time.Time) float64 {
	d := now.Sub(p.start)
	if d <= 0 {
		return 0
	}
	return float64(p.events) / d.Seconds()
}

// show writes line over the one on screen.
func (p *progress) show(line string) {
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width = len(line)
}

// clear blanks the progress line, if one is shown, so that an error
// message starts on a clean line.
func (p *progress) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// finish replaces the progress line with the summary.
func (p *progress) finish() {
	now := p.now()
	p.clear()
	fmt.Fprintf(p.w, "%s: %d events in %s (%.0f events/s)\n", p.name, p.events, roundDuration(now.Sub(p.start)), p.rate(now))
}

// roundDuration keeps three or so significant digits: 25.7s, 312ms.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// countingReader counts the bytes read through it: how far an import is
// in its file.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
