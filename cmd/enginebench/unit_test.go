package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

func TestParseEvent(t *testing.T) {
	frame := `{"op":"event","stream":"room:r","version":42,"position":7,"id":"x","type":"MessagePosted","time":"2026-01-01T00:00:00.000Z","data":{"user":"bench","text":"ab12.123"},"meta":{}}`
	v, text, ok := parseEvent([]byte(frame))
	if !ok || v != 42 || string(text) != "ab12.123" {
		t.Errorf("parseEvent = %d %q %v, want 42 ab12.123 true", v, text, ok)
	}
	for _, f := range []string{`{"op":"ack","stream":"room:r","version":3,"ref":"1"}`, `{"op":"subscribed","version":0}`, `{"op":"event","stream":"room:r"}`} {
		if _, _, ok := parseEvent([]byte(f)); ok {
			t.Errorf("parseEvent(%s) ok, want a fallback to JSON", f)
		}
	}
	// An escaped text is not read as ours.
	if _, text, ok := parseEvent([]byte(`{"op":"event","version":1,"data":{"text":"a\"b"}}`)); !ok || text != nil {
		t.Errorf("escaped text: %q %v", text, ok)
	}
}

func TestSummarize(t *testing.T) {
	var s []int64
	for i := 100; i >= 1; i-- {
		s = append(s, int64(i)*int64(time.Millisecond))
	}
	l := summarize(s)
	if l.Count != 100 || l.P50 != 50 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarize = %+v, want p50 50 p99 99 max 100", l)
	}
	if l := summarize(nil); l != (Latency{}) {
		t.Errorf("summarize(nil) = %+v", l)
	}
}

func TestReadProcCPU(t *testing.T) {
	before, err := readProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick counter moves: a loop on a
	// condition, not a fixed sleep.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		after, err := readProcCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
		for i := 0; i < 1e6; i++ {
			_ = strings.Repeat("x", i%8)
		}
	}
	t.Fatal("utime+stime did not move")
}

// A server refusing connections beyond its per-address limit: the error
// says so; with -source-ips the connections come from several addresses
// and all are accepted.
func TestConnectionLimitAndSourceIPs(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.MaxConnectionsPerIP = 5 })
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	_, err := RunFanout(ctx, FanoutConfig{Targets: []string{h.Base}, Subs: 8, Rate: 100, Count: 2})
	if err == nil || !strings.Contains(err.Error(), "max-connections-per-ip") {
		t.Fatalf("err = %v, want the connection-limit hint", err)
	}
	d, err := newDialer([]string{"127.0.0.2", "127.0.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunFanout(ctx, FanoutConfig{Targets: []string{h.Base}, Subs: 8, Rate: 100, Count: 2, Drain: 10 * time.Second, dialer: d})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 16 || res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("received %d lost %d duplicates %d, want 16 0 0", res.Received, res.Lost, res.Duplicates)
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		frame string
		want  reply
	}{
		{`{"op":"ack","stream":"room:a-1","version":17,"ref":"42"}`, reply{Op: "ack", Stream: "room:a-1", Version: 17, Ref: "42"}},
		{`{"op":"ack","ref":"42","version":17,"stream":"room:a-1"}`, reply{Op: "ack", Stream: "room:a-1", Version: 17, Ref: "42"}},
		{`{"op":"ack","stream":"room:a","version":1,"ref":"a\"b"}`, reply{Op: "ack", Stream: "room:a", Version: 1, Ref: `a"b`}},
		{`{"op":"error","ref":"3","code":"bad_request","message":"text must be 1-4096 characters"}`, reply{Op: "error", Ref: "3", Code: "bad_request", Message: "text must be 1-4096 characters"}},
		{`{"op":"subscribed","stream":"room:a","version":0,"epoch":"e","ref":"s"}`, reply{Op: "subscribed", Stream: "room:a", Ref: "s"}},
	} {
		got, err := parseReply([]byte(tc.frame))
		if err != nil || got != tc.want {
			t.Errorf("parseReply(%s) = %+v, %v; want %+v", tc.frame, got, err, tc.want)
		}
	}
}

func TestParseRSSAndGoStats(t *testing.T) {
	if n, err := parseRSS([]byte("Name:\tengine\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\n"), 1); err != nil || n != 12345 {
		t.Errorf("parseRSS: %d, %v", n, err)
	}
	if _, err := parseRSS([]byte("Name:\tengine\n"), 1); err == nil {
		t.Error("parseRSS without VmRSS: no error")
	}
	s, err := parseGoStats([]byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_memstats_heap_inuse_bytes 2.097152e+06\n"))
	if err != nil || s.Goroutines != 42 || s.HeapInuseMiB != 2 {
		t.Errorf("parseGoStats: %+v, %v", s, err)
	}
	if _, err := parseGoStats([]byte("go_goroutines 42\n")); err == nil {
		t.Error("parseGoStats without the heap: no error")
	}
}
