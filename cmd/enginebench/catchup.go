package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// CatchupConfig is the catchup scenario's set-up.
type CatchupConfig struct {
	Targets  []string
	Events   int           // events appended to the fresh room before the catch-up
	Conns    int           // connections that append them
	Inflight int           // commands in flight on each of those
	TextLen  int           // characters of each message's text
	Timeout  time.Duration // bounds the fill and, separately, the catch-up
	CPUPIDs  []int
	Progress io.Writer
	dialer   *dialer
}

// CatchupResult is what the catchup scenario measured.
type CatchupResult struct {
	Scenario      string           `json:"scenario"`
	Targets       []string         `json:"targets"`
	Stream        string           `json:"stream"`
	Events        int              `json:"events"`
	FillConns     int              `json:"fill_conns"`
	FillInflight  int              `json:"fill_inflight"`
	FillSeconds   float64          `json:"fill_seconds"`
	FillPerSec    float64          `json:"fill_events_per_second"`
	FillErrors    int64            `json:"fill_errors"`
	FillCodes     map[string]int64 `json:"fill_errors_by_code"`
	Version       uint64           `json:"version"` // the room's version in the subscribed reply
	FirstEventMs  float64          `json:"first_event_ms"`
	CatchupSecs   float64          `json:"catchup_seconds"` // subscribe sent → last event received
	CatchupPerSec float64          `json:"catchup_events_per_second"`
	Received      int64            `json:"received"` // distinct versions 1…Version
	Duplicates    int64            `json:"duplicates"`
	OutOfOrder    int64            `json:"out_of_order"`
	Gaps          int64            `json:"gaps"` // versions 1…Version never received
	Foreign       int64            `json:"foreign"`
	TimedOut      bool             `json:"timed_out"`
	CPU           *CPU             `json:"cpu"` // over the catch-up
}

func runCatchupCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("catchup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cm common
	cm.register(fs)
	cfg := CatchupConfig{}
	fs.IntVar(&cfg.Events, "events", 100000, "events appended to a fresh room before the catch-up")
	fs.IntVar(&cfg.Conns, "conns", 4, "connections appending the events")
	fs.IntVar(&cfg.Inflight, "inflight", 64, "commands in flight on each appending connection")
	fs.IntVar(&cfg.TextLen, "text", 32, "characters of each message's text")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bounds the fill, and then the catch-up")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench catchup [flags]

Appends -events PostMessage events to a fresh room room:bench-RUN over
-conns connections with -inflight commands in flight each (reported: fill
rate), then one new connection subscribes with "from":0 and the tool
measures the time until it has every event 1…version: time to the first
event, to the last, events/s, and duplicates, out-of-order events and gaps.
-cpu-pid: server CPU over the catch-up.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
	}, func() (printer, error) { return RunCatchup(ctx, cfg) })
}

func (r *CatchupResult) print(w io.Writer) {
	t := newTable(w)
	t.row("scenario", "catchup: %d events in %s, %d target(s)", r.Events, r.Stream, len(r.Targets))
	t.row("fill", "%.1f s  (%.0f events/s over %d conns x %d in flight), %d errors  %s",
		r.FillSeconds, r.FillPerSec, r.FillConns, r.FillInflight, r.FillErrors, codes(r.FillCodes))
	t.row("catch-up", "%.3f s for %d events  (%.0f events/s), first after %.2f ms", r.CatchupSecs, r.Version, r.CatchupPerSec, r.FirstEventMs)
	t.row("received", "%d of %d", r.Received, r.Version)
	t.row("duplicates", "%d", r.Duplicates)
	t.row("out of order", "%d", r.OutOfOrder)
	t.row("gaps", "%d", r.Gaps)
	if r.Foreign > 0 {
		t.row("foreign events", "%d", r.Foreign)
	}
	if r.TimedOut {
		t.row("catch-up", "timed out")
	}
	t.cpu(r.CPU, "event")
	t.flush()
}

// fill appends cfg.Events messages to stream; it returns the number of
// acks, errors by code and the highest acked version.
func fill(ctx context.Context, cfg *CatchupConfig, run, stream string, progress *atomic.Int64) (acks, errs int64, codes map[string]int64, top uint64, err error) {
	var next atomic.Int64 // commands handed out
	codes = map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Conns)
	text := strings.Repeat("x", max(1, cfg.TextLen))
	for i := range cfg.Conns {
		ws, err := cfg.dialer.dial(ctx, i, cfg.Targets[i%len(cfg.Targets)])
		if err != nil {
			return 0, 0, nil, 0, err
		}
		defer ws.CloseNow()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A reader returns a token per answer; the writer sends one
			// command per token, until every command is handed out.
			slots := make(chan struct{}, cfg.Inflight)
			for range cfg.Inflight {
				slots <- struct{}{}
			}
			readErr := make(chan error, 1)
			var sent atomic.Int64
			var writerDone atomic.Bool
			go func() {
				fr := frameReader{c: ws}
				var answered int64
				for {
					if writerDone.Load() && answered == sent.Load() {
						readErr <- nil
						return
					}
					b, err := fr.next(ctx)
					if err != nil {
						readErr <- err
						return
					}
					r, err := parseReply(b)
					if err != nil || (r.Op != "ack" && r.Op != "error") {
						continue
					}
					answered++
					mu.Lock()
					if r.Op == "ack" {
						acks++
						top = max(top, r.Version)
					} else {
						errs++
						codes[r.Code]++
					}
					mu.Unlock()
					progress.Add(1)
					slots <- struct{}{}
				}
			}()
			var buf []byte
			for {
				select {
				case <-slots:
				case err := <-readErr:
					if err == nil {
						err = errors.New("the connection stopped reading")
					}
					errc <- err
					return
				}
				n := next.Add(1)
				if n > int64(cfg.Events) {
					break
				}
				buf = append(buf[:0], `{"op":"command","stream":`...)
				buf = strconv.AppendQuote(buf, stream)
				buf = append(buf, `,"type":"PostMessage","data":{"user":"bench","text":"`...)
				buf = append(buf, text...)
				buf = append(buf, `"},"id":"`...)
				buf = append(buf, run...)
				buf = append(buf, "-f-"...)
				buf = strconv.AppendInt(buf, n, 10)
				buf = append(buf, `","ref":"`...)
				buf = strconv.AppendInt(buf, n, 10)
				buf = append(buf, `"}`...)
				sent.Add(1)
				if err := ws.Write(ctx, websocket.MessageText, buf); err != nil {
					errc <- err
					return
				}
			}
			writerDone.Store(true)
			// The reader checks writerDone before each read: a ping's pong
			// wakes it if every answer came in before the flag was set.
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","ref":"end"}`)); err != nil {
				errc <- err
				return
			}
			if err := <-readErr; err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, 0, nil, 0, fmt.Errorf("fill: %w", err)
	}
	return acks, errs, codes, top, nil
}

// RunCatchup runs the catchup scenario against running servers.
func RunCatchup(ctx context.Context, cfg CatchupConfig) (*CatchupResult, error) {
	if len(cfg.Targets) == 0 || cfg.Events < 1 || cfg.Conns < 1 || cfg.Inflight < 1 {
		return nil, errors.New("need targets, events, conns and inflight >= 1")
	}
	if cfg.dialer == nil {
		cfg.dialer, _ = newDialer(nil)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	run := runID()
	stream := "room:bench-" + run
	res := &CatchupResult{Scenario: "catchup", Targets: cfg.Targets, Stream: stream, Events: cfg.Events, FillConns: cfg.Conns, FillInflight: cfg.Inflight}

	start := time.Now()
	var filled, received atomic.Int64
	var phase atomic.Value
	phase.Store("filling")
	progStop := startProgress(cfg.Progress, start, func() string {
		return fmt.Sprintf("%s answered=%d/%d caught-up=%d", phase.Load(), filled.Load(), cfg.Events, received.Load())
	})
	defer progStop()

	fillCtx, fillCancel := context.WithTimeout(ctx, cfg.Timeout)
	acks, errs, fcodes, top, err := fill(fillCtx, &cfg, run, stream, &filled)
	fillCancel()
	if err != nil {
		return nil, err
	}
	fillDur := time.Since(start)
	res.FillSeconds, res.FillErrors, res.FillCodes = fillDur.Seconds(), errs, fcodes
	res.FillPerSec = float64(acks) / fillDur.Seconds()
	if acks == 0 {
		return nil, fmt.Errorf("fill: no command acked (%d errors %s)", errs, codes(fcodes))
	}

	// The catch-up: one new connection, subscribe from 0.
	phase.Store("catching up")
	cctx, ccancel := context.WithTimeout(ctx, cfg.Timeout)
	defer ccancel()
	ws, err := cfg.dialer.dial(cctx, cfg.Conns, cfg.Targets[0])
	if err != nil {
		return nil, fmt.Errorf("catch-up: %w", err)
	}
	defer ws.CloseNow()
	m0 := markCPU(cfg.CPUPIDs)
	t0 := time.Now()
	if err := ws.Write(cctx, websocket.MessageText, []byte(`{"op":"subscribe","stream":`+strconv.Quote(stream)+`,"from":0,"ref":"c"}`)); err != nil {
		return nil, fmt.Errorf("catch-up: subscribe: %w", err)
	}
	want := top // until the subscribed reply names the version
	seen := make([]uint64, want/64+1)
	var last uint64
	var first, end time.Time
	fr := frameReader{c: ws}
	for uint64(received.Load()) < want {
		b, err := fr.next(cctx)
		if err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				res.TimedOut = true
				break
			}
			return nil, fmt.Errorf("catch-up: %w", err)
		}
		v, _, ok := parseEvent(b)
		if !ok {
			r, err := parseReply(b)
			if err != nil {
				continue
			}
			switch r.Op {
			case "subscribed":
				res.Version = r.Version
				want = r.Version
				for uint64(len(seen))*64 <= want {
					seen = append(seen, 0)
				}
			case "error":
				return nil, fmt.Errorf("catch-up: error frame: %s: %s", r.Code, r.Message)
			}
			continue
		}
		if first.IsZero() {
			first = time.Now()
		}
		if v == 0 || v > want {
			res.Foreign++ // an event appended after the subscription
			continue
		}
		i := v - 1
		if seen[i/64]&(1<<(i%64)) != 0 {
			res.Duplicates++
			continue
		}
		seen[i/64] |= 1 << (i % 64)
		if v < last {
			res.OutOfOrder++
		}
		last = max(last, v)
		end = time.Now()
		received.Add(1)
	}
	m1 := markCPU(cfg.CPUPIDs)
	progStop()
	if res.Version == 0 {
		res.Version = want
	}
	res.Received = received.Load()
	res.Gaps = int64(res.Version) - res.Received
	if !first.IsZero() {
		res.FirstEventMs = float64(first.Sub(t0)) / 1e6
		res.CatchupSecs = end.Sub(t0).Seconds()
		res.CatchupPerSec = float64(res.Received) / res.CatchupSecs
	}
	res.CPU = cpuBetween(m0, m1, res.Received)
	return res, nil
}
