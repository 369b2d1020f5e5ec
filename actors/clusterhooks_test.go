package actors

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// The settings a cluster node gives its runtime: no resume at Start, step
// commands through Commands, members from Members; and the calls it
// makes: Wake, Evict, ExecuteInternal.

func TestSkipResumeThenWake(t *testing.T) {
	store := rtMemStore(t)
	ctx := rtCtx(t)
	cfg := rtConfig(store)
	setCook(&cfg, time.Hour) // the cook step stays owed
	r := rtStart(t, cfg)
	rtExec(t, r, "shop:1", "Place", `{}`)
	rtWaitFor(t, "notify", func() bool { return rtState[rtShop](t, r, "shop:1").Steps["notify"] == "done" })
	rtStop(t, r)

	cfg = rtConfig(store)
	cfg.SkipResume = true
	r = rtStart(t, cfg)
	if r.rtActive("shop:1") {
		t.Fatal("Start resumed a pending stream with SkipResume")
	}
	if err := r.Wake(ctx, "shop:1"); err != nil {
		t.Fatal(err)
	}
	if !r.rtActive("shop:1") {
		t.Fatal("Wake did not activate the stream")
	}
	rtWaitFor(t, "the resumed steps", func() bool {
		return rtState[rtShop](t, r, "shop:1").Steps["receipt"] == "skipped" && rtState[rtShop](t, r, "shop:1").Steps["cook"] == "done"
	})
	if err := r.Wake(ctx, "nosuch:1"); err == nil {
		t.Fatal("Wake of an unknown kind succeeded")
	}
}

// Evict stops a stream's actor in the middle of a step; the step is still
// owed and runs on the next activation.
func TestEvictInterruptsAStepThatStaysOwed(t *testing.T) {
	store := rtMemStore(t)
	ctx := rtCtx(t)
	cfg := rtConfig(store)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	cfg.Executors[decider.StepWait] = func(ctx context.Context, st decider.Step) error {
		once.Do(func() { started <- struct{}{} })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := rtStart(t, cfg)
	rtExec(t, r, "shop:1", "Place", `{}`)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the cook step did not start")
	}
	r.Evict("shop:1")
	rtWaitFor(t, "the eviction", func() bool { return !r.rtActive("shop:1") })
	if s := rtState[rtShop](t, r, "shop:1"); s.Steps["cook"] != "pending" {
		t.Fatalf("cook = %q after an eviction, want still pending", s.Steps["cook"])
	}
	close(release)
	rtWaitFor(t, "cook on the next activation", func() bool { return rtState[rtShop](t, r, "shop:1").Steps["cook"] == "done" })
	r.Evict("shop:nothing") // not active: nothing happens
}

func TestCommandsHookRunsStepCommands(t *testing.T) {
	store := rtMemStore(t)
	cfg := rtConfig(store)
	var mu sync.Mutex
	var routed []decider.Command
	var r *Runtime
	cfg.Commands = func(ctx context.Context, cmd decider.Command) (Result, error) {
		mu.Lock()
		routed = append(routed, cmd)
		mu.Unlock()
		return r.ExecuteInternal(ctx, cmd, events.AnyVersion)
	}
	r = rtStart(t, cfg)
	rtExec(t, r, "shop:1", "Place", `{}`)
	rtWaitFor(t, "notify", func() bool { return rtState[rtShop](t, r, "shop:1").Steps["notify"] == "done" })
	mu.Lock()
	defer mu.Unlock()
	if len(routed) != 1 || routed[0].Stream != "tally:main" || routed[0].ID != "shop:1/notify" {
		t.Fatalf("routed %+v, want the notify step's command to tally:main", routed)
	}
}

func TestMembersHookShowsInState(t *testing.T) {
	cfg := rtConfig(rtMemStore(t))
	cfg.Members = func(stream string) []string { return []string{"ann@" + stream} }
	r := rtStart(t, cfg)
	rtExec(t, r, "room:a", "Post", `{}`)
	if s := rtState[rtRoom](t, r, "room:a"); !slices.Equal(s.Members, []string{"ann@room:a"}) {
		t.Fatalf("members %v", s.Members)
	}
}
