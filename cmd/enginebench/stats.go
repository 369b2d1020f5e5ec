package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Latency summarises samples in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summarize sorts samples (nanoseconds) in place and takes nearest-rank
// percentiles.
func summarize(samples []int64) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	rank := func(q float64) float64 {
		i := int(q*float64(len(samples))+0.999999999) - 1
		i = max(0, min(i, len(samples)-1))
		return float64(samples[i]) / 1e6
	}
	return Latency{Count: len(samples), P50: rank(0.50), P99: rank(0.99), Max: float64(samples[len(samples)-1]) / 1e6}
}

// CPU is the CPU time spent over the measured window.
type CPU struct {
	WindowSeconds float64 `json:"window_seconds"`
	// Server is the sum over -cpu-pid; absent without it.
	ServerSeconds   *float64           `json:"server_seconds,omitempty"`
	ServerByPID     map[string]float64 `json:"server_seconds_by_pid,omitempty"`
	ServerMicrosPer *float64           `json:"server_us_per_op,omitempty"`
	ClientSeconds   float64            `json:"client_seconds"`
	ClientMicrosPer float64            `json:"client_us_per_op"`
}

// cpuMark is a reading of the servers' and this process's CPU time.
type cpuMark struct {
	at     time.Time
	server map[int]time.Duration
	client time.Duration
}

func markCPU(pids []int) cpuMark {
	m := cpuMark{at: time.Now(), client: selfCPU()}
	if len(pids) > 0 {
		m.server = make(map[int]time.Duration, len(pids))
		for _, p := range pids {
			d, err := readProcCPU(p)
			if err != nil {
				d = -1 // the process is gone: reported as missing
			}
			m.server[p] = d
		}
	}
	return m
}

// cpuBetween reports the CPU spent from a to b, per op of ops.
func cpuBetween(a, b cpuMark, ops int64) *CPU {
	c := &CPU{WindowSeconds: b.at.Sub(a.at).Seconds(), ClientSeconds: (b.client - a.client).Seconds()}
	per := func(s float64) float64 {
		if ops == 0 {
			return 0
		}
		return s * 1e6 / float64(ops)
	}
	c.ClientMicrosPer = per(c.ClientSeconds)
	if a.server != nil {
		total := 0.0
		c.ServerByPID = make(map[string]float64)
		for p, before := range a.server {
			after := b.server[p]
			if before < 0 || after < 0 {
				continue
			}
			s := (after - before).Seconds()
			c.ServerByPID[strconv.Itoa(p)] = s
			total += s
		}
		us := per(total)
		c.ServerSeconds, c.ServerMicrosPer = &total, &us
	}
	return c
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// readProcCPU returns utime+stime of a process.
func readProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. utime and stime are fields 14, 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// table prints rows of label, value.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer) *table { return &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)} }

func (t *table) row(label string, format string, args ...any) {
	fmt.Fprintf(t.tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
}

func (t *table) latency(label string, l Latency) {
	t.row(label, "p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)", l.P50, l.P99, l.Max, l.Count)
}

func (t *table) cpu(c *CPU, per string) {
	if c == nil {
		return
	}
	if c.ServerSeconds != nil {
		t.row("server CPU", "%.2f s over %.1f s  (%.1f µs per %s)", *c.ServerSeconds, c.WindowSeconds, *c.ServerMicrosPer, per)
	}
	t.row("client CPU", "%.2f s over %.1f s  (%.1f µs per %s)", c.ClientSeconds, c.WindowSeconds, c.ClientMicrosPer, per)
}

func (t *table) flush() { _ = t.tw.Flush() }

// codes formats error counts by code, sorted.
func codes(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
