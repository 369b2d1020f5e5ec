package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// IdleConfig is the idle scenario's set-up.
type IdleConfig struct {
	Targets      []string
	Server       string // engine (""), centrifugo or naive
	Centrifugo   centrifugoAuth
	Conns        int           // connections, round-robin over Targets
	Streams      int           // rooms room:bench-RUN-N the connections subscribe to, in turn
	Hold         time.Duration // keep every connection open this long before measuring
	DialParallel int           // connections being opened at once
	SetupTimeout time.Duration
	CPUPIDs      []int // the first one's RSS is read
	Progress     io.Writer
	dialer       *dialer
}

// IdleResult is what the idle scenario measured. The memory figures are
// the server's: RSS of the first -cpu-pid, goroutines and heap from the
// first target's /metrics; each is absent if it could not be read.
type IdleResult struct {
	Scenario     string   `json:"scenario"`
	Server       string   `json:"server"`
	Run          string   `json:"run"`
	Targets      []string `json:"targets"`
	Conns        int      `json:"conns"`
	Streams      int      `json:"streams"`
	HoldSeconds  float64  `json:"hold_seconds"`
	OpenSeconds  float64  `json:"open_seconds"` // first dial to last subscribed reply
	OpenPerConn  float64  `json:"open_ms_per_conn"`
	ConnLatency  Latency  `json:"conn_latency"` // dial to subscribed reply, per connection
	RSSPID       int      `json:"rss_pid,omitempty"`
	RSSBeforeKiB *int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB  *int64   `json:"rss_after_kib,omitempty"`
	RSSPerConn   *float64 `json:"rss_kib_per_conn,omitempty"`
	// Go runtime figures from the first target's /metrics.
	GoBefore          *goStats `json:"go_before,omitempty"`
	GoAfter           *goStats `json:"go_after,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`
	HeapKiBPerConn    *float64 `json:"heap_kib_per_conn,omitempty"`
	MetricsError      string   `json:"metrics_error,omitempty"`
	ClosedEarly       int      `json:"closed_early"` // connections that failed during the hold
	ConnErrors        []string `json:"conn_errors,omitempty"`
	CPU               *CPU     `json:"cpu"`
}

func runIdleCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cm common
	cm.register(fs)
	var sf serverFlags
	sf.register(fs)
	cfg := IdleConfig{}
	fs.IntVar(&cfg.Conns, "conns", 1000, "WebSocket connections, each subscribed to one room")
	fs.IntVar(&cfg.Streams, "streams", 100, "rooms (room:bench-RUN-N) the connections subscribe to, in turn (1: all share one; -conns: one each)")
	fs.DurationVar(&cfg.Hold, "hold", 2*time.Second, "hold every connection open this long before measuring")
	fs.IntVar(&cfg.DialParallel, "dial-parallel", 64, "connections being opened at once")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 2*time.Minute, "time allowed to connect and subscribe every connection")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench idle [flags]

Opens -conns connections, each subscribed to one of -streams rooms, waits for
every "subscribed" reply, holds them idle for -hold, then measures and closes
them. Reported: time to open them all and per connection (dial→subscribed
p50/p99/max); with -cpu-pid PID the server's RSS (VmRSS) before and after,
per connection; from the first target's /metrics, go_goroutines and
go_memstats_heap_inuse_bytes before and after, per connection.

-server: engine rooms are room:bench-RUN-N; centrifugo channels
NAMESPACE:bench-RUN-N, each connection a connect (HMAC token) then a
subscribe, its /metrics from Prometheus (prometheus.enabled); naive: every
connection is in the one broadcast set (-streams does not apply), its
/metrics from enginebench naive. Centrifugo's pings are answered.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
		cfg.Server, cfg.Centrifugo = sf.kind, sf.cf
	}, func() (printer, error) { return RunIdle(ctx, cfg) })
}

func (r *IdleResult) print(w io.Writer) {
	t := newTable(w)
	rooms := fmt.Sprintf("over %d rooms", r.Streams)
	if r.Server == serverNaive {
		rooms = "in its one broadcast set"
	}
	t.row("scenario", "idle: %d conns %s, %d target(s), held %.1f s, server %s", r.Conns, rooms, len(r.Targets), r.HoldSeconds, r.Server)
	t.row("open", "%.2f s for all, %.3f ms per conn", r.OpenSeconds, r.OpenPerConn)
	t.latency("dial→subscribed", r.ConnLatency)
	if r.RSSPerConn != nil {
		t.row("server RSS", "%d → %d KiB  (%.1f KiB per conn, pid %d)", *r.RSSBeforeKiB, *r.RSSAfterKiB, *r.RSSPerConn, r.RSSPID)
	}
	if r.GoroutinesPerConn != nil {
		t.row("server goroutines", "%.0f → %.0f  (%.2f per conn)", r.GoBefore.Goroutines, r.GoAfter.Goroutines, *r.GoroutinesPerConn)
		t.row("server Go heap", "%.1f → %.1f MiB in use  (%.1f KiB per conn)", r.GoBefore.HeapInuseMiB, r.GoAfter.HeapInuseMiB, *r.HeapKiBPerConn)
	} else if r.MetricsError != "" {
		t.row("server /metrics", "%s", r.MetricsError)
	}
	t.row("closed early", "%d", r.ClosedEarly)
	if len(r.ConnErrors) > 0 {
		t.row("connection errors", "%d: %s", len(r.ConnErrors), r.ConnErrors[0])
	}
	t.cpu(r.CPU, "conn")
	t.flush()
}

// idleConn is one connection: its reader discards every frame after the
// subscription (presence of the other members, nothing else) but answers
// pings.
type idleConn struct {
	ws   *websocket.Conn
	w    wire
	done chan struct{}
	err  error
}

func (c *idleConn) read(ctx context.Context) {
	defer close(c.done)
	fr := frameReader{c: c.ws}
	var msgs []wireMsg
	for {
		b, err := fr.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.err = err
			}
			return
		}
		msgs = c.w.decode(b, msgs[:0])
		for _, m := range msgs {
			switch m.kind {
			case msgPing:
				if err := c.ws.Write(ctx, websocket.MessageText, pongFrame); err != nil {
					if ctx.Err() == nil {
						c.err = err
					}
					return
				}
			case msgError:
				c.err = fmt.Errorf("error frame: %s: %s", m.code, m.text)
				return
			}
		}
	}
}

// RunIdle runs the idle scenario against running servers.
func RunIdle(ctx context.Context, cfg IdleConfig) (*IdleResult, error) {
	if len(cfg.Targets) == 0 || cfg.Conns < 1 || cfg.Streams < 1 || cfg.Hold < 0 {
		return nil, errors.New("need targets, conns and streams >= 1 and hold >= 0")
	}
	w, err := newWire(cfg.Server, cfg.Centrifugo)
	if err != nil {
		return nil, err
	}
	if cfg.Server == "" {
		cfg.Server = serverEngine
	}
	if cfg.dialer == nil {
		cfg.dialer, _ = newDialer(nil)
	}
	if cfg.DialParallel < 1 {
		cfg.DialParallel = 64
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = 2 * time.Minute
	}
	run := runID()
	res := &IdleResult{Scenario: "idle", Server: cfg.Server, Run: run, Targets: cfg.Targets, Conns: cfg.Conns, Streams: cfg.Streams, HoldSeconds: cfg.Hold.Seconds()}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Before: the server's memory, before any connection of ours.
	http0 := cfg.dialer.clients[0]
	var rssBefore int64 = -1
	if len(cfg.CPUPIDs) > 0 {
		res.RSSPID = cfg.CPUPIDs[0]
		if n, err := readRSS(res.RSSPID); err == nil {
			rssBefore = n
		}
	}
	goBefore, mErr := scrapeGoStats(ctx, http0, cfg.Targets[0])
	if mErr != nil {
		res.MetricsError = mErr.Error()
	}

	conns := make([]*idleConn, cfg.Conns)
	wss := make([]*websocket.Conn, cfg.Conns)
	lat := make([]int64, cfg.Conns)
	var readers sync.WaitGroup
	defer func() {
		cancel()
		closeAll(wss)
		readers.Wait()
	}()
	for i := range conns {
		conns[i] = &idleConn{w: w, done: make(chan struct{})}
	}
	var opened atomic.Int64
	start := time.Now()
	progStop := startProgress(cfg.Progress, start, func() string {
		return fmt.Sprintf("subscribed=%d/%d", opened.Load(), cfg.Conns)
	})
	defer progStop()
	m0 := markCPU(cfg.CPUPIDs)

	err = openAll(ctx, cfg.Conns, cfg.DialParallel, cfg.SetupTimeout, func(ctx context.Context, i int) error {
		c := conns[i]
		t0 := time.Now()
		ch := w.channel("bench-" + run + "-" + strconv.Itoa(i%cfg.Streams))
		ws, _, err := w.open(ctx, cfg.dialer, i, cfg.Targets[i%len(cfg.Targets)], ch)
		if err != nil {
			return fmt.Errorf("conn %d: %w", i, err)
		}
		lat[i] = int64(time.Since(t0))
		opened.Add(1)
		wss[i], c.ws = ws, ws
		readers.Add(1)
		go func() { defer readers.Done(); c.read(runCtx) }()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%d of %d subscribed)", err, opened.Load(), cfg.Conns)
	}
	open := time.Since(start)
	res.OpenSeconds = open.Seconds()
	res.OpenPerConn = float64(open) / 1e6 / float64(cfg.Conns)
	res.ConnLatency = summarize(lat)

	// Hold, then measure with every connection still open.
	tm := time.NewTimer(cfg.Hold)
	select {
	case <-tm.C:
	case <-ctx.Done():
		tm.Stop()
		return nil, ctx.Err()
	}
	m1 := markCPU(cfg.CPUPIDs)
	n := float64(cfg.Conns)
	if rssBefore >= 0 {
		if after, err := readRSS(res.RSSPID); err == nil {
			per := float64(after-rssBefore) / n
			res.RSSBeforeKiB, res.RSSAfterKiB, res.RSSPerConn = &rssBefore, &after, &per
		}
	}
	if goBefore != nil {
		goAfter, err := scrapeGoStats(ctx, http0, cfg.Targets[0])
		if err != nil {
			res.MetricsError = err.Error()
		} else {
			g := (goAfter.Goroutines - goBefore.Goroutines) / n
			h := (goAfter.HeapInuseMiB - goBefore.HeapInuseMiB) * 1024 / n
			res.GoBefore, res.GoAfter, res.GoroutinesPerConn, res.HeapKiBPerConn = goBefore, goAfter, &g, &h
		}
	}
	for i, c := range conns {
		select {
		case <-c.done:
			res.ClosedEarly++
			res.ConnErrors = append(res.ConnErrors, fmt.Sprintf("conn %d: %v", i, c.err))
		default:
		}
	}
	cancel()
	closeAll(wss)
	readers.Wait()
	progStop()
	res.CPU = cpuBetween(m0, m1, int64(cfg.Conns))
	return res, nil
}
