package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/transport/transporttest"
)

// The scenarios against a real transport.Server (seed routes, the actor
// runtime, an in-memory store) on a real listener, at tiny sizes: the
// figures must be sane, not fast.

func TestCommandsSmoke(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunCommands(ctx, CommandsConfig{
		Targets: []string{h.Base}, Conns: 2, Inflight: 2, Streams: 3,
		Duration: time.Second, Drain: 5 * time.Second, TextLen: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Acks <= 0 || res.AcksPerSec <= 0 {
		t.Errorf("acks %d (%.0f/s), want > 0", res.Acks, res.AcksPerSec)
	}
	if res.Errors != 0 || len(res.ErrorCodes) != 0 {
		t.Errorf("errors %d %v, want none", res.Errors, res.ErrorCodes)
	}
	if res.Unanswered != 0 || res.UnknownReplies != 0 || res.DuplicateVersions != 0 || len(res.ConnErrors) != 0 {
		t.Errorf("unanswered %d, unknown %d, duplicate versions %d, conn errors %v: want none",
			res.Unanswered, res.UnknownReplies, res.DuplicateVersions, res.ConnErrors)
	}
	if res.AcksTotal != res.Sent || res.Acks > res.AcksTotal {
		t.Errorf("acks %d in window, %d in all, %d sent: every command sent must be acked", res.Acks, res.AcksTotal, res.Sent)
	}
	if res.Latency.Count != int(res.Acks) || res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v for %d acks", res.Latency, res.Acks)
	}
	// The rooms hold exactly what was acked.
	var stored int64
	for i := range 3 {
		r := h.Do("GET", "/streams/"+streamName(res.Run, i), "")
		var st struct{ Version int64 }
		if err := json.Unmarshal(r.Body, &st); err != nil {
			t.Fatalf("state of stream %d: %d %s", i, r.Status, r.Body)
		}
		stored += st.Version
	}
	if stored != res.AcksTotal {
		t.Errorf("the rooms hold %d events, %d commands were acked", stored, res.AcksTotal)
	}
}

func TestFanoutSmoke(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunFanout(ctx, FanoutConfig{
		Targets: []string{h.Base}, Subs: 20, Rate: 100, Count: 20, Drain: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Expected != 400 || res.Received != 400 || res.Lost != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 || res.Foreign != 0 {
		t.Errorf("expected %d received %d lost %d duplicates %d out of order %d foreign %d: want 400 delivered, no loss",
			res.Expected, res.Received, res.Lost, res.Duplicates, res.OutOfOrder, res.Foreign)
	}
	if res.Published != 20 || res.PublishErrors != 0 || res.DrainTimedOut || len(res.SubErrors) != 0 {
		t.Errorf("published %d, errors %d, drain timed out %v, subscriber errors %v", res.Published, res.PublishErrors, res.DrainTimedOut, res.SubErrors)
	}
	if res.Latency.Count != 400 || res.Latency.P50 <= 0 || res.DeliveriesPerSec <= 0 {
		t.Errorf("latency %+v, deliveries/s %.0f", res.Latency, res.DeliveriesPerSec)
	}
	// The room holds exactly the 20 messages.
	r := h.Do("GET", "/streams/"+res.Stream, "")
	var st struct{ Version int }
	if err := json.Unmarshal(r.Body, &st); err != nil || st.Version != 20 {
		t.Errorf("room state %d %s: want version 20", r.Status, r.Body)
	}
}

// The command line: flags, the table on stdout, the JSON file, progress
// lines on stderr.
func TestCLI(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	file := filepath.Join(t.TempDir(), "out.json")
	var out, errw bytes.Buffer
	code := run(ctx, []string{"commands", "-targets", h.Base, "-conns", "1", "-inflight", "1", "-streams", "1",
		"-warmup", "0s", "-duration", "1500ms", "-json", file, "-cpu-pid", strconv.Itoa(os.Getpid())}, &out, &errw)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
	if !strings.Contains(out.String(), "acks/s") || !strings.Contains(out.String(), "server CPU") {
		t.Errorf("table:\n%s", out.String())
	}
	if !strings.Contains(errw.String(), "answered=") {
		t.Errorf("no progress line on stderr:\n%s", errw.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JSON: %v: %s", err, b)
	}
	if m["scenario"] != "commands" || m["acks"].(float64) <= 0 {
		t.Errorf("JSON: %s", b)
	}
	cpu := m["cpu"].(map[string]any)
	if _, ok := cpu["server_seconds"]; !ok {
		t.Errorf("JSON without server CPU: %s", b)
	}

	for _, args := range [][]string{{"-h"}, {"commands", "-h"}, {"fanout", "-h"}, {"idle", "-h"}, {"catchup", "-h"}, {"seed", "-h"},
		{"naive", "-h"}, {"centrifugo-config", "-h"}, {"suite", "-h"}} {
		out.Reset()
		errw.Reset()
		if code := run(ctx, args, &out, &errw); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		if !strings.Contains(errw.String(), "Usage") {
			t.Errorf("%v: no usage:\n%s", args, errw.String())
		}
		if args[0] == "-h" {
			for _, sc := range scenarios {
				if !strings.Contains(errw.String(), "\n  "+sc.name+" ") {
					t.Errorf("-h does not list %s:\n%s", sc.name, errw.String())
				}
			}
		}
	}
	if code := run(ctx, []string{"nosuch"}, &out, &errw); code != 2 {
		t.Errorf("unknown scenario: exit %d, want 2", code)
	}
}

func TestIdleSmoke(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunIdle(ctx, IdleConfig{
		Targets: []string{h.Base}, Conns: 5, Streams: 2, Hold: 10 * time.Millisecond, CPUPIDs: []int{os.Getpid()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.ConnLatency.Count != 5 || res.OpenSeconds <= 0 || res.OpenPerConn <= 0 || res.ConnLatency.P50 <= 0 {
		t.Errorf("open %.3f s (%.3f ms/conn), latency %+v: want 5 samples", res.OpenSeconds, res.OpenPerConn, res.ConnLatency)
	}
	// The in-process server is this process: its RSS and /metrics are read.
	if res.RSSPID != os.Getpid() || res.RSSBeforeKiB == nil || *res.RSSBeforeKiB <= 0 || res.RSSAfterKiB == nil || res.RSSPerConn == nil {
		t.Errorf("RSS of pid %d: before %v after %v per conn %v", res.RSSPID, res.RSSBeforeKiB, res.RSSAfterKiB, res.RSSPerConn)
	}
	if res.GoBefore == nil || res.GoAfter == nil || res.GoroutinesPerConn == nil || res.HeapKiBPerConn == nil || res.MetricsError != "" {
		t.Fatalf("/metrics: before %v after %v (%s)", res.GoBefore, res.GoAfter, res.MetricsError)
	}
	// Five open connections hold at least one server goroutine each (and
	// the tool's own readers run in this process too).
	if res.GoAfter.Goroutines < res.GoBefore.Goroutines+5 || *res.GoroutinesPerConn < 1 {
		t.Errorf("goroutines %.0f → %.0f (%.2f per conn): want at least one more per connection",
			res.GoBefore.Goroutines, res.GoAfter.Goroutines, *res.GoroutinesPerConn)
	}
	if res.ClosedEarly != 0 || len(res.ConnErrors) != 0 {
		t.Errorf("closed early %d: %v", res.ClosedEarly, res.ConnErrors)
	}
}

func TestCatchupSmoke(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunCatchup(ctx, CatchupConfig{
		Targets: []string{h.Base}, Events: 200, Conns: 2, Inflight: 8, TextLen: 8, Timeout: transporttest.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.FillErrors != 0 || res.FillPerSec <= 0 {
		t.Errorf("fill: %d errors %v, %.0f/s", res.FillErrors, res.FillCodes, res.FillPerSec)
	}
	if res.Version != 200 || res.Received != 200 || res.Duplicates != 0 || res.OutOfOrder != 0 || res.Gaps != 0 || res.Foreign != 0 || res.TimedOut {
		t.Errorf("version %d received %d duplicates %d out of order %d gaps %d foreign %d timed out %v: want all 200 once, in order",
			res.Version, res.Received, res.Duplicates, res.OutOfOrder, res.Gaps, res.Foreign, res.TimedOut)
	}
	if res.CatchupSecs <= 0 || res.FirstEventMs <= 0 || res.FirstEventMs > res.CatchupSecs*1000 {
		t.Errorf("catch-up %.3f s, first event after %.2f ms", res.CatchupSecs, res.FirstEventMs)
	}
	r := h.Do("GET", "/streams/"+res.Stream, "")
	var st struct{ Version int }
	if err := json.Unmarshal(r.Body, &st); err != nil || st.Version != 200 {
		t.Errorf("room state %d %s: want version 200", r.Status, r.Body)
	}
}

// The in-process server cooks in 5 ms (transporttest's kinds.Config).
func TestSeedSmoke(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunSeed(ctx, SeedConfig{
		Targets: []string{h.Base}, N: 3, Item: "pizza", CookTime: 5 * time.Millisecond, Timeout: transporttest.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Ready != 3 || res.Errors != 0 || len(res.ErrorsByKind) != 0 {
		t.Errorf("ready %d, errors %d %v (%s): want 3 ready", res.Ready, res.Errors, res.ErrorsByKind, res.FirstError)
	}
	// Each order waits for its cook step: no answer comes before it.
	if res.Latency.Count != 3 || res.Latency.P50 < 5 || res.Latency.Max > res.WallSeconds*1000 {
		t.Errorf("latency %+v, wall %.3f s: want 3 samples of at least the 5 ms cook time, within the wall time", res.Latency, res.WallSeconds)
	}
	if res.WallPerCook < 1 || res.CookSeconds != 0.005 {
		t.Errorf("wall/cook %.2f (cook %.3f s): want >= 1", res.WallPerCook, res.CookSeconds)
	}
}

// A seed run against a server that refuses: errors are counted by status.
func TestSeedErrorsByStatus(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	// /nosuch/order/pizza is no route: a 4xx for each request.
	res, err := RunSeed(ctx, SeedConfig{Targets: []string{h.Base + "/nosuch"}, N: 2, Item: "pizza", Timeout: transporttest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ready != 0 || res.Errors != 2 || len(res.ErrorsByKind) != 1 || res.FirstError == "" {
		t.Errorf("ready %d errors %d %v (%s): want 2 errors of one status", res.Ready, res.Errors, res.ErrorsByKind, res.FirstError)
	}
	for k := range res.ErrorsByKind {
		if k[0] != '4' {
			t.Errorf("status %s, want 4xx", k)
		}
	}
}
