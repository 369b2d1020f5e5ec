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

// FanoutConfig is the fanout scenario's set-up.
type FanoutConfig struct {
	Targets         []string
	Subs            int    // subscriber connections, round-robin over Targets
	Stream          string // the room; "" for a fresh room:bench-RUN
	PublisherTarget int    // index into Targets of the publisher's server
	Rate            float64
	Count           int
	Drain           time.Duration // after the last publish, wait at most this long for deliveries
	SetupTimeout    time.Duration // connecting and subscribing every subscriber
	DialParallel    int           // connections being opened at once
	CPUPIDs         []int
	Progress        io.Writer
	dialer          *dialer
}

// FanoutResult is what the fanout scenario measured.
type FanoutResult struct {
	Scenario         string           `json:"scenario"`
	Targets          []string         `json:"targets"`
	Stream           string           `json:"stream"`
	Subs             int              `json:"subs"`
	Count            int              `json:"count"`
	Rate             float64          `json:"rate"`
	SetupSeconds     float64          `json:"setup_seconds"`
	Published        int64            `json:"published"` // acked by the server
	PublishErrors    int64            `json:"publish_errors"`
	PublishCodes     map[string]int64 `json:"publish_errors_by_code"`
	Expected         int64            `json:"expected"` // subs × count
	Received         int64            `json:"received"` // distinct messages of this run delivered
	Lost             int64            `json:"lost"`
	Duplicates       int64            `json:"duplicates"`
	OutOfOrder       int64            `json:"out_of_order"`
	Foreign          int64            `json:"foreign"` // events of the room not published by this run
	WindowSeconds    float64          `json:"window_seconds"`
	DeliveriesPerSec float64          `json:"deliveries_per_second"`
	Latency          Latency          `json:"delivery_latency"`
	DrainTimedOut    bool             `json:"drain_timed_out"`
	SubErrors        []string         `json:"subscriber_errors,omitempty"`
	CPU              *CPU             `json:"cpu"`
}

func runFanoutCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cm common
	cm.register(fs)
	cfg := FanoutConfig{}
	fs.IntVar(&cfg.Subs, "subs", 1000, "subscriber connections, each subscribed to the room")
	fs.StringVar(&cfg.Stream, "stream", "", "the room stream (default: a fresh room:bench-RUN)")
	fs.IntVar(&cfg.PublisherTarget, "publisher-target", 0, "index in -targets of the server the publisher connects to")
	fs.Float64Var(&cfg.Rate, "rate", 50, "messages per second the publisher posts")
	fs.IntVar(&cfg.Count, "count", 200, "messages the publisher posts")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "after the last publish, wait at most this long for every subscriber to get the last message; what has not arrived then is lost")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 2*time.Minute, "time allowed to connect and subscribe every subscriber")
	fs.IntVar(&cfg.DialParallel, "dial-parallel", 64, "subscriber connections being opened at once")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench fanout [flags]

-subs connections subscribe to one room; once every one has its
"subscribed" reply, a publisher connection posts -count messages at -rate,
each carrying its send time, and every subscriber measures publish→delivery
latency (the clocks of this machine only). Reported: deliveries/s, expected
(subs × count), lost, duplicates (a subscriber seeing a version twice),
latency p50/p99/max.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
	}, func() (printer, error) { return RunFanout(ctx, cfg) })
}

func (r *FanoutResult) print(w io.Writer) {
	t := newTable(w)
	t.row("scenario", "fanout: %d subscribers of %s, %d messages at %.0f/s, %d target(s)", r.Subs, r.Stream, r.Count, r.Rate, len(r.Targets))
	t.row("set-up", "%.1f s to connect and subscribe", r.SetupSeconds)
	t.row("deliveries/s", "%.0f over %.1f s", r.DeliveriesPerSec, r.WindowSeconds)
	t.row("published", "%d acked, %d errors  %s", r.Published, r.PublishErrors, codes(r.PublishCodes))
	t.row("delivered", "%d of %d expected", r.Received, r.Expected)
	t.row("lost", "%d", r.Lost)
	t.row("duplicates", "%d", r.Duplicates)
	t.row("out of order", "%d", r.OutOfOrder)
	if r.Foreign > 0 {
		t.row("foreign events", "%d", r.Foreign)
	}
	t.latency("delivery latency", r.Latency)
	if r.DrainTimedOut {
		t.row("drain", "timed out")
	}
	if len(r.SubErrors) > 0 {
		t.row("subscriber errors", "%d: %s", len(r.SubErrors), r.SubErrors[0])
	}
	t.cpu(r.CPU, "delivery")
	t.flush()
}

// subscriber is one subscribed connection; only its reader goroutine
// touches the fields below the atomics until it has returned.
type subscriber struct {
	ws         *websocket.Conn
	run        string
	subscribed chan struct{} // closed on the "subscribed" reply
	done       chan struct{} // closed when the reader returns

	base       atomic.Uint64 // the room's version at subscription
	maxVersion atomic.Uint64 // highest version of this run seen
	received   atomic.Int64  // distinct messages of this run

	seen       []uint64 // bitset by version-base-1
	lat        []int64
	dups       int64
	outOfOrder int64
	foreign    int64
	lastAt     int64 // unix nanos of the last delivery
	err        error
}

func (s *subscriber) read(ctx context.Context) {
	defer close(s.done)
	fr := frameReader{c: s.ws}
	prefix := []byte(s.run + ".")
	isSubscribed := false
	var last uint64
	for {
		b, err := fr.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.err = err
			}
			return
		}
		now := time.Now().UnixNano()
		v, text, ok := parseEvent(b)
		if !ok {
			r, err := parseReply(b)
			if err != nil {
				continue
			}
			switch r.Op {
			case "subscribed":
				if !isSubscribed {
					isSubscribed = true
					s.base.Store(r.Version)
					close(s.subscribed)
				}
			case "error":
				s.err = fmt.Errorf("error frame: %s: %s", r.Code, r.Message)
				return
			}
			continue
		}
		if len(text) <= len(prefix) || string(text[:len(prefix)]) != string(prefix) {
			s.foreign++
			continue
		}
		sent, err := strconv.ParseInt(string(text[len(prefix):]), 10, 64)
		base := s.base.Load()
		if err != nil || v <= base {
			s.foreign++
			continue
		}
		i := v - base - 1
		for uint64(len(s.seen))*64 <= i {
			s.seen = append(s.seen, 0)
		}
		if s.seen[i/64]&(1<<(i%64)) != 0 {
			s.dups++
			continue
		}
		s.seen[i/64] |= 1 << (i % 64)
		if v < last {
			s.outOfOrder++
		}
		last = max(last, v)
		s.lat = append(s.lat, now-sent)
		s.lastAt = now
		s.received.Add(1)
		if v > s.maxVersion.Load() {
			s.maxVersion.Store(v)
		}
	}
}

// RunFanout runs the fanout scenario against running servers.
func RunFanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if len(cfg.Targets) == 0 || cfg.Subs < 1 || cfg.Count < 1 || cfg.Rate <= 0 {
		return nil, errors.New("need targets, subs >= 1, count >= 1 and rate > 0")
	}
	if cfg.PublisherTarget < 0 || cfg.PublisherTarget >= len(cfg.Targets) {
		return nil, fmt.Errorf("publisher target %d: there are %d targets", cfg.PublisherTarget, len(cfg.Targets))
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
	if cfg.Stream == "" {
		cfg.Stream = "room:bench-" + run
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()

	subs := make([]*subscriber, cfg.Subs)
	wss := make([]*websocket.Conn, cfg.Subs+1)
	var readers sync.WaitGroup
	defer func() {
		cancel()
		closeAll(wss)
		readers.Wait()
	}()

	var connected atomic.Int64
	var phase atomic.Value
	phase.Store("connecting")
	var pubSent, pubAcked atomic.Int64
	for i := range subs {
		subs[i] = &subscriber{run: run, subscribed: make(chan struct{}), done: make(chan struct{})}
	}
	var lastRecv int64
	progStop := startProgress(cfg.Progress, start, func() string {
		var recv int64
		for _, s := range subs {
			recv += s.received.Load()
		}
		d := recv - lastRecv
		lastRecv = recv
		return fmt.Sprintf("%s subscribed=%d/%d published=%d/%d acked=%d delivered=%d/%d (%d/s)",
			phase.Load(), connected.Load(), cfg.Subs, pubSent.Load(), cfg.Count, pubAcked.Load(),
			recv, int64(cfg.Subs)*int64(cfg.Count), d)
	})
	defer progStop()

	// Connect and subscribe every subscriber, DialParallel at a time.
	setupCtx, setupCancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer setupCancel()
	var setupErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { setupErr = err; setupCancel() }) }
	sem := make(chan struct{}, cfg.DialParallel)
	var dialing sync.WaitGroup
	subFrame := []byte(`{"op":"subscribe","stream":` + strconv.Quote(cfg.Stream) + `,"ref":"s"}`)
	for i, s := range subs {
		dialing.Add(1)
		sem <- struct{}{}
		go func() {
			defer dialing.Done()
			defer func() { <-sem }()
			if setupCtx.Err() != nil {
				return
			}
			ws, err := cfg.dialer.dial(setupCtx, i, cfg.Targets[i%len(cfg.Targets)])
			if err != nil {
				fail(fmt.Errorf("subscriber %d: %w", i, err))
				return
			}
			wss[i] = ws
			s.ws = ws
			readers.Add(1)
			go func() { defer readers.Done(); s.read(runCtx) }()
			if err := ws.Write(setupCtx, websocket.MessageText, subFrame); err != nil {
				fail(fmt.Errorf("subscriber %d: subscribe: %w", i, err))
				return
			}
			select {
			case <-s.subscribed:
				connected.Add(1)
			case <-s.done:
				fail(fmt.Errorf("subscriber %d: subscribe: %v", i, s.err))
			case <-setupCtx.Done():
				fail(fmt.Errorf("subscriber %d: no subscribed reply within -setup-timeout", i))
			}
		}()
	}
	dialing.Wait()
	if setupErr != nil {
		return nil, fmt.Errorf("%w (%d of %d subscribed)", setupErr, connected.Load(), cfg.Subs)
	}
	setupSecs := time.Since(start).Seconds()

	// The publisher: a writer paced by the clock, a reader for its acks.
	pubCtx, pubCancel := context.WithTimeout(ctx, 30*time.Second)
	pws, err := cfg.dialer.dial(pubCtx, cfg.Subs, cfg.Targets[cfg.PublisherTarget])
	pubCancel()
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	wss[cfg.Subs] = pws
	pubCodes := map[string]int64{} // the publisher's reader's until it returns
	var pubErrs atomic.Int64
	var lastVersion atomic.Uint64
	pubDone := make(chan struct{})
	var pubReadErr error
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(pubDone)
		fr := frameReader{c: pws}
		for {
			b, err := fr.next(runCtx)
			if err != nil {
				if runCtx.Err() == nil {
					pubReadErr = err
				}
				return
			}
			r, err := parseReply(b)
			if err != nil {
				continue
			}
			switch r.Op {
			case "ack":
				if r.Version > lastVersion.Load() {
					lastVersion.Store(r.Version)
				}
				pubAcked.Add(1)
			case "error":
				pubErrs.Add(1)
				pubCodes[r.Code]++
			default:
				continue
			}
			if pubAcked.Load()+pubErrs.Load() == int64(cfg.Count) {
				return
			}
		}
	}()

	phase.Store("publishing")
	m0 := markCPU(cfg.CPUPIDs)
	pubStart := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var buf []byte
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for n := range cfg.Count {
		if d := time.Until(pubStart.Add(time.Duration(n) * interval)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		buf = append(buf[:0], `{"op":"command","stream":`...)
		buf = strconv.AppendQuote(buf, cfg.Stream)
		buf = append(buf, `,"type":"PostMessage","data":{"user":"bench","text":"`...)
		buf = append(buf, run...)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, `"},"id":"`...)
		buf = append(buf, run...)
		buf = append(buf, "-p-"...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		buf = append(buf, `"}`...)
		if err := pws.Write(ctx, websocket.MessageText, buf); err != nil {
			return nil, fmt.Errorf("publisher: %w", err)
		}
		pubSent.Add(1)
	}

	// Drain: wait for the publisher's answers, then for every subscriber
	// to have the last message, within -drain from the last publish.
	phase.Store("draining")
	drainEnd := time.Now().Add(cfg.Drain)
	timedOut := false
	tm := time.NewTimer(time.Until(drainEnd))
	select {
	case <-pubDone:
	case <-tm.C:
		timedOut = true
	case <-ctx.Done():
		tm.Stop()
		return nil, ctx.Err()
	}
	tm.Stop()
	last := lastVersion.Load()
	for !timedOut && ctx.Err() == nil && !allHave(subs, last) {
		if time.Now().After(drainEnd) {
			timedOut = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	m1 := markCPU(cfg.CPUPIDs)
	cancel()
	closeAll(wss)
	readers.Wait()
	progStop()

	res := &FanoutResult{Scenario: "fanout", Targets: cfg.Targets, Stream: cfg.Stream, Subs: cfg.Subs, Count: cfg.Count,
		Rate: cfg.Rate, SetupSeconds: setupSecs, Published: pubAcked.Load(), PublishErrors: pubErrs.Load(), PublishCodes: pubCodes,
		Expected: int64(cfg.Subs) * int64(cfg.Count), DrainTimedOut: timedOut}
	var lat []int64
	var lastAt int64
	for i, s := range subs {
		res.Received += s.received.Load()
		res.Duplicates += s.dups
		res.OutOfOrder += s.outOfOrder
		res.Foreign += s.foreign
		lat = append(lat, s.lat...)
		lastAt = max(lastAt, s.lastAt)
		if s.err != nil {
			res.SubErrors = append(res.SubErrors, fmt.Sprintf("subscriber %d: %v", i, s.err))
		}
	}
	if pubReadErr != nil {
		res.SubErrors = append(res.SubErrors, fmt.Sprintf("publisher: %v", pubReadErr))
	}
	res.Lost = res.Expected - res.Received
	res.Latency = summarize(lat)
	if lastAt > pubStart.UnixNano() {
		res.WindowSeconds = float64(lastAt-pubStart.UnixNano()) / 1e9
		res.DeliveriesPerSec = float64(res.Received) / res.WindowSeconds
	}
	res.CPU = cpuBetween(m0, m1, res.Received)
	return res, nil
}

// allHave tells whether every subscriber that still reads has seen
// version v (a subscriber whose connection failed will get nothing more).
func allHave(subs []*subscriber, v uint64) bool {
	for _, s := range subs {
		select {
		case <-s.done:
			continue
		default:
		}
		if s.maxVersion.Load() < v {
			return false
		}
	}
	return true
}
