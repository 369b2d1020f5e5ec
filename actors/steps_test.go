package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/mail"
)

// rtMailer counts sends per key and fails the first failFirst of them
// (all of them when failFirst < 0), then delegates to next (if any).
type rtMailer struct {
	mu        sync.Mutex
	sends     map[string]int
	failFirst int
	permanent bool // fail with an error that says a retry cannot help
	next      mail.Sender
}

var rtRejected = decider.Permanent(errors.New("550 no such user"))

func (m *rtMailer) Send(ctx context.Context, key string, msg decider.Email) error {
	m.mu.Lock()
	if m.sends == nil {
		m.sends = map[string]int{}
	}
	m.sends[key]++
	n := m.sends[key]
	m.mu.Unlock()
	if m.permanent {
		return fmt.Errorf("send: %w", rtRejected)
	}
	if m.failFirst < 0 || n <= m.failFirst {
		return errors.New("smtp: try again later")
	}
	if m.next != nil {
		return m.next.Send(ctx, key, msg)
	}
	return nil
}

func (m *rtMailer) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sends[key]
}

func rtOutboxFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestBackgroundSteps(t *testing.T) {
	store := rtMemStore(t)
	outbox := t.TempDir()
	cfg := rtConfig(store)
	setMailer(&cfg, mail.NewOutbox(outbox))
	r := rtStart(t, cfg)
	ctx := rtCtx(t)

	res := rtExec(t, r, "shop:1", "Place", `{"email":"ann@example.com"}`)
	if res.Version != 1 {
		t.Fatalf("place: version %d", res.Version)
	}
	if p, err := store.Pending(ctx); err != nil || !slices.Equal(p, []string{"shop:1"}) {
		t.Fatalf("pending after place = %v, %v; want [shop:1]", p, err)
	}
	rtWaitFor(t, "every step", func() bool {
		s := rtState[rtShop](t, r, "shop:1")
		return s.Steps["receipt"] == "done"
	})
	s := rtState[rtShop](t, r, "shop:1")
	want := map[string]string{"notify": "done", "cook": "done", "receipt": "done"}
	if !maps.Equal(s.Steps, want) || s.Version != 4 {
		t.Fatalf("steps = %v at version %d, want %v at 4", s.Steps, s.Version, want)
	}
	// Completions are recorded in order.
	evs, err := store.ReadStream(ctx, "shop:1", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range evs {
		order = append(order, string(e.Data))
	}
	if len(order) != 3 || !(strings.Contains(order[0], "notify") && strings.Contains(order[1], "cook") && strings.Contains(order[2], "receipt")) {
		t.Fatalf("completions = %v", order)
	}
	if tally := rtState[rtTally](t, r, "tally:main"); !slices.Equal(tally.Orders, []string{"shop:1"}) {
		t.Fatalf("tally = %v", tally.Orders)
	}
	tallyEvs, _ := store.ReadStream(ctx, "tally:main", 0, 0)
	if len(tallyEvs) != 1 || tallyEvs[0].Meta.Causation != "shop:1/notify" {
		t.Fatalf("tally events = %+v, want one caused by shop:1/notify", tallyEvs)
	}
	if files := rtOutboxFiles(t, outbox); !slices.Equal(files, []string{"shop_1_receipt.eml"}) {
		t.Fatalf("outbox = %v", files)
	}
	rtWaitFor(t, "the pending index to clear", func() bool {
		p, err := store.Pending(ctx)
		return err == nil && len(p) == 0
	})

	t.Run("no email, skipped step", func(t *testing.T) {
		rtExec(t, r, "shop:2", "Place", `{}`)
		rtWaitFor(t, "cook", func() bool { return rtState[rtShop](t, r, "shop:2").Steps["cook"] == "done" })
		if s := rtState[rtShop](t, r, "shop:2"); s.Steps["receipt"] != "skipped" {
			t.Fatalf("receipt = %q", s.Steps["receipt"])
		}
	})
}

func TestStepRetries(t *testing.T) {
	tests := []struct {
		name         string
		failFirst    int
		permanent    bool
		wantStatus   string
		wantAttempts int
		wantErr      string
	}{
		{"retry then success", 2, false, "done", 3, ""},
		{"final failure", -1, false, "failed", 3, "try again later"},
		{"permanent failure is not retried", 0, true, "failed", 1, "550 no such user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := rtMemStore(t)
			mailer := &rtMailer{failFirst: tt.failFirst, permanent: tt.permanent}
			cfg := rtConfig(store)
			setMailer(&cfg, mailer)
			cfg.StepAttempts = 3
			r := rtStart(t, cfg)
			rtExec(t, r, "shop:r", "Place", `{"email":"bob@example.com"}`)
			rtWaitFor(t, "the receipt step to finish", func() bool {
				return rtState[rtShop](t, r, "shop:r").Steps["receipt"] != "pending"
			})
			s := rtState[rtShop](t, r, "shop:r")
			if s.Steps["receipt"] != tt.wantStatus || s.Attempts["receipt"] != tt.wantAttempts {
				t.Fatalf("receipt = %s after %d attempts, want %s after %d", s.Steps["receipt"], s.Attempts["receipt"], tt.wantStatus, tt.wantAttempts)
			}
			if got := mailer.count("shop:r/receipt"); got != tt.wantAttempts {
				t.Fatalf("mailer called %d times, want %d", got, tt.wantAttempts)
			}
			if !strings.Contains(s.Errors["receipt"], tt.wantErr) {
				t.Fatalf("recorded error = %q", s.Errors["receipt"])
			}
			// A failing step never blocked the stream's commands, and the
			// stream owes nothing any more.
			rtWaitFor(t, "the pending index to clear", func() bool {
				p, err := store.Pending(rtCtx(t))
				return err == nil && len(p) == 0
			})
		})
	}
}

func TestFailingStepDoesNotBlockCommands(t *testing.T) {
	mailer := &rtMailer{failFirst: -1}
	cfg := rtConfig(rtMemStore(t))
	setMailer(&cfg, mailer)
	cfg.StepAttempts = 1000
	cfg.StepBackoff = time.Hour // the step sleeps between attempts
	r := rtStart(t, cfg)
	rtExec(t, r, "shop:b", "Place", `{"email":"bob@example.com"}`)
	rtWaitFor(t, "the first mail attempt", func() bool { return mailer.count("shop:b/receipt") == 1 })
	if _, err := r.Execute(rtCtx(t), decider.Command{Stream: "shop:b", Type: "Place"}, events.AnyVersion); !errors.Is(err, decider.ErrConflict) {
		t.Fatalf("command while a step retries = %v, want the decider's conflict", err)
	}
	if _, err := r.State(rtCtx(t), "shop:b", decider.Caller{}); err != nil {
		t.Fatal(err)
	}
}

// Acceptance 4: the engine stops while the second of three steps waits; a
// new runtime on the same store finishes the remaining steps exactly once
// and does not repeat the first.
func TestStepsResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	outbox := filepath.Join(t.TempDir(), "outbox")
	mailer := &rtMailer{next: mail.NewOutbox(outbox)}

	store := rtOpenPebble(t, dir)
	cfg := rtConfig(store)
	setMailer(&cfg, mailer)
	setCook(&cfg, time.Hour)
	r1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"shop:1", "shop:2"} {
		rtExec(t, r1, s, "Place", `{"email":"ann@example.com"}`)
	}
	rtWaitFor(t, "both notifications", func() bool {
		return rtState[rtShop](t, r1, "shop:1").Steps["notify"] == "done" &&
			rtState[rtShop](t, r1, "shop:2").Steps["notify"] == "done"
	})
	rtStop(t, r1)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = rtOpenPebble(t, dir)
	if p, err := store.Pending(rtCtx(t)); err != nil || !slices.Equal(p, []string{"shop:1", "shop:2"}) {
		t.Fatalf("pending after the stop = %v, %v", p, err)
	}
	for _, s := range []string{"shop:1", "shop:2"} {
		if st := rtShopState(t, store, s); st.Steps["cook"] != "pending" || st.Steps["notify"] != "done" {
			t.Fatalf("%s steps after the stop = %v, want notify done and cook pending", s, st.Steps)
		}
	}
	cfg = rtConfig(store)
	setMailer(&cfg, mailer)
	r2 := rtStart(t, cfg) // Start resumes the pending streams; no command is sent
	rtWaitFor(t, "the remaining steps", func() bool {
		return rtShopState(t, store, "shop:1").Steps["receipt"] == "done" &&
			rtShopState(t, store, "shop:2").Steps["receipt"] == "done"
	})
	if files := rtOutboxFiles(t, outbox); !slices.Equal(files, []string{"shop_1_receipt.eml", "shop_2_receipt.eml"}) {
		t.Fatalf("outbox = %v", files)
	}
	for _, k := range []string{"shop:1/receipt", "shop:2/receipt"} {
		if n := mailer.count(k); n != 1 {
			t.Fatalf("%s sent %d times", k, n)
		}
	}
	tally := rtState[rtTally](t, r2, "tally:main")
	slices.Sort(tally.Orders)
	if !slices.Equal(tally.Orders, []string{"shop:1", "shop:2"}) {
		t.Fatalf("tally = %v: the first step ran again", tally.Orders)
	}
	for _, s := range []string{"shop:1", "shop:2"} {
		evs, err := store.ReadStream(rtCtx(t), s, 0, 0)
		if err != nil || len(evs) != 4 {
			t.Fatalf("%s has %d events (%v), want Placed and three completions", s, len(evs), err)
		}
	}
	rtWaitFor(t, "the pending index to clear", func() bool {
		p, err := store.Pending(rtCtx(t))
		return err == nil && len(p) == 0
	})
}

func TestPendingWithoutStepsIsCleared(t *testing.T) {
	store := rtMemStore(t)
	ctx := rtCtx(t)
	// A crash between marking and the append leaves a stale entry.
	if err := store.SetPending(ctx, "counter:stale", true); err != nil {
		t.Fatal(err)
	}
	if err := store.SetPending(ctx, "nosuch:x", true); err != nil {
		t.Fatal(err)
	}
	rtStart(t, rtConfig(store))
	p, err := store.Pending(ctx)
	if err != nil || !slices.Equal(p, []string{"nosuch:x"}) {
		t.Fatalf("pending after start = %v, %v; want only the unserved stream left", p, err)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{40, 30 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		for range 20 {
			if d := backoff(100*time.Millisecond, tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("backoff(attempt %d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}
