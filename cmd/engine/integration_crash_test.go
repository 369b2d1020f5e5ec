//go:build integration

package main

// TestIntegrationCrashKillUnderLoad SIGKILLs the engine again and again
// while many clients send commands, restarts it on the same data each time,
// and then reads the whole store back (engine export after a clean stop):
//
//   - every acknowledged command's event is stored exactly once, and no
//     command, acknowledged or not, is stored twice;
//   - every stream's versions run 1..N and the global positions 1..M;
//   - every order and every sign-up finished its background steps exactly
//     once (events, kitchen tickets, outbox files), and their state over
//     HTTP says so;
//   - an event a subscriber received before a kill is the one stored at
//     that version after it.
//
// The load: 16 WebSocket clients post messages to 4 rooms, each under a
// unique command id that is also its text; one command in eight gets a
// deadline of a few milliseconds, so that some are abandoned in flight,
// and a command without an ack is sent again with its id or given up, at
// random. Two HTTP clients place orders (-cook-time 50ms: steps are in
// flight at every kill) and one signs users up, each request under its own
// Idempotency-Key and repeated with it when no reply came. Every process
// listens on a port of its own; the clients dial through the test, which
// routes them to the one running, and reconnect by themselves.
//
// ENGINE_CRASH_KILLS sets the number of kills (default 3: CI runs this
// test; `task crash` runs 20). The kill moments and the clients' choices
// come from a seed printed at the start; ENGINE_CRASH_SEED=<seed> replays
// them (the scheduling of goroutines and processes differs from run to run).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/events"
)

const (
	crashRooms    = 4  // rooms the chat clients post to
	crashChatters = 16 // WebSocket clients sending PostMessage
	crashOrderers = 2  // HTTP clients placing orders
	crashSignups  = 1  // HTTP clients signing users up
	crashCookTime = "50ms"
	// A kill comes at a random moment between crashKillFirst and
	// crashKillLast after the engine (re)started listening.
	crashKillFirst = 50 * time.Millisecond
	crashKillLast  = 800 * time.Millisecond
	// crashReplyWait bounds one command, reconnects and re-sends included;
	// above the engine's own command timeout (10 s), so that a reply that
	// does not come means the connection was lost, not that the server is
	// still working on it.
	crashReplyWait = 15 * time.Second
	crashDeadline  = 60 * time.Second // for every wait on a condition
	crashURL       = "http://engine.crash"
)

func TestIntegrationCrashKillUnderLoad(t *testing.T) {
	kills := crashEnvInt(t, "ENGINE_CRASH_KILLS", 3)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ENGINE_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("ENGINE_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d, %d kills (ENGINE_CRASH_SEED=%d ENGINE_CRASH_KILLS=%d replays the kill timings)", seed, kills, seed, kills)
	e := newCrashEngine(t)
	began := time.Now()
	e.start()
	load := startCrashLoad(t, e, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 1; i <= kills; i++ {
		// The moment of the kill is the experiment, not a wait for a
		// condition: anywhere from clients still reconnecting and pending
		// orders resuming to the load in full swing.
		delay := crashKillFirst + time.Duration(rng.Int64N(int64(crashKillLast-crashKillFirst)))
		time.Sleep(delay)
		before := load.ledger.acks.Load()
		e.kill()
		t0 := time.Now()
		e.start()
		t.Logf("kill %d/%d %v after the start, %d commands acknowledged so far; listening again after %v",
			i, kills, delay.Round(time.Millisecond), before, time.Since(t0).Round(time.Millisecond))
	}
	// The load must pick up again after the last restart, then stops; the
	// commands a client gave up on are retried with their own key.
	load.waitAcks(t, load.ledger.acks.Load()+50)
	load.stop()
	load.settle(t)
	load.waitFinished(t)
	load.waitWatched(t)
	e.terminate()

	log := readCrashLog(t, e.export())
	st := checkCrashLog(t, log, load)
	t.Logf("%d kills in %v: %d commands acknowledged (%d messages, %d orders, %d sign-ups); "+
		"%d messages left unacknowledged, %d of them stored; %d re-sends by the test; %d events stored; errors seen by clients: %v",
		kills, time.Since(began).Round(100*time.Millisecond), st.acked, st.messages, st.orders, st.users,
		st.unacked, st.unackedStored, load.ledger.resends.Load(), st.events, load.ledger.errorCounts())
}

func crashEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number ≥ 0", name, s)
	}
	return n
}

// crashEngine is the engine under test: one process after the other on the
// same data directory. Every process listens on a port of its own; clients
// reach whichever runs through dialContext, which waits while none does.
type crashEngine struct {
	t        *testing.T
	bin, dir string
	logPath  string
	logw     *os.File

	mu   sync.Mutex
	proc *process
	addr string        // host:port of the running process, "" while down
	up   chan struct{} // closed when the next process listens
}

func newCrashEngine(t *testing.T) *crashEngine {
	e := &crashEngine{t: t, bin: buildBinary(t), dir: t.TempDir(), up: make(chan struct{})}
	e.logPath = filepath.Join(t.TempDir(), "engine.log")
	f, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	e.logw = f
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			e.dumpLog()
		}
	})
	return e
}

func (e *crashEngine) start() {
	p := startProcessLog(e.t, e.logw, e.bin, e.dir, "-cook-time", crashCookTime)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.proc, e.addr = p, strings.TrimPrefix(p.base, "http://")
	close(e.up)
}

// down marks the engine as gone for new dials and returns its process.
func (e *crashEngine) down() *process {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.proc
	e.proc, e.addr, e.up = nil, "", make(chan struct{})
	return p
}

func (e *crashEngine) kill() {
	p := e.down()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	<-p.exited
}

// terminate stops the engine with SIGTERM and expects a clean exit.
func (e *crashEngine) terminate() {
	p := e.down()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(crashDeadline):
		e.t.Fatal("the engine did not exit after SIGTERM")
	}
	if p.exitErr != nil {
		e.t.Fatalf("the engine exited with %v after SIGTERM, want status 0", p.exitErr)
	}
}

// dialContext connects to the running process, waiting for one to listen
// while the engine is down. A dial that reaches a process being killed
// fails like any lost connection.
func (e *crashEngine) dialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	for {
		e.mu.Lock()
		addr, up := e.addr, e.up
		e.mu.Unlock()
		if addr != "" {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// export reads the whole store of the stopped engine.
func (e *crashEngine) export() []events.Event { return exportStore(e.t, e.bin, e.dir) }

// dumpLog prints the end of the engines' log after a failure.
func (e *crashEngine) dumpLog() { logTail(e.t, e.logPath) }

// crashLedger is what the clients know: every command sent and whether its
// acknowledgement came.
type crashLedger struct {
	acks    atomic.Int64
	resends atomic.Int64 // commands sent again with the same id

	mu   sync.Mutex
	cmds map[string]*crashCmd
	errs map[string]int // the errors clients saw, by kind
}

func (l *crashLedger) sent(id string, c crashCmd) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cmds[id]; ok {
		l.resends.Add(1)
		return
	}
	l.cmds[id] = &c
}

// acked records an acknowledgement; stream is the one the reply named (""
// for a WebSocket ack, which names the room the command went to). It
// returns an error if a repeat named another stream than the first reply.
func (l *crashLedger) acked(id, stream string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cmds[id]
	if stream != "" && c.stream != "" && stream != c.stream {
		return fmt.Errorf("command %s: the reply names %s, an earlier one %s", id, stream, c.stream)
	}
	if stream != "" {
		c.stream = stream
	}
	if !c.acked {
		c.acked = true
		l.acks.Add(1)
	}
	return nil
}

func (l *crashLedger) failed(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[what]++
}

// unacked returns the ids of the commands of kind that are not
// acknowledged.
func (l *crashLedger) unacked(kind string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id, c := range l.cmds {
		if c.kind == kind && !c.acked {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// snapshot copies the commands, for the checks after the load.
func (l *crashLedger) snapshot() map[string]crashCmd {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]crashCmd, len(l.cmds))
	for id, c := range l.cmds {
		m[id] = *c
	}
	return m
}

func (l *crashLedger) errorCounts() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for what, n := range l.errs {
		parts = append(parts, fmt.Sprintf("%s ×%d", what, n))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// crashLoad is the clients: chatters posting to rooms over the WebSocket,
// HTTP clients placing orders and signing users up, and a watcher
// subscribed to every room.
type crashLoad struct {
	t      *testing.T
	e      *crashEngine
	seed   uint64
	http   *http.Client
	ledger *crashLedger
	halt   chan struct{} // closed when the load stops
	wg     sync.WaitGroup
	chat   []*client.Client
	watch  *crashWatch
}

func startCrashLoad(t *testing.T, e *crashEngine, seed uint64) *crashLoad {
	tr := &http.Transport{DialContext: e.dialContext, MaxIdleConnsPerHost: crashOrderers + crashSignups + 1}
	t.Cleanup(tr.CloseIdleConnections)
	ld := &crashLoad{
		t: t, e: e, seed: seed, http: &http.Client{Transport: tr},
		ledger: &crashLedger{cmds: map[string]*crashCmd{}, errs: map[string]int{}},
		halt:   make(chan struct{}),
	}
	ld.watch = ld.startWatch()
	for range crashChatters {
		ld.chat = append(ld.chat, ld.dial())
	}
	for w, c := range ld.chat {
		ld.wg.Go(func() { ld.chatter(w, c) })
	}
	for w := range crashOrderers {
		ld.wg.Go(func() { ld.orderer(w) })
	}
	for w := range crashSignups {
		ld.wg.Go(func() { ld.signer(w) })
	}
	return ld
}

// dial connects a WebSocket client that reconnects quickly after a kill.
func (ld *crashLoad) dial() *client.Client {
	ctx, cancel := context.WithTimeout(context.Background(), crashDeadline)
	defer cancel()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(crashURL, "http")+"/ws", client.Options{
		HTTPClient:   ld.http,
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 250 * time.Millisecond,
	})
	if err != nil {
		ld.t.Fatal(err)
	}
	ld.t.Cleanup(func() { c.Close() })
	return c
}

func (ld *crashLoad) stopped() bool {
	select {
	case <-ld.halt:
		return true
	default:
		return false
	}
}

// pace waits d between two requests of an HTTP client, or until the load
// stops.
func (ld *crashLoad) pace(d time.Duration) {
	select {
	case <-ld.halt:
	case <-time.After(d):
	}
}

// chatter w posts messages to random rooms, each with a unique id that is
// also its text. One command in eight is given only a few milliseconds, so
// that some are abandoned in flight; a client that got no ack sends the
// same id again or gives up on it, at random.
func (ld *crashLoad) chatter(w int, c *client.Client) {
	rng := rand.New(rand.NewPCG(ld.seed, uint64(w)+1))
	user := fmt.Sprintf("u%02d", w)
	for seq := 1; !ld.stopped(); seq++ {
		id := fmt.Sprintf("m%02d-%05d", w, seq)
		room := fmt.Sprintf("room:crash%d", rng.IntN(crashRooms))
		data := map[string]string{"user": user, "text": id}
		wait := crashReplyWait
		if rng.IntN(8) == 0 {
			wait = time.Duration(1+rng.IntN(20)) * time.Millisecond
		}
		for try := 1; ; try++ {
			ld.ledger.sent(id, crashCmd{kind: crashMessage, stream: room})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			_, err := c.Command(ctx, room, "PostMessage", data, id)
			cancel()
			if err == nil {
				if err := ld.ledger.acked(id, ""); err != nil {
					ld.t.Error(err)
				}
				break
			}
			ld.wsFailed(id, err)
			if try == 3 || rng.IntN(2) == 0 {
				break // left unacknowledged
			}
			wait = crashReplyWait
		}
	}
}

// wsFailed counts a command that got no ack. The engine may refuse one as
// unavailable (an actor that did not answer in time); any other refusal
// of these well-formed commands is a failure.
func (ld *crashLoad) wsFailed(id string, err error) {
	switch code := client.ErrorCode(err); {
	case code == "unavailable":
		ld.ledger.failed("ws unavailable")
	case code != "":
		ld.t.Errorf("command %s refused: %v", id, err)
	case errors.Is(err, context.DeadlineExceeded):
		ld.ledger.failed("ws deadline")
	case errors.Is(err, client.ErrDisconnected):
		ld.ledger.failed("ws disconnected")
	default:
		ld.t.Errorf("command %s: %v", id, err)
	}
}

// orderer w places one-line orders with an email, so that each owes every
// step, each under its own Idempotency-Key.
func (ld *crashLoad) orderer(w int) {
	for seq := 1; !ld.stopped(); seq++ {
		key := fmt.Sprintf("o%d-%05d", w, seq)
		body := fmt.Sprintf(`{"items":[{"name":"soup","qty":%d}],"email":"%s@example.com"}`, 1+seq%3, key)
		ld.keyed(key, crashCmd{kind: crashOrder, path: "/orders", body: body}, 3)
		ld.pace(10 * time.Millisecond)
	}
}

// signer w signs up users, each with a new address, under its own key.
func (ld *crashLoad) signer(w int) {
	for seq := 1; !ld.stopped(); seq++ {
		key := fmt.Sprintf("s%d-%05d", w, seq)
		body := fmt.Sprintf(`{"email":"%s@example.com","name":"User %s"}`, key, key)
		ld.keyed(key, crashCmd{kind: crashUser, path: "/signup", body: body}, 3)
		ld.pace(30 * time.Millisecond)
	}
}

// keyed sends an HTTP command up to tries times under the same key until
// it is accepted; it reports whether it was.
func (ld *crashLoad) keyed(key string, c crashCmd, tries int) bool {
	for range tries {
		ld.ledger.sent(key, c)
		stream, ok := ld.post(c.path, key, c.body)
		if ok {
			if err := ld.ledger.acked(key, stream); err != nil {
				ld.t.Error(err)
			}
			return true
		}
	}
	return false
}

// post sends one keyed request and returns the stream its 202 names. A
// lost connection and a 503 are what a kill causes; any other reply is a
// failure.
func (ld *crashLoad) post(path, key, body string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), crashReplyWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, crashURL+path, strings.NewReader(body))
	if err != nil {
		ld.t.Error(err)
		return "", false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := ld.http.Do(req)
	if err != nil {
		ld.ledger.failed("http no reply")
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		ld.ledger.failed("http reply cut")
	case resp.StatusCode == http.StatusServiceUnavailable:
		ld.ledger.failed("http 503")
	case resp.StatusCode == http.StatusAccepted:
		var r struct{ Order, User string }
		if err := json.Unmarshal(b, &r); err != nil || r.Order+r.User == "" {
			ld.t.Errorf("POST %s (key %s): a 202 without a stream: %s", path, key, b)
			return "", false
		}
		return r.Order + r.User, true
	default:
		ld.t.Errorf("POST %s (key %s): %d %s", path, key, resp.StatusCode, b)
	}
	return "", false
}

// waitAcks waits until n commands have been acknowledged in all.
func (ld *crashLoad) waitAcks(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(crashDeadline)
	for ld.ledger.acks.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the load did not resume: %d of %d acknowledgements after %v", ld.ledger.acks.Load(), n, crashDeadline)
		}
		time.Sleep(5 * time.Millisecond) // polling a deadline
	}
}

// stop ends the load: every client finishes the command it is sending.
func (ld *crashLoad) stop() {
	close(ld.halt)
	ld.wg.Wait()
	for _, c := range ld.chat {
		c.Close()
	}
}

// settle sends every order and sign-up that got no reply again, with its
// key, until one comes: a client may, and the repeat must not place a
// second order. Messages left unacknowledged stay so.
func (ld *crashLoad) settle(t *testing.T) {
	t.Helper()
	all := ld.ledger.snapshot()
	for _, kind := range []string{crashOrder, crashUser} {
		for _, key := range ld.ledger.unacked(kind) {
			if !ld.keyed(key, all[key], 10) {
				t.Fatalf("%s %s is still refused after the load: %s", kind, key, ld.ledger.errorCounts())
			}
		}
	}
}

// get reads a route of the running engine.
func (ld *crashLoad) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crashReplyWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, crashURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ld.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// waitFinished waits until every order is ready with its steps done and
// every user has had the welcome email, as GET /streams/{stream} shows.
func (ld *crashLoad) waitFinished(t *testing.T) {
	t.Helper()
	var owing []string
	for _, c := range ld.ledger.snapshot() {
		if c.kind != crashMessage {
			owing = append(owing, c.stream)
		}
	}
	deadline := time.Now().Add(crashDeadline)
	for {
		var left []string
		for _, s := range owing {
			if !ld.finished(t, s) {
				left = append(left, s)
			}
		}
		if owing = left; len(owing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			_, body := ld.get(t, "/streams/"+owing[0])
			t.Fatalf("%d orders and users still owe steps after %v, such as %s", len(owing), crashDeadline, body)
		}
		time.Sleep(20 * time.Millisecond) // polling a deadline
	}
}

// finished reports whether an order or user has done its steps; a step that
// failed for good fails the test.
func (ld *crashLoad) finished(t *testing.T, stream string) bool {
	t.Helper()
	code, body := ld.get(t, "/streams/"+stream)
	if code != http.StatusOK {
		t.Fatalf("GET /streams/%s of an acknowledged command: %d %s", stream, code, body)
	}
	var st struct {
		Status       string
		Steps        map[string]string
		WelcomeEmail string `json:"welcome_email"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /streams/%s: %v", stream, err)
	}
	if strings.Contains(string(body), `"failed"`) {
		t.Fatalf("a step of %s failed: %s", stream, body)
	}
	if strings.HasPrefix(stream, "user:") {
		return st.WelcomeEmail == "done"
	}
	return st.Status == "ready" && st.Steps["kitchen"] == "done" && st.Steps["cook"] == "done" && st.Steps["receipt"] == "done"
}

// crashWatch is a client subscribed to every room from version 0 across
// all the kills. The engine sends an event only once it is durable, so
// what it received must be what the store holds in the end.
type crashWatch struct {
	c    *client.Client
	subs map[string]*client.Subscription

	mu  sync.Mutex
	ids map[string][]string // by room: the id of version i+1 at i
	bad []string            // versions out of order: a broken promise of the client
}

func (ld *crashLoad) startWatch() *crashWatch {
	w := &crashWatch{c: ld.dial(), subs: map[string]*client.Subscription{}, ids: map[string][]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), crashDeadline)
	defer cancel()
	for i := range crashRooms {
		room := fmt.Sprintf("room:crash%d", i)
		sub, err := w.c.Subscribe(ctx, room, client.From(0), "", func(ev events.Event) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if want := uint64(len(w.ids[room]) + 1); ev.Version != want {
				w.bad = append(w.bad, fmt.Sprintf("%s: version %d delivered, want %d", room, ev.Version, want))
				return
			}
			w.ids[room] = append(w.ids[room], ev.ID)
		})
		if err != nil {
			ld.t.Fatal(err)
		}
		w.subs[room] = sub
	}
	return w
}

// waitWatched waits until the watcher has received every room's events up
// to the version the engine reports, then closes it.
func (ld *crashLoad) waitWatched(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(crashDeadline)
	for room, sub := range ld.watch.subs {
		code, body := ld.get(t, "/streams/"+room)
		var st struct{ Version uint64 }
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("GET /streams/%s: %v", room, err)
			}
		}
		for sub.Version() < st.Version {
			if time.Now().After(deadline) {
				t.Fatalf("the watcher of %s is at version %d of %d after %v", room, sub.Version(), st.Version, crashDeadline)
			}
			time.Sleep(5 * time.Millisecond) // polling a deadline
		}
	}
	ld.watch.c.Close()
}

// checkCrashLog checks the store against what the clients know.
func checkCrashLog(t *testing.T, s *crashStore, ld *crashLoad) crashStats {
	t.Helper()
	cmds := ld.ledger.snapshot()
	st := crashStats{events: s.events}
	checkCausations(t, s, cmds)
	checkMessages(t, s, cmds, &st)
	checkOwedSteps(t, s, cmds, &st)
	checkOutbox(t, ld.e.dir, cmds)
	checkWatched(t, s, ld.watch)
	st.acked = st.messages + st.orders + st.users
	return st
}

// checkWatched: the events the watcher received before and after the kills
// are the stored ones, all of them.
func checkWatched(t *testing.T, s *crashStore, w *crashWatch) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		t.Errorf("watcher: %s", b)
	}
	for room, ids := range w.ids {
		stored := s.streams[room]
		if len(ids) != len(stored) {
			t.Errorf("the watcher received %d events of %s, the store holds %d", len(ids), room, len(stored))
		}
		for i := range min(len(ids), len(stored)) {
			if ids[i] != stored[i].ID {
				t.Errorf("%s v%d: the watcher received event %s, the store holds %s", room, i+1, ids[i], stored[i].ID)
				break
			}
		}
	}
}
