package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport/transporttest"
)

// The suite starts the naive server as a child: itself, "naive". In a
// test, itself is the test binary, which runs main's run instead of the
// tests when ENGINEBENCH_RUN_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("ENGINEBENCH_RUN_MAIN") == "1" {
		raiseFileLimit()
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The suite's runs against the naive server, at tiny sizes: a child
// process started per run, ready, measured (its PID's CPU and RSS) and
// stopped; one table line per run.
func TestSuiteNaive(t *testing.T) {
	t.Setenv("ENGINEBENCH_RUN_MAIN", "1")
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	var progress bytes.Buffer
	res, err := RunSuite(ctx, SuiteConfig{Servers: []string{serverNaive}, Scale: 0.01, Dir: t.TempDir(), Progress: &progress})
	t.Log(progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 3 {
		t.Fatalf("%d runs, want fanout x2 and idle on naive", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.Error != "" || r.Skipped != "" || r.Result == nil || r.Server != serverNaive {
			t.Errorf("%s on %s: error %q skipped %q", r.Name, r.Server, r.Error, r.Skipped)
		}
		switch x := r.Result.(type) {
		case *FanoutResult:
			if x.Lost != 0 || x.Received != x.Expected || x.CPU == nil || x.CPU.ServerSeconds == nil {
				t.Errorf("%s: %s", r.Name, r.Summary)
			}
		case *IdleResult:
			if x.RSSPerConn == nil || x.GoroutinesPerConn == nil || x.ClosedEarly != 0 {
				t.Errorf("%s: %s", r.Name, r.Summary)
			}
		}
	}
	var out bytes.Buffer
	res.print(&out)
	if n := strings.Count(out.String(), "\n"); n < 5 || !strings.Contains(out.String(), "suite wall time") {
		t.Errorf("table:\n%s", out.String())
	}
}
