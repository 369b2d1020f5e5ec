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
	Server          string // engine (""), centrifugo or naive
	Centrifugo      centrifugoAuth
	Subs            int    // subscriber connections, round-robin over Targets
	Stream          string // the room; "" for a fresh room:bench-RUN (bench:bench-RUN on Centrifugo)
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
	Server           string           `json:"server"`
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
	var sf serverFlags
	sf.register(fs)
	cfg := FanoutConfig{}
	fs.IntVar(&cfg.Subs, "subs", 1000, "subscriber connections, each subscribed to the room")
	fs.StringVar(&cfg.Stream, "stream", "", "the room (default: a fresh room:bench-RUN on the engine, NAMESPACE:bench-RUN on Centrifugo; the naive server has one room)")
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

-server picks the protocol, with the same measurement for each:
  engine      subscribe on /ws; the publisher sends PostMessage commands on
              /ws, acked once durable; versions count deliveries.
  centrifugo  connect (HMAC token) and subscribe on /connection/websocket to
              NAMESPACE:bench-RUN (history and force_recovery on: see
              enginebench centrifugo-config); the publisher posts to the HTTP
              API (POST /api/publish, X-API-Key), answered with the offset;
              offsets count deliveries.
  naive       enginebench naive: every connection to /ws gets every frame;
              the publisher is one more connection, its message number is
              the version and its own echo the ack.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
		cfg.Server, cfg.Centrifugo = sf.kind, sf.cf
	}, func() (printer, error) { return RunFanout(ctx, cfg) })
}

func (r *FanoutResult) print(w io.Writer) {
	t := newTable(w)
	t.row("scenario", "fanout: %d subscribers of %s, %d messages at %.0f/s, %d target(s), server %s", r.Subs, r.Stream, r.Count, r.Rate, len(r.Targets), r.Server)
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
	ws   *websocket.Conn
	w    wire
	run  string
	done chan struct{} // closed when the reader returns

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
	var last uint64
	var msgs []wireMsg
	for {
		b, err := fr.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.err = err
			}
			return
		}
		now := time.Now().UnixNano()
		msgs = s.w.decode(b, msgs[:0])
		for _, m := range msgs {
			switch m.kind {
			case msgPing:
				if err := s.ws.Write(ctx, websocket.MessageText, pongFrame); err != nil {
					if ctx.Err() == nil {
						s.err = err
					}
					return
				}
				continue
			case msgError:
				s.err = fmt.Errorf("error frame: %s: %s", m.code, m.text)
				return
			case msgOther:
				continue
			}
			v, text := m.seq, m.text
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
}

// RunFanout runs the fanout scenario against running servers.
func RunFanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if len(cfg.Targets) == 0 || cfg.Subs < 1 || cfg.Count < 1 || cfg.Rate <= 0 {
		return nil, errors.New("need targets, subs >= 1, count >= 1 and rate > 0")
	}
	if cfg.PublisherTarget < 0 || cfg.PublisherTarget >= len(cfg.Targets) {
		return nil, fmt.Errorf("publisher target %d: there are %d targets", cfg.PublisherTarget, len(cfg.Targets))
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
	if cfg.Stream == "" {
		cfg.Stream = w.channel("bench-" + run)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()

	subs := make([]*subscriber, cfg.Subs)
	wss := make([]*websocket.Conn, cfg.Subs)
	var readers sync.WaitGroup
	defer func() {
		cancel()
		closeAll(wss)
		readers.Wait()
	}()

	var connected atomic.Int64
	var phase atomic.Value
	phase.Store("connecting")
	var pubSent atomic.Int64
	tally := newPubTally(cfg.Count)
	for i := range subs {
		subs[i] = &subscriber{w: w, run: run, done: make(chan struct{})}
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
			phase.Load(), connected.Load(), cfg.Subs, pubSent.Load(), cfg.Count, tally.acked.Load(),
			recv, int64(cfg.Subs)*int64(cfg.Count), d)
	})
	defer progStop()

	// Connect and subscribe every subscriber, DialParallel at a time.
	err = openAll(ctx, cfg.Subs, cfg.DialParallel, cfg.SetupTimeout, func(ctx context.Context, i int) error {
		s := subs[i]
		ws, pos, err := w.open(ctx, cfg.dialer, i, cfg.Targets[i%len(cfg.Targets)], cfg.Stream)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		wss[i] = ws
		s.ws = ws
		s.base.Store(pos)
		connected.Add(1)
		readers.Add(1)
		go func() { defer readers.Done(); s.read(runCtx) }()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%d of %d subscribed)", err, connected.Load(), cfg.Subs)
	}
	setupSecs := time.Since(start).Seconds()

	// The publisher: paced by the clock; its acks go to tally.
	pub, err := w.publisher(runCtx, cfg.dialer, cfg.Subs, cfg.Targets[cfg.PublisherTarget], cfg.Stream, tally)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	pubClosed := false
	closePub := func() {
		if !pubClosed {
			pubClosed = true
			cancel()
			pub.close()
		}
	}
	defer closePub()

	phase.Store("publishing")
	m0 := markCPU(cfg.CPUPIDs)
	pubStart := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var text []byte
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
		text = eventText(text, run, time.Now())
		if err := pub.publish(ctx, n, text); err != nil {
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
	case <-tally.done:
	case <-tm.C:
		timedOut = true
	case <-ctx.Done():
		tm.Stop()
		return nil, ctx.Err()
	}
	tm.Stop()
	last := tally.lastVersion.Load()
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
	closePub()
	readers.Wait()
	progStop()

	pubCodes, pubReadErr := tally.snapshot()

	res := &FanoutResult{Scenario: "fanout", Server: cfg.Server, Targets: cfg.Targets, Stream: cfg.Stream, Subs: cfg.Subs, Count: cfg.Count,
		Rate: cfg.Rate, SetupSeconds: setupSecs, Published: tally.acked.Load(), PublishErrors: tally.errs.Load(), PublishCodes: pubCodes,
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
