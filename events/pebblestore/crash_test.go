package pebblestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// The crash test re-executes this test binary as a child that appends with
// several writers and prints one line per acknowledged append; the parent
// SIGKILLs it at a random moment, reopens the store and checks that nothing
// acknowledged is missing and that the log is whole, then appends more.
// The same directory is used across kills, so recovery is exercised on
// the output of earlier recoveries (and of kills during recovery).

const (
	crashChildEnv = "PEBBLESTORE_CRASH_CHILD" // "1" in the child
	crashDirEnv   = "PEBBLESTORE_CRASH_DIR"   // the store's directory
	crashRunEnv   = "PEBBLESTORE_CRASH_RUN"   // makes the child's event ids unique across runs
)

// crashStreams are the streams the child appends to.
func crashStreams() [4]string { return [...]string{"order:c0", "order:c1", "order:c2", "room:c3"} }

// crashConfig uses a small memtable so that flushes, and kills during
// flushes, happen within a child's short life.
func crashConfig() Config {
	return Config{
		Logger:       slog.New(slog.DiscardHandler),
		MemTableSize: 1 << 20,
		CacheSize:    4 << 20,
	}
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("the child of TestCrashRecovery; runs only when re-executed by it")
	}
	// A bound on the child's life in case the parent cannot kill it. If
	// the parent dies, the next write to the pipe kills the child too.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(os.Getenv(crashDirEnv), crashConfig())
	if err != nil {
		t.Fatalf("child: open: %v", err)
	}
	run := os.Getenv(crashRunEnv)
	var mu sync.Mutex // one whole line per write
	report := func(res events.AppendResult) {
		ids := make([]string, len(res.Events))
		for i, e := range res.Events {
			ids[i] = e.ID
		}
		line := fmt.Sprintf("ACK %s %d %d %s\n", res.Events[0].Stream, res.Events[0].Version, res.Events[0].Position, strings.Join(ids, ","))
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(3) // the parent is gone
		}
	}
	const writers = 6
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- crashWriter(ctx, s, run, w, report)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("child: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("child: close: %v", err)
	}
}

// crashWriter appends 1–3 events at a time until ctx ends; even writers
// use exact expected versions and retry on conflict.
func crashWriter(ctx context.Context, s *Store, run string, w int, report func(events.AppendResult)) error {
	known := map[string]uint64{}
	streams := crashStreams()
	for i := 0; ctx.Err() == nil; i++ {
		stream := streams[(w+i)%len(streams)]
		evs := make([]events.Event, 1+(w+i)%3)
		for j := range evs {
			evs[j] = events.Event{
				ID:   fmt.Sprintf("%s-w%d-%d-%d", run, w, i, j),
				Type: "Crashed",
				Data: []byte(`{"pad":"` + strings.Repeat("x", 100+(i*7)%150) + `"}`),
			}
		}
		for {
			exp := events.AnyVersion
			if w%2 == 0 {
				exp = events.Exactly(known[stream])
			}
			res, err := s.Append(ctx, stream, exp, evs)
			if v, ok := events.CurrentVersion(err); ok {
				known[stream] = v
				continue
			}
			if err != nil {
				return err
			}
			known[stream] = res.Version()
			report(res)
			break
		}
	}
	return ctx.Err()
}

// ackedEvent is where the child said an event was stored.
type ackedEvent struct {
	stream            string
	version, position uint64
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		t.Skip("in the child")
	}
	const kills = 12
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	dir := t.TempDir()
	acked := map[string]ackedEvent{}
	totalAcks := 0
	for k := range kills {
		n := crashOnce(t, dir, k, rng, acked)
		totalAcks += n
		verifyAfterCrash(t, dir, k, acked)
	}
	t.Logf("%d kills, %d acknowledged appends, %d acknowledged events", kills, totalAcks, len(acked))
}

// crashOnce runs one child and kills it at a random moment: either after a
// random number of acknowledged appends or after a random delay from its
// start (which may fall during its Open and recovery). It adds what the
// child acknowledged to acked and returns the number of appends.
func crashOnce(t *testing.T, dir string, k int, rng *rand.Rand, acked map[string]ackedEvent) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"=1",
		crashDirEnv+"="+dir,
		fmt.Sprintf("%s=k%d", crashRunEnv, k),
	)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	lines := make(chan string, 1024)
	readDone := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readDone <- sc.Err()
	}()
	waited := false
	defer func() { // whatever happens, no child outlives this call
		if !waited {
			_ = cmd.Process.Kill()
			for range lines {
			}
			_ = cmd.Wait()
		}
	}()

	// Three ways to pick the moment: a delay from the start (which may
	// fall in the child's Open and recovery), a number of acknowledged
	// appends, or a delay from the first acknowledgement.
	var (
		killAfterAcks int
		killAfter     time.Duration
		afterFirstAck bool
		timer         <-chan time.Time
		mode          = rng.IntN(3)
	)
	switch mode {
	case 0:
		killAfter = time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
		timer = time.After(killAfter)
	case 1:
		killAfterAcks = 1 + rng.IntN(400)
	default:
		killAfter = time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
		afterFirstAck = true
	}
	appends := 0
	record := func(line string) {
		if !strings.HasPrefix(line, "ACK ") {
			return // the test framework's own output
		}
		stream, version, position, ids, err := parseAck(line)
		if err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		appends++
		for i, id := range ids {
			acked[id] = ackedEvent{stream: stream, version: version + uint64(i), position: position + uint64(i)}
		}
	}
	killed := false
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("kill %d: the child ended before it was killed: %v\nstderr:\n%s", k, <-readDone, stderr.String())
			}
			record(line)
			if killAfterAcks > 0 && appends >= killAfterAcks {
				killed = true
			}
			if afterFirstAck && appends > 0 && timer == nil {
				timer = time.After(killAfter)
			}
		case <-timer:
			killed = true
		case <-ctx.Done():
			t.Fatalf("kill %d: no kill condition after 30s (%d acks)\nstderr:\n%s", k, appends, stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		t.Fatalf("kill %d: %v", k, err)
	}
	// Lines already in the pipe were acknowledged before the kill.
	for line := range lines {
		record(line)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("kill %d: reading the child: %v", k, err)
	}
	waited = true
	err = cmd.Wait()
	if st := cmd.ProcessState; st == nil || st.ExitCode() != -1 {
		t.Fatalf("kill %d: the child was not killed by a signal: %v\nstderr:\n%s", k, err, stderr.String())
	}
	t.Logf("kill %d: mode %d, after %d acknowledged appends (target %d acks / %v)", k, mode, appends, killAfterAcks, killAfter)
	return appends
}

func parseAck(line string) (stream string, version, position uint64, ids []string, err error) {
	f := strings.Fields(line)
	if len(f) != 5 {
		return "", 0, 0, nil, fmt.Errorf("bad ack line %q", line)
	}
	version, err1 := strconv.ParseUint(f[2], 10, 64)
	position, err2 := strconv.ParseUint(f[3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return "", 0, 0, nil, fmt.Errorf("bad ack line %q: %w", line, err)
	}
	return f[1], version, position, strings.Split(f[4], ","), nil
}

// verifyAfterCrash reopens the store the child was killed on and checks
// it: the log and every stream are gap-free and agree, every acknowledged
// event is where it was acknowledged, and appends continue correctly.
func verifyAfterCrash(t *testing.T, dir string, k int, acked map[string]ackedEvent) {
	t.Helper()
	ctx := t.Context()
	s, err := Open(dir, crashConfig())
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", k, err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("kill %d: close: %v", k, err)
		}
	}()
	all := checkLog(t, s)
	byID := make(map[string]events.Event, len(all))
	for _, e := range all {
		byID[e.ID] = e
	}
	for id, a := range acked {
		e, ok := byID[id]
		if !ok {
			t.Fatalf("kill %d: acknowledged event %s (%s/%d@%d) is missing", k, id, a.stream, a.version, a.position)
		}
		if e.Stream != a.stream || e.Version != a.version || e.Position != a.position {
			t.Fatalf("kill %d: event %s acknowledged as %s/%d@%d, stored as %s/%d@%d", k, id, a.stream, a.version, a.position, e.Stream, e.Version, e.Position)
		}
	}
	head := uint64(len(all))
	for i, stream := range crashStreams() {
		v, err := s.StreamVersion(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("parent-k%d-%d", k, i)
		res, err := s.Append(ctx, stream, events.Exactly(v), []events.Event{{ID: id, Type: "Recovered"}})
		if err != nil {
			t.Fatalf("kill %d: append to %s at version %d after recovery: %v", k, stream, v, err)
		}
		head++
		if e := res.Events[0]; e.Version != v+1 || e.Position != head {
			t.Fatalf("kill %d: append after recovery stored at %s/%d@%d, want version %d position %d", k, stream, e.Version, e.Position, v+1, head)
		}
		acked[id] = ackedEvent{stream: stream, version: v + 1, position: head}
	}
}

// lockedBuffer collects the child's stderr (written by exec's copying
// goroutine, read by the test on failure).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // keep the tail out; the head says what went wrong
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*lockedBuffer)(nil)
