package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// CommandsConfig is the commands scenario's set-up.
type CommandsConfig struct {
	Targets  []string
	Conns    int           // WebSocket connections, round-robin over Targets
	Inflight int           // commands in flight on each connection
	Streams  int           // room streams the commands go to
	Warmup   time.Duration // run before the measured window
	Duration time.Duration // the measured window
	Drain    time.Duration // wait at most this long for the answers to commands in flight at the end
	TextLen  int           // characters of each message's text
	CPUPIDs  []int
	Progress io.Writer // a line once a second; nil for none
	dialer   *dialer
}

// CommandsResult is what the commands scenario measured. Acks, AcksPerSec
// and the latency count only answers received inside the measured window;
// the other counts cover the whole run (warm-up and drain included).
type CommandsResult struct {
	Scenario   string           `json:"scenario"`
	Run        string           `json:"run"` // the streams are room:bench-RUN-0…
	Targets    []string         `json:"targets"`
	Conns      int              `json:"conns"`
	Inflight   int              `json:"inflight"`
	Streams    int              `json:"streams"`
	Warmup     float64          `json:"warmup_seconds"`
	Duration   float64          `json:"duration_seconds"`
	Sent       int64            `json:"sent"`
	AcksTotal  int64            `json:"acks_total"`
	Acks       int64            `json:"acks"`
	AcksPerSec float64          `json:"acks_per_second"`
	Latency    Latency          `json:"ack_latency"`
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"errors_by_code"`
	// Unanswered commands had neither ack nor error when the drain ended.
	Unanswered int64 `json:"unanswered"`
	// UnknownReplies are acks or errors whose ref names no command in
	// flight on that connection (a duplicate or a stray answer).
	UnknownReplies int64 `json:"unknown_replies"`
	// DuplicateVersions counts acks that name a (stream, version) another
	// ack named already.
	DuplicateVersions int64    `json:"duplicate_versions"`
	ConnErrors        []string `json:"conn_errors,omitempty"`
	CPU               *CPU     `json:"cpu"`
}

func runCommandsCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("commands", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cm common
	cm.register(fs)
	cfg := CommandsConfig{}
	fs.IntVar(&cfg.Conns, "conns", 8, "WebSocket connections")
	fs.IntVar(&cfg.Inflight, "inflight", 16, "commands in flight on each connection (a new one is sent as soon as one is answered)")
	fs.IntVar(&cfg.Streams, "streams", 16, "room streams (room:bench-RUN-N) the commands go to, in turn")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "run this long before the measured window")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "the measured window")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "at the end, wait at most this long for answers to the commands in flight")
	fs.IntVar(&cfg.TextLen, "text", 32, "characters of each message's text")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench commands [flags]

Each connection keeps -inflight PostMessage commands in flight, each with a
unique id, spread over -streams rooms. Reported: acks/s and send→ack latency
(p50/p99/max) inside the measured window, errors by code, unanswered
commands, and replies that match no command sent.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
	}, func() (printer, error) { return RunCommands(ctx, cfg) })
}

func (r *CommandsResult) print(w io.Writer) {
	t := newTable(w)
	t.row("scenario", "commands: %d conns x %d in flight over %d streams, %d target(s)", r.Conns, r.Inflight, r.Streams, len(r.Targets))
	t.row("window", "%.1f s after %.1f s warm-up", r.Duration, r.Warmup)
	t.row("acks/s", "%.0f", r.AcksPerSec)
	t.row("acks", "%d in window, %d in all, of %d sent", r.Acks, r.AcksTotal, r.Sent)
	t.latency("ack latency", r.Latency)
	t.row("errors", "%d  %s", r.Errors, codes(r.ErrorCodes))
	t.row("unanswered", "%d", r.Unanswered)
	t.row("unknown replies", "%d", r.UnknownReplies)
	t.row("duplicate versions", "%d", r.DuplicateVersions)
	if len(r.ConnErrors) > 0 {
		t.row("connection errors", "%d: %s", len(r.ConnErrors), r.ConnErrors[0])
	}
	t.cpu(r.CPU, "ack")
	t.flush()
}

// cmdConn is one connection of the commands scenario: a writer goroutine
// sends a command whenever a slot is free, a reader takes the answers.
type cmdConn struct {
	idx  int
	ws   *websocket.Conn
	run  string
	cfg  *CommandsConfig
	from time.Time // window start
	to   time.Time // window end

	slots chan struct{} // one token per free in-flight slot
	done  chan struct{} // closed when the reader has returned

	mu      sync.Mutex
	pending map[int64]pend // by seq (the ref)

	sent        atomic.Int64
	answered    atomic.Int64
	outstanding atomic.Int64

	// reader-owned until the reader has returned
	acks, acksTotal, errs, unknown int64
	codes                          map[string]int64
	lat                            []int64
	versions                       map[int][]uint64 // by stream index
	connErr                        error
}

type pend struct {
	at     int64 // send time, unix nanos
	stream int
}

func streamName(run string, i int) string { return "room:bench-" + run + "-" + strconv.Itoa(i) }

func (c *cmdConn) write(ctx context.Context, stop <-chan struct{}, streams []string) {
	var buf []byte
	text := strings.Repeat("x", max(1, c.cfg.TextLen))
	var seq int64
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-c.slots:
		}
		seq++
		si := (c.idx + int(seq)) % c.cfg.Streams
		buf = append(buf[:0], `{"op":"command","stream":"`...)
		buf = append(buf, streams[si]...)
		buf = append(buf, `","type":"PostMessage","data":{"user":"bench","text":"`...)
		buf = append(buf, text...)
		buf = append(buf, `"},"id":"`...)
		buf = append(buf, c.run...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(c.idx), 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, `","ref":"`...)
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, `"}`...)
		c.mu.Lock()
		c.pending[seq] = pend{at: time.Now().UnixNano(), stream: si}
		c.mu.Unlock()
		c.outstanding.Add(1)
		c.sent.Add(1)
		if err := c.ws.Write(ctx, websocket.MessageText, buf); err != nil {
			return // the reader sees the connection fail
		}
	}
}

func (c *cmdConn) read(ctx context.Context, streams []string) {
	fr := frameReader{c: c.ws}
	from, to := c.from.UnixNano(), c.to.UnixNano()
	for {
		b, err := fr.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.connErr = err
			}
			return
		}
		now := time.Now().UnixNano()
		r, err := parseReply(b)
		if err != nil || (r.Op != "ack" && r.Op != "error") {
			continue
		}
		seq, perr := strconv.ParseInt(r.Ref, 10, 64)
		c.mu.Lock()
		p, ok := c.pending[seq]
		if ok {
			delete(c.pending, seq)
		}
		c.mu.Unlock()
		if perr != nil || !ok {
			c.unknown++
			continue
		}
		inWindow := now >= from && now < to
		if r.Op == "ack" {
			c.acksTotal++
			if r.Stream == streams[p.stream] {
				c.versions[p.stream] = append(c.versions[p.stream], r.Version)
			} else {
				c.unknown++
			}
			if inWindow {
				c.acks++
				c.lat = append(c.lat, now-p.at)
			}
		} else {
			c.errs++
			c.codes[r.Code]++
		}
		c.answered.Add(1)
		c.outstanding.Add(-1)
		c.slots <- struct{}{} // never blocks: at most Inflight tokens exist
	}
}

// RunCommands runs the commands scenario against running servers.
func RunCommands(ctx context.Context, cfg CommandsConfig) (*CommandsResult, error) {
	if len(cfg.Targets) == 0 || cfg.Conns < 1 || cfg.Inflight < 1 || cfg.Streams < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 {
		return nil, errors.New("need targets, conns, inflight and streams >= 1, duration > 0 and warmup >= 0")
	}
	if cfg.dialer == nil {
		cfg.dialer, _ = newDialer(nil)
	}
	run := runID()
	streams := make([]string, cfg.Streams)
	for i := range streams {
		streams[i] = streamName(run, i)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	conns := make([]*cmdConn, cfg.Conns)
	wss := make([]*websocket.Conn, cfg.Conns)
	defer func() { closeAll(wss) }()
	for i := range conns {
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		ws, err := cfg.dialer.dial(dctx, i, cfg.Targets[i%len(cfg.Targets)])
		dcancel()
		if err != nil {
			return nil, err
		}
		wss[i] = ws
		c := &cmdConn{idx: i, ws: ws, run: run, cfg: &cfg, slots: make(chan struct{}, cfg.Inflight), done: make(chan struct{}),
			pending: make(map[int64]pend), codes: make(map[string]int64), versions: make(map[int][]uint64)}
		for range cfg.Inflight {
			c.slots <- struct{}{}
		}
		conns[i] = c
	}

	start := time.Now()
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for _, c := range conns {
		c.from, c.to = from, to
		readers.Add(1)
		go func() { defer readers.Done(); defer close(c.done); c.read(runCtx, streams) }()
		writers.Add(1)
		go func() { defer writers.Done(); c.write(runCtx, stop, streams) }()
	}
	var last int64
	progStop := startProgress(cfg.Progress, start, func() string {
		var ans, out int64
		for _, c := range conns {
			ans += c.answered.Load()
			out += c.outstanding.Load()
		}
		phase := "measuring"
		if time.Now().Before(from) {
			phase = "warm-up"
		} else if time.Now().After(to) {
			phase = "draining"
		}
		d := ans - last
		last = ans
		return fmt.Sprintf("%s answered=%d (%d/s) in-flight=%d", phase, ans, d, out)
	})
	defer progStop()

	wait := func(t time.Time) bool {
		tm := time.NewTimer(time.Until(t))
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !wait(from) {
		return nil, ctx.Err()
	}
	m0 := markCPU(cfg.CPUPIDs)
	if !wait(to) {
		return nil, ctx.Err()
	}
	m1 := markCPU(cfg.CPUPIDs)
	close(stop)
	writers.Wait()
	// Wait for the answers to what is still in flight on the connections
	// that still work; polling the tool's own counters costs nothing
	// measurable.
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil && waiting(conns) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	closeAll(wss)
	readers.Wait()
	progStop()

	res := &CommandsResult{Scenario: "commands", Run: run, Targets: cfg.Targets, Conns: cfg.Conns, Inflight: cfg.Inflight,
		Streams: cfg.Streams, Warmup: cfg.Warmup.Seconds(), Duration: cfg.Duration.Seconds(), ErrorCodes: map[string]int64{}}
	var lat []int64
	byStream := make(map[int][]uint64)
	for _, c := range conns {
		res.Sent += c.sent.Load()
		res.Acks += c.acks
		res.AcksTotal += c.acksTotal
		res.Errors += c.errs
		res.UnknownReplies += c.unknown
		res.Unanswered += c.outstanding.Load()
		for k, v := range c.codes {
			res.ErrorCodes[k] += v
		}
		lat = append(lat, c.lat...)
		for s, vs := range c.versions {
			byStream[s] = append(byStream[s], vs...)
		}
		if c.connErr != nil {
			res.ConnErrors = append(res.ConnErrors, fmt.Sprintf("conn %d: %v", c.idx, c.connErr))
		}
	}
	for _, vs := range byStream {
		slices.Sort(vs)
		for i := 1; i < len(vs); i++ {
			if vs[i] == vs[i-1] {
				res.DuplicateVersions++
			}
		}
	}
	res.Latency = summarize(lat)
	res.AcksPerSec = float64(res.Acks) / cfg.Duration.Seconds()
	res.CPU = cpuBetween(m0, m1, res.Acks)
	return res, nil
}

// waiting tells whether a connection that still reads has commands in
// flight.
func waiting(conns []*cmdConn) bool {
	for _, c := range conns {
		select {
		case <-c.done:
			continue
		default:
		}
		if c.outstanding.Load() > 0 {
			return true
		}
	}
	return false
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
