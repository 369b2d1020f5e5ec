// Command enginebench drives running engine servers over the /ws protocol
// and reports throughput, latency and, optionally, the servers' CPU.
//
//	enginebench commands -targets http://127.0.0.1:8080 -conns 8 -inflight 16
//	enginebench fanout -targets http://127.0.0.1:8080,http://127.0.0.1:8081 -subs 1000
//	enginebench idle -conns 1000 -cpu-pid $(pgrep -n engine)
//	enginebench catchup -events 100000
//	enginebench seed -n 100 -cook-time 3s
//
// fanout and idle also drive Centrifugo and a naive broadcast server, so
// that the engine's figures have something to compare with:
//
//	enginebench centrifugo-config -port 8000 > c.json && centrifugo -c c.json &
//	enginebench fanout -server centrifugo -targets http://127.0.0.1:8000 -cpu-pid $(pgrep -n centrifugo)
//	enginebench naive -listen 127.0.0.1:9100 &
//	enginebench idle -server naive -targets http://127.0.0.1:9100 -cpu-pid $!
//
// and enginebench suite runs them all, each against a fresh server.
//
// Connections are spread round-robin over the targets, so one run measures
// one node or a cluster. Progress goes to stderr once a second, the result
// table to stdout, and with -json FILE the same figures as JSON.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// scenario is one subcommand.
type scenario struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var scenarios = []scenario{
	{"commands", "C connections x K commands in flight over S room streams: acks/s and ack latency", runCommandsCLI},
	{"fanout", "N subscribers of one room, one publisher at a fixed rate: deliveries/s, loss, duplicates, delivery latency", runFanoutCLI},
	{"idle", "N idle connections subscribed over S rooms: time to open, server RSS, goroutines and heap per connection", runIdleCLI},
	{"catchup", "E events appended to a fresh room (fill rate), then one subscriber from 0: catch-up time, duplicates, gaps", runCatchupCLI},
	{"seed", "N concurrent POST /order/{item} (answered when ready): wall time, latency, wall/cook, errors by status", runSeedCLI},
}

// helpers are the subcommands that are not scenarios.
var helpers = []scenario{
	{"suite", "the load suite: starts a fresh server per run (engine, centrifugo, naive), runs the scenarios, prints one summary table", runSuiteCLI},
	{"naive", "serves the naive broadcast server (Fiber, a mutex-protected set of connections, a for-loop broadcast)", runNaiveCLI},
	{"centrifugo-config", "writes a Centrifugo v6 config for -server centrifugo (HMAC token, API key, a namespace with history and recovery)", runCentrifugoConfigCLI},
}

func main() {
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, s := range append(scenarios[:len(scenarios):len(scenarios)], helpers...) {
		if s.name == args[0] {
			err := s.run(ctx, args[1:], stdout, stderr)
			switch {
			case errors.Is(err, flag.ErrHelp):
				return 0
			case err != nil:
				fmt.Fprintf(stderr, "enginebench %s: %v\n", s.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "enginebench: unknown scenario %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `enginebench drives running engine servers over the /ws protocol; fanout and
idle also drive Centrifugo and the naive broadcast server (-server).

Usage:
  enginebench <scenario> [flags]
  enginebench <scenario> -h      lists the scenario's flags

Scenarios:
`)
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-18s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\nOther commands:\n")
	for _, s := range helpers {
		fmt.Fprintf(w, "  %-18s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, `
Every scenario takes -targets URL,URL… (connections go round-robin over them),
-json FILE, -cpu-pid PID,PID… (server CPU from /proc; idle also reads the
first one's RSS), -source-ips and -cpuprofile.
fanout and idle take -server engine|centrifugo|naive (default engine) and,
for Centrifugo, -centrifugo-secret, -centrifugo-api-key, -centrifugo-namespace;
the other scenarios drive the engine only:
  enginebench centrifugo-config -port 8000 > c.json && centrifugo -c c.json &
  enginebench fanout -server centrifugo -targets http://127.0.0.1:8000 -cpu-pid $(pgrep -n centrifugo)
  enginebench naive -listen 127.0.0.1:9100 &
  enginebench idle -server naive -targets http://127.0.0.1:9100 -cpu-pid $!
Over loopback, a server with the default -max-connections-per-ip (100) refuses
the fanout's subscribers: start it with a larger limit, or give -source-ips
127.0.0.2,127.0.0.3,… so that the connections come from several addresses.
`)
}

// common are the flags every scenario shares.
type common struct {
	targets   string
	jsonFile  string
	cpuPIDs   string
	sourceIPs string
	cpuProf   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.targets, "targets", "http://127.0.0.1:8080", "comma-separated base URLs of the engine servers; connections go round-robin over them")
	fs.StringVar(&c.jsonFile, "json", "", "also write the result as a JSON object to this file")
	fs.StringVar(&c.cpuPIDs, "cpu-pid", "", "comma-separated PIDs of the server processes (same machine): report their CPU time (utime+stime from /proc/PID/stat) over the measured window")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write a CPU profile of this tool (not the server) to this file, to check that the client is not the bottleneck")
	fs.StringVar(&c.sourceIPs, "source-ips", "", "comma-separated local addresses to open connections from, round-robin (e.g. 127.0.0.2,127.0.0.3 to stay under a server's per-address connection limit over loopback)")
}

// profile starts the -cpuprofile, if any; the returned func stops it.
func (c *common) profile() (stop func(), err error) {
	if c.cpuProf == "" {
		return func() {}, nil
	}
	f, err := os.Create(c.cpuProf)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// parse turns the flags into a Target list, PIDs and a dialer.
func (c *common) parse() (targets []string, pids []int, d *dialer, err error) {
	for _, t := range splitList(c.targets) {
		if !strings.HasPrefix(t, "http://") && !strings.HasPrefix(t, "https://") {
			return nil, nil, nil, fmt.Errorf("-targets: %q is not an http:// or https:// URL", t)
		}
		targets = append(targets, strings.TrimRight(t, "/"))
	}
	if len(targets) == 0 {
		return nil, nil, nil, errors.New("-targets: no target")
	}
	for _, p := range splitList(c.cpuPIDs) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, nil, nil, fmt.Errorf("-cpu-pid: %q is not a process id", p)
		}
		if _, err := readProcCPU(n); err != nil {
			return nil, nil, nil, fmt.Errorf("-cpu-pid: %w", err)
		}
		pids = append(pids, n)
	}
	d, err = newDialer(splitList(c.sourceIPs))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-source-ips: %w", err)
	}
	return targets, pids, d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// writeJSON writes v to file, indented.
// printer is a scenario's result.
type printer interface{ print(io.Writer) }

// execute parses a scenario's flags, hands the shared ones to apply, and
// runs it (under the tool's own profile with -cpuprofile); then it prints
// the result's table and writes its JSON.
func (c *common) execute(fs *flag.FlagSet, args []string, stdout io.Writer, apply func(targets []string, pids []int, d *dialer), run func() (printer, error)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	targets, pids, d, err := c.parse()
	if err != nil {
		return err
	}
	apply(targets, pids, d)
	stop, err := c.profile()
	if err != nil {
		return err
	}
	res, err := run()
	stop()
	if err != nil {
		return err
	}
	res.print(stdout)
	return writeJSON(c.jsonFile, res)
}

func writeJSON(file string, v any) error {
	if file == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// raiseFileLimit lifts the soft limit on open files to the hard one: a
// fanout run opens thousands of sockets.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// startProgress writes the line line returns to w once a second until
// the returned stop is called; stop returns once nothing more is written.
func startProgress(w io.Writer, start time.Time, line func() string) (stop func()) {
	if w == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				fmt.Fprintf(w, "[%5.1fs] %s\n", now.Sub(start).Seconds(), line())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}
