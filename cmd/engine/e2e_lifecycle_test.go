package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// processWide are goroutines that a library starts once per process and
// never stops; they are not the engine's to end.
var processWide = []string{
	"fasthttp.updateServerDate", // the server Date header's clock, started by the first fasthttp server
}

// goroutines returns the running goroutines other than processWide ones,
// and their stacks.
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var kept []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if !slices.ContainsFunc(processWide, func(s string) bool { return strings.Contains(g, s) }) {
			kept = append(kept, g)
		}
	}
	return len(kept), strings.Join(kept, "\n\n")
}

// waitGoroutines polls until no more goroutines run than baseline. Servers
// and stores end some of theirs a little after Close returns (fasthttp's
// worker-pool janitor wakes every second), hence the poll.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n, stacks := goroutines()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, baseline %d:\n%s", n, baseline, stacks)
		}
		<-tick.C
	}
}

func TestE2EShutdown(t *testing.T) {
	baseline, _ := goroutines()
	dir := t.TempDir()
	e := startEngine(t, dir, func(m *Main) { m.Config.CookTime = time.Second })

	watcher := e.dialRaw(t, "/ws", nil)
	watcher.writeJSON(t, map[string]any{"op": "subscribe", "stream": "room:lobby", "from": 0, "ref": "w"})
	if f := watcher.nextReply(t); f.Op != "subscribed" {
		t.Fatalf("watcher: %+v", f)
	}
	sender := e.dialRaw(t, "/ws", nil)

	// An HTTP request in flight: POST /order/{item} answers once the order
	// is cooked, and it is in the kitchen when shutdown starts.
	type result struct {
		r   reply
		err error
	}
	order := make(chan result, 1)
	go func() {
		r, err := e.request("POST", "/order/pie", nil, nil)
		order <- result{r, err}
	}()
	eventually(t, "the order in the kitchen", func() (bool, error) {
		for _, ev := range e.allEvents() {
			if ev.Type == "KitchenNotified" {
				return true, nil
			}
		}
		return false, nil
	})

	// WebSocket commands sent just before shutdown: some are acked, the
	// rest must be refused cleanly (unavailable) or left unread.
	const n = 30
	for i := range n {
		sender.writeJSON(t, map[string]any{"op": "command", "stream": "room:lobby", "type": "PostMessage",
			"data": map[string]string{"user": "ann", "text": fmt.Sprint(i)}, "ref": fmt.Sprint(i)})
	}
	closed := make(chan error, 1)
	e.closed = true // by this goroutine, not by the cleanup
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		closed <- e.m.Close(ctx)
	}()

	code, msgs := sender.closeStatus(t)
	if code != websocket.StatusGoingAway {
		t.Errorf("sender closed with %v, want 1001 going away", code)
	}
	acked := map[string]uint64{} // text → version
	answered := map[string]bool{}
	for _, m := range msgs {
		var f wsFrame
		if err := json.Unmarshal(m.data, &f); err != nil {
			t.Fatalf("frame %q: %v", m.data, err)
		}
		r := refString(f.Ref)
		if answered[r] {
			t.Errorf("command %s answered twice", r)
		}
		answered[r] = true
		switch {
		case f.Op == "ack":
			acked[r] = f.Version
		case f.Op == "error" && f.Code == "unavailable":
		default:
			t.Errorf("command %s: %+v, want ack or unavailable", r, f)
		}
	}
	t.Logf("of %d commands sent before shutdown: %d acked, %d answered", n, len(acked), len(answered))

	code, msgs = watcher.closeStatus(t)
	if code != websocket.StatusGoingAway {
		t.Errorf("watcher closed with %v, want 1001 going away", code)
	}
	var next uint64 = 1
	for _, m := range msgs {
		var f wsFrame
		if err := json.Unmarshal(m.data, &f); err != nil {
			t.Fatalf("watcher frame %q: %v", m.data, err)
		}
		if f.Op == "presence" {
			continue
		}
		if f.Op != "event" || f.Version != next {
			t.Errorf("watcher frame %s, want the event of version %d", m.data, next)
		}
		next++
	}

	select {
	case res := <-order:
		if res.err != nil {
			t.Fatalf("the order in flight: %v", res.err)
		}
		if res.r.status != http.StatusOK || !jsonEqual(t, string(res.r.body), `{"order":"pie","status":"ready!"}`) {
			t.Errorf("the order in flight: %s, want 200 ready!", res.r)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the order in flight was never answered")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("Close did not return")
	}

	e.http.CloseIdleConnections()
	waitGoroutines(t, baseline)

	// What was acked is stored, and only that.
	e2 := startEngine(t, dir)
	stored := map[string]uint64{}
	for _, ev := range e2.allEvents() {
		if ev.Stream != "room:lobby" {
			continue
		}
		var d struct{ Text string }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		stored[d.Text] = ev.Version
	}
	for text, v := range acked {
		if stored[text] != v {
			t.Errorf("command %s acked at version %d, stored at %d", text, v, stored[text])
		}
	}
	for text, v := range stored {
		if _, ok := acked[text]; !ok {
			t.Errorf("command %s stored at version %d but never acked", text, v)
		}
	}
	if s, err := e2.stateField("order:"+orderStream(t, e2), "status"); err != nil || s != "ready" {
		t.Errorf("the order after the restart: %q, %v; want ready", s, err)
	}
}

// orderStream returns the id of the one order stream in the log.
func orderStream(t *testing.T, e *engine) string {
	t.Helper()
	for _, ev := range e.allEvents() {
		if id, ok := strings.CutPrefix(ev.Stream, "order:"); ok {
			return id
		}
	}
	t.Fatal("no order in the log")
	return ""
}

func TestE2ERunServe(t *testing.T) {
	tests := []struct {
		name string
		args func(dir string) []string
		env  func(dir string) map[string]string
	}{
		{
			name: "flags",
			args: func(dir string) []string { return []string{"-addr", "127.0.0.1:0", "-data", dir, "-cook-time", "50ms"} },
			env:  func(string) map[string]string { return nil },
		},
		{
			name: "environment",
			args: func(string) []string { return nil },
			env: func(dir string) map[string]string {
				return map[string]string{"ENGINE_ADDR": "127.0.0.1:0", "ENGINE_DATA": dir, "ENGINE_LOG_FORMAT": "text"}
			},
		},
	}
	addrRE := regexp.MustCompile(`addr=(\S+)`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			env := tc.env(dir)
			stderr := &syncBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			go func() { done <- runServe(ctx, tc.args(dir), func(k string) string { return env[k] }, stderr) }()

			var line string
			eventually(t, "the start-up line", func() (bool, error) {
				select {
				case code := <-done:
					return false, fmt.Errorf("runServe returned %d:\n%s", code, stderr.String())
				default:
				}
				for l := range strings.SplitSeq(stderr.String(), "\n") {
					if strings.Contains(l, "engine listening") {
						line = l
						return true, nil
					}
				}
				return false, nil
			})
			m := addrRE.FindStringSubmatch(line)
			if m == nil || !strings.HasPrefix(m[1], "127.0.0.1:") || m[1] == "127.0.0.1:0" {
				t.Fatalf("no listening address in %q", line)
			}
			addr := m[1]
			if !strings.Contains(line, "data="+dir) && !strings.Contains(line, "data="+strconv.Quote(dir)) {
				t.Errorf("the start-up line does not name the data directory %s: %q", dir, line)
			}
			if !strings.Contains(line, "store=embedded") {
				t.Errorf("the start-up line does not name the store: %q", line)
			}
			hc := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{}}
			defer hc.CloseIdleConnections()
			for _, p := range []string{"/healthz", "/readyz"} {
				resp, err := hc.Get("http://" + addr + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %d", p, resp.StatusCode)
				}
			}

			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("runServe returned %d after cancel:\n%s", code, stderr.String())
				}
			case <-time.After(e2eTimeout):
				t.Fatal("runServe did not return after cancel")
			}
			for _, want := range []string{"engine shutting down", "engine stopped"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if _, err := hc.Get("http://" + addr + "/healthz"); err == nil {
				t.Error("the server still answers after runServe returned")
			}
		})
	}
}
