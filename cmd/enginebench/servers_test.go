package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/b6368a97/engine/transport/transporttest"
)

// The fanout and idle scenarios against the naive server (in this
// process) and, where its binary is installed, against Centrifugo.

// startNaive serves the naive server on a free loopback port until the
// test ends.
func startNaive(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveNaive(ctx, ln, 65536) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("naive server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// startCentrifugo starts the installed centrifugo with the tool's config
// (pings every 2 s, so that a run of a few seconds answers some) or skips
// the test.
func startCentrifugo(t *testing.T) (base string, pid int) {
	t.Helper()
	bin := findCentrifugo()
	if bin == "" {
		t.Skip("no centrifugo binary (go install github.com/centrifugal/centrifugo/v6@v6.9.1)")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := centrifugoConfig(centrifugoConfigOpts{Port: port, Auth: defaultCentrifugoAuth(), HistorySize: 100,
		HistoryTTL: time.Minute, LogLevel: "info", PingInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := startServer(context.Background(), bin, []string{"-c", conf}, dir, base+"/health")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("centrifugo: %v", err)
		}
		log, err := os.ReadFile(filepath.Join(dir, "server.log"))
		if err != nil {
			t.Error(err)
		}
		// Centrifugo warns of a config key it does not know.
		if bytes.Contains(log, []byte("unknown key")) {
			t.Errorf("centrifugo does not know a key of the config:\n%s", b)
		}
		if t.Failed() {
			t.Logf("centrifugo log:\n%s", log)
		}
	})
	return base, p.cmd.Process.Pid
}

func checkFanout(t *testing.T, res *FanoutResult, subs, count int) {
	t.Helper()
	t.Logf("%+v", *res)
	want := int64(subs * count)
	if res.Expected != want || res.Received != want || res.Lost != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 || res.Foreign != 0 {
		t.Errorf("expected %d received %d lost %d duplicates %d out of order %d foreign %d: want %d delivered, no loss",
			res.Expected, res.Received, res.Lost, res.Duplicates, res.OutOfOrder, res.Foreign, want)
	}
	if res.Published != int64(count) || res.PublishErrors != 0 || res.DrainTimedOut || len(res.SubErrors) != 0 {
		t.Errorf("published %d, errors %d %v, drain timed out %v, subscriber errors %v", res.Published, res.PublishErrors, res.PublishCodes, res.DrainTimedOut, res.SubErrors)
	}
	if res.Latency.Count != int(want) || res.Latency.P50 <= 0 || res.DeliveriesPerSec <= 0 {
		t.Errorf("latency %+v, deliveries/s %.0f", res.Latency, res.DeliveriesPerSec)
	}
	if res.CPU == nil || res.CPU.ServerSeconds == nil {
		t.Errorf("no server CPU: %+v", res.CPU)
	}
}

func checkIdle(t *testing.T, res *IdleResult, conns int) {
	t.Helper()
	t.Logf("%+v", *res)
	if res.ConnLatency.Count != conns || res.OpenSeconds <= 0 || res.ConnLatency.P50 <= 0 {
		t.Errorf("open %.3f s, latency %+v: want %d samples", res.OpenSeconds, res.ConnLatency, conns)
	}
	if res.RSSPerConn == nil {
		t.Errorf("no RSS")
	}
	if res.GoBefore == nil || res.GoAfter == nil || res.MetricsError != "" {
		t.Errorf("/metrics: before %v after %v (%s)", res.GoBefore, res.GoAfter, res.MetricsError)
	} else if res.GoAfter.Goroutines < res.GoBefore.Goroutines+float64(conns) {
		t.Errorf("goroutines %.0f → %.0f: want at least one more per connection", res.GoBefore.Goroutines, res.GoAfter.Goroutines)
	}
	if res.ClosedEarly != 0 || len(res.ConnErrors) != 0 {
		t.Errorf("closed early %d: %v", res.ClosedEarly, res.ConnErrors)
	}
}

func TestFanoutNaiveSmoke(t *testing.T) {
	base := startNaive(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunFanout(ctx, FanoutConfig{Targets: []string{base}, Server: serverNaive, Subs: 20, Rate: 100, Count: 20,
		Drain: 10 * time.Second, CPUPIDs: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res, 20, 20)
	if res.Server != serverNaive {
		t.Errorf("server %q", res.Server)
	}
}

func TestIdleNaiveSmoke(t *testing.T) {
	base := startNaive(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	res, err := RunIdle(ctx, IdleConfig{Targets: []string{base}, Server: serverNaive, Conns: 5, Streams: 2,
		Hold: 10 * time.Millisecond, CPUPIDs: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	checkIdle(t, res, 5)
}

func TestFanoutCentrifugoSmoke(t *testing.T) {
	base, pid := startCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	// 3 s of publishing: each subscriber answers a ping.
	res, err := RunFanout(ctx, FanoutConfig{Targets: []string{base}, Server: serverCentrifugo, Centrifugo: defaultCentrifugoAuth(),
		Subs: 20, Rate: 20, Count: 60, Drain: 10 * time.Second, CPUPIDs: []int{pid}})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res, 20, 60)
}

func TestIdleCentrifugoSmoke(t *testing.T) {
	base, pid := startCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	// Held past several ping intervals: a connection that did not answer
	// would be closed by the server and counted as closed early.
	res, err := RunIdle(ctx, IdleConfig{Targets: []string{base}, Server: serverCentrifugo, Centrifugo: defaultCentrifugoAuth(),
		Conns: 5, Streams: 2, Hold: 5 * time.Second, CPUPIDs: []int{pid}})
	if err != nil {
		t.Fatal(err)
	}
	checkIdle(t, res, 5)
}

// A wrong secret is refused at connect, and the error says so.
func TestCentrifugoWrongSecret(t *testing.T) {
	base, _ := startCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	a := defaultCentrifugoAuth()
	a.secret = "wrong"
	_, err := RunIdle(ctx, IdleConfig{Targets: []string{base}, Server: serverCentrifugo, Centrifugo: a, Conns: 1, Streams: 1})
	if err == nil {
		t.Fatal("a connection with a token of another secret was subscribed")
	}
	t.Log(err)
}

func TestDecodeCentrifugo(t *testing.T) {
	w, err := newCentrifugoWire(defaultCentrifugoAuth())
	if err != nil {
		t.Fatal(err)
	}
	frame := `{"push":{"channel":"bench:r","pub":{"data":{"user":"bench","text":"ab12.123"},"offset":7}}}` + "\n" +
		`{}` + "\n" +
		`{"id":2,"subscribe":{"recoverable":true,"epoch":"x","offset":3}}` + "\n" +
		`{"id":3,"error":{"code":103,"message":"permission denied"}}` + "\n" +
		`{"push":{"channel":"bench:r","join":{"info":{"user":"u"}}}}`
	msgs := w.decode([]byte(frame), nil)
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.kind != msgEvent || m.seq != 7 || string(m.text) != "ab12.123" {
		t.Errorf("publication: %+v", m)
	}
	if msgs[1].kind != msgPing {
		t.Errorf("ping: %+v", msgs[1])
	}
	if msgs[2].kind != msgOther || string(msgs[2].raw) != `{"id":2,"subscribe":{"recoverable":true,"epoch":"x","offset":3}}` {
		t.Errorf("reply: %+v", msgs[2])
	}
	if m := msgs[3]; m.kind != msgError || m.code != "103" || string(m.text) != "permission denied" {
		t.Errorf("error: %+v", m)
	}
	if msgs[4].kind != msgOther {
		t.Errorf("join: %+v", msgs[4])
	}
}
