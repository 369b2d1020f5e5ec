package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The suite starts a fresh server for each run (the engine on a new data
// directory, Centrifugo with a generated config, the naive server as a
// child of this tool), runs one scenario against it with its PID for CPU
// and RSS, stops it, and at the end prints one table of every run.

// SuiteConfig is the suite's set-up.
type SuiteConfig struct {
	EngineBin     string   // the engine binary; "" to build ./cmd/engine
	CentrifugoBin string   // "" to look for centrifugo on PATH, then in GOBIN / GOPATH/bin
	Servers       []string // which servers' runs to do
	Only          string   // run only runs whose name contains this
	Scale         float64  // sizes × this (1 for the full suite)
	Dir           string   // data dirs, configs, logs, built binaries
	CookTime      time.Duration
	Progress      io.Writer // per-run lines; nil for none
	Verbose       bool      // the scenarios' progress lines too
}

// SuiteResult is the whole suite.
type SuiteResult struct {
	Started     string      `json:"started"`
	Host        suiteHost   `json:"host"`
	Scale       float64     `json:"scale"`
	WallSeconds float64     `json:"wall_seconds"`
	LoadBefore  string      `json:"load_average_before"`
	LoadAfter   string      `json:"load_average_after"`
	Runs        []*suiteRes `json:"runs"`
}

type suiteHost struct {
	CPUs       int    `json:"cpus"`
	GoVersion  string `json:"go_version"`
	Engine     string `json:"engine_bin"`
	Centrifugo string `json:"centrifugo_bin,omitempty"`
	CFVersion  string `json:"centrifugo_version,omitempty"`
}

// suiteRes is one run of the suite.
type suiteRes struct {
	Name        string  `json:"name"`
	Server      string  `json:"server"`
	Scenario    string  `json:"scenario"`
	LoadBefore  string  `json:"load_average_before"`
	WallSeconds float64 `json:"wall_seconds"`
	Skipped     string  `json:"skipped,omitempty"`
	Error       string  `json:"error,omitempty"`
	Summary     string  `json:"summary"`
	Result      any     `json:"result,omitempty"`
}

// summarizer is a scenario's result that fits on one line of the table.
type summarizer interface {
	printer
	summary() string
}

// suiteRun is one entry of the suite.
type suiteRun struct {
	name, server, scenario string
	run                    func(ctx context.Context, t suiteTarget) (summarizer, error)
}

// suiteTarget is the server a run drives.
type suiteTarget struct {
	base     string
	pid      int
	progress io.Writer
}

func suiteRuns(scale float64, cookTime time.Duration) []suiteRun {
	n := func(x int) int { return max(1, int(float64(x)*scale)) }
	var runs []suiteRun
	type fan struct {
		subs, count int
		rate        float64
	}
	for _, f := range []fan{{1000, 200, 50}, {5000, 100, 20}} {
		subs, count := n(f.subs), n(f.count)
		for _, srv := range []string{serverEngine, serverCentrifugo, serverNaive} {
			runs = append(runs, suiteRun{
				name: fmt.Sprintf("fanout %d subs x %d msgs @ %.0f/s", subs, count, f.rate), server: srv, scenario: "fanout",
				run: func(ctx context.Context, t suiteTarget) (summarizer, error) {
					return RunFanout(ctx, FanoutConfig{Targets: []string{t.base}, Server: srv, Centrifugo: defaultCentrifugoAuth(),
						Subs: subs, Rate: f.rate, Count: count, Drain: 30 * time.Second, CPUPIDs: []int{t.pid}, Progress: t.progress})
				}})
		}
	}
	conns := n(5000)
	for _, srv := range []string{serverEngine, serverCentrifugo, serverNaive} {
		runs = append(runs, suiteRun{
			name: fmt.Sprintf("idle %d conns, 1 sub each", conns), server: srv, scenario: "idle",
			run: func(ctx context.Context, t suiteTarget) (summarizer, error) {
				return RunIdle(ctx, IdleConfig{Targets: []string{t.base}, Server: srv, Centrifugo: defaultCentrifugoAuth(),
					Conns: conns, Streams: 100, Hold: 2 * time.Second, CPUPIDs: []int{t.pid}, Progress: t.progress})
			}})
	}
	dur := time.Duration(float64(10*time.Second) * min(1, scale*10))
	runs = append(runs, suiteRun{
		name: "commands 8 conns x 16 in flight, 16 rooms", server: serverEngine, scenario: "commands",
		run: func(ctx context.Context, t suiteTarget) (summarizer, error) {
			return RunCommands(ctx, CommandsConfig{Targets: []string{t.base}, Conns: 8, Inflight: 16, Streams: 16,
				Warmup: 2 * time.Second, Duration: dur, Drain: 10 * time.Second, TextLen: 32, CPUPIDs: []int{t.pid}, Progress: t.progress})
		}})
	events := n(100000)
	runs = append(runs, suiteRun{
		name: fmt.Sprintf("catchup %d events", events), server: serverEngine, scenario: "catchup",
		run: func(ctx context.Context, t suiteTarget) (summarizer, error) {
			return RunCatchup(ctx, CatchupConfig{Targets: []string{t.base}, Events: events, Conns: 4, Inflight: 64, TextLen: 32,
				Timeout: 5 * time.Minute, CPUPIDs: []int{t.pid}, Progress: t.progress})
		}})
	orders := n(100)
	runs = append(runs, suiteRun{
		name: fmt.Sprintf("seed %d orders, cook %s", orders, cookTime), server: serverEngine, scenario: "seed",
		run: func(ctx context.Context, t suiteTarget) (summarizer, error) {
			return RunSeed(ctx, SeedConfig{Targets: []string{t.base}, N: orders, Item: "pizza", CookTime: cookTime,
				Timeout: 2 * time.Minute, CPUPIDs: []int{t.pid}, Progress: t.progress})
		}})
	return runs
}

func runSuiteCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := SuiteConfig{}
	var jsonFile, servers string
	fs.StringVar(&cfg.EngineBin, "engine-bin", "", "the engine binary (build it without -race); empty: go build ./cmd/engine (from the repository root) into -dir")
	fs.StringVar(&cfg.CentrifugoBin, "centrifugo-bin", "", "the centrifugo binary; empty: centrifugo on PATH, then $GOBIN, $(go env GOPATH)/bin; its runs are skipped if there is none")
	fs.StringVar(&servers, "servers", "engine,centrifugo,naive", "comma-separated servers whose runs to do")
	fs.StringVar(&cfg.Only, "only", "", "run only the runs whose name contains this (e.g. fanout, idle, 5000)")
	fs.Float64Var(&cfg.Scale, "scale", 1, "multiply the sizes (subscribers, messages, connections, events, orders) by this; 0.05 for a quick check")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for data dirs, configs, logs and the built engine (default: a new temp dir, removed at the end unless a run failed)")
	fs.DurationVar(&cfg.CookTime, "cook-time", 2*time.Second, "the engine's -cook-time for the seed run")
	fs.BoolVar(&cfg.Verbose, "v", false, "also print the scenarios' progress lines and tables")
	fs.StringVar(&jsonFile, "json", "", "write every run's result as one JSON object to this file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench suite [flags]

The load suite, each run against a fresh server started for it and stopped
after it (the engine on a new -data directory with -max-connections 20000
-max-connections-per-ip 20000 -cook-time 2s; Centrifugo with the config of
enginebench centrifugo-config; the naive server as a child process), with the
server's PID for CPU and RSS:

  fanout 1,000 subs x 200 msgs at 50/s      engine, centrifugo, naive
  fanout 5,000 subs x 100 msgs at 20/s      engine, centrifugo, naive
  idle 5,000 conns over 100 rooms, hold 2 s engine, centrifugo, naive
  commands 8 conns x 16 in flight, 16 rooms, 10 s after 2 s warm-up   engine
  catchup 100,000 events                    engine
  seed 100 orders, cook time 2 s            engine

Without a centrifugo binary its runs are skipped (go install
github.com/centrifugal/centrifugo/v6@v6.9.1). A line per run goes to stderr;
the summary table to stdout; -json the full results.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Scale <= 0 {
		return errors.New("-scale must be > 0")
	}
	cfg.Servers = splitList(servers)
	for _, s := range cfg.Servers {
		if s != serverEngine && s != serverCentrifugo && s != serverNaive {
			return fmt.Errorf("-servers: %q is not engine, centrifugo or naive", s)
		}
	}
	cfg.Progress = stderr
	res, err := RunSuite(ctx, cfg)
	if res != nil {
		res.print(stdout)
		if jerr := writeJSON(jsonFile, res); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// RunSuite runs the suite; the result holds every run, failed or not.
func RunSuite(ctx context.Context, cfg SuiteConfig) (*SuiteResult, error) {
	start := time.Now()
	res := &SuiteResult{Started: start.UTC().Format(time.RFC3339), Scale: cfg.Scale, LoadBefore: loadAvg(),
		Host: suiteHost{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}}
	logf := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	keep := cfg.Dir != ""
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "enginebench-suite-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	}
	failed := false
	defer func() {
		if !keep && !failed {
			os.RemoveAll(cfg.Dir)
		}
	}()

	want := map[string]bool{}
	for _, s := range cfg.Servers {
		want[s] = true
	}
	if want[serverEngine] && cfg.EngineBin == "" {
		cfg.EngineBin = filepath.Join(cfg.Dir, "engine")
		logf("building ./cmd/engine into %s", cfg.EngineBin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", cfg.EngineBin, "./cmd/engine")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/engine (run the suite from the repository root, or give -engine-bin): %v\n%s", err, out)
		}
	}
	res.Host.Engine = cfg.EngineBin
	cfSkip := ""
	if want[serverCentrifugo] {
		if cfg.CentrifugoBin == "" {
			cfg.CentrifugoBin = findCentrifugo()
		}
		if cfg.CentrifugoBin == "" {
			cfSkip = "no centrifugo binary on PATH, in $GOBIN or $(go env GOPATH)/bin (go install github.com/centrifugal/centrifugo/v6@v6.9.1, or -centrifugo-bin)"
			logf("centrifugo runs skipped: %s", cfSkip)
		} else {
			res.Host.Centrifugo = cfg.CentrifugoBin
			res.Host.CFVersion = centrifugoVersion(ctx, cfg.CentrifugoBin)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}

	for i, r := range suiteRuns(cfg.Scale, cfg.CookTime) {
		if !want[r.server] || (cfg.Only != "" && !strings.Contains(r.name, cfg.Only)) {
			continue
		}
		sr := &suiteRes{Name: r.name, Server: r.server, Scenario: r.scenario, LoadBefore: loadAvg()}
		res.Runs = append(res.Runs, sr)
		if r.server == serverCentrifugo && cfSkip != "" {
			sr.Skipped = cfSkip
			continue
		}
		if ctx.Err() != nil {
			sr.Error = ctx.Err().Error()
			continue
		}
		logf("[%s] %s on %s (load average %s)", time.Since(start).Round(time.Second), r.name, r.server, sr.LoadBefore)
		t0 := time.Now()
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("run%02d-%s", i, r.server))
		out, err := runOne(ctx, cfg, self, dir, r)
		sr.WallSeconds = time.Since(t0).Seconds()
		if err != nil {
			failed = true
			sr.Error = err.Error()
			logf("    error: %v (logs in %s)", err, dir)
			continue
		}
		sr.Result, sr.Summary = out, out.summary()
		logf("    %s", sr.Summary)
		if cfg.Verbose && cfg.Progress != nil {
			out.print(cfg.Progress)
		}
	}
	res.WallSeconds = time.Since(start).Seconds()
	res.LoadAfter = loadAvg()
	if failed {
		logf("kept %s (a run failed: its server's log is there)", cfg.Dir)
		return res, errors.New("a run failed")
	}
	return res, nil
}

// runOne starts r's server in dir, runs r against it, and stops it.
func runOne(ctx context.Context, cfg SuiteConfig, self, dir string, r suiteRun) (summarizer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var bin, ready string
	var args []string
	switch r.server {
	case serverEngine:
		bin, ready = cfg.EngineBin, "/readyz"
		args = []string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-data", filepath.Join(dir, "data"),
			"-max-connections", "20000", "-max-connections-per-ip", "20000", "-cook-time", cfg.CookTime.String(),
			"-log-format", "json"}
	case serverCentrifugo:
		b, err := centrifugoConfig(centrifugoConfigOpts{Port: port, Auth: defaultCentrifugoAuth(), HistorySize: 1000, HistoryTTL: 10 * time.Minute, LogLevel: "info"})
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "centrifugo.json")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			return nil, err
		}
		bin, ready = cfg.CentrifugoBin, "/health"
		args = []string{"-c", conf}
	case serverNaive:
		bin, ready = self, "/readyz"
		args = []string{"naive", "-listen", "127.0.0.1:" + strconv.Itoa(port)}
	}
	p, err := startServer(ctx, bin, args, dir, base+ready)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.server, err)
	}
	var progress io.Writer
	if cfg.Verbose {
		progress = cfg.Progress
	}
	out, runErr := r.run(ctx, suiteTarget{base: base, pid: p.cmd.Process.Pid, progress: progress})
	if err := p.stop(); err != nil && runErr == nil {
		runErr = fmt.Errorf("%s: stop: %w", r.server, err)
	}
	return out, runErr
}

// centrifugoVersion is what the binary says of itself and, since a go
// install build says v0.0.0, the module version go version -m reads.
func centrifugoVersion(ctx context.Context, bin string) string {
	var parts []string
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	if out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" {
				parts = append(parts, f[1]+"@"+f[2])
			}
		}
	}
	return strings.Join(parts, "; ")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (r *SuiteResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\tserver\tresult\n")
	for _, s := range r.Runs {
		line := s.Summary
		switch {
		case s.Skipped != "":
			line = "skipped: " + s.Skipped
		case s.Error != "":
			line = "error: " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Server, line)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d CPUs, %s; load average %s before, %s after; suite wall time %.0f s\n",
		r.Host.CPUs, r.Host.GoVersion, r.LoadBefore, r.LoadAfter, r.WallSeconds)
}

func (r *FanoutResult) summary() string {
	s := fmt.Sprintf("p50 %.1f ms  p99 %.1f ms  lost %d  dup %d", r.Latency.P50, r.Latency.P99, r.Lost, r.Duplicates)
	if r.CPU != nil && r.CPU.ServerMicrosPer != nil {
		s += fmt.Sprintf("  server %.1f µs/delivery", *r.CPU.ServerMicrosPer)
	}
	s += fmt.Sprintf("  %.0f deliveries/s  set-up %.1f s", r.DeliveriesPerSec, r.SetupSeconds)
	if r.PublishErrors > 0 {
		s += fmt.Sprintf("  publish errors %d %s", r.PublishErrors, codes(r.PublishCodes))
	}
	if len(r.SubErrors) > 0 {
		s += fmt.Sprintf("  subscriber errors %d", len(r.SubErrors))
	}
	return s
}

func (r *IdleResult) summary() string {
	var parts []string
	if r.RSSPerConn != nil {
		parts = append(parts, fmt.Sprintf("RSS %.1f KiB/conn (%d → %d MiB)", *r.RSSPerConn, *r.RSSBeforeKiB/1024, *r.RSSAfterKiB/1024))
	}
	if r.HeapKiBPerConn != nil {
		parts = append(parts, fmt.Sprintf("heap %.1f KiB/conn  goroutines %.2f/conn", *r.HeapKiBPerConn, *r.GoroutinesPerConn))
	}
	parts = append(parts, fmt.Sprintf("open %.1f s  dial→subscribed p50 %.1f ms p99 %.1f ms", r.OpenSeconds, r.ConnLatency.P50, r.ConnLatency.P99))
	if r.CPU != nil && r.CPU.ServerMicrosPer != nil {
		parts = append(parts, fmt.Sprintf("server %.0f µs/conn", *r.CPU.ServerMicrosPer))
	}
	if r.ClosedEarly > 0 {
		parts = append(parts, fmt.Sprintf("closed early %d", r.ClosedEarly))
	}
	return strings.Join(parts, "  ")
}

func (r *CommandsResult) summary() string {
	s := fmt.Sprintf("%.0f acks/s  p50 %.2f ms  p99 %.2f ms", r.AcksPerSec, r.Latency.P50, r.Latency.P99)
	if r.CPU != nil && r.CPU.ServerMicrosPer != nil {
		s += fmt.Sprintf("  server %.1f µs/ack", *r.CPU.ServerMicrosPer)
	}
	s += fmt.Sprintf("  errors %d  unanswered %d", r.Errors, r.Unanswered)
	return s
}

func (r *CatchupResult) summary() string {
	s := fmt.Sprintf("fill %.0f events/s  catch-up %.2f s (%.0f events/s, first after %.1f ms)  gaps %d  dup %d",
		r.FillPerSec, r.CatchupSecs, r.CatchupPerSec, r.FirstEventMs, r.Gaps, r.Duplicates)
	if r.CPU != nil && r.CPU.ServerMicrosPer != nil {
		s += fmt.Sprintf("  server %.1f µs/event", *r.CPU.ServerMicrosPer)
	}
	return s
}

func (r *SeedResult) summary() string {
	s := fmt.Sprintf("wall %.2f s", r.WallSeconds)
	if r.CookSeconds > 0 {
		s += fmt.Sprintf(" (%.2f x cook)", r.WallPerCook)
	}
	s += fmt.Sprintf("  p50 %.0f ms  p99 %.0f ms  ready %d  errors %d", r.Latency.P50, r.Latency.P99, r.Ready, r.Errors)
	if r.Errors > 0 {
		s += "  " + codes(r.ErrorsByKind)
	}
	return s
}
