package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SeedConfig is the seed scenario's set-up.
type SeedConfig struct {
	Targets  []string
	N        int           // concurrent POST /order/{item}, round-robin over Targets
	Item     string        // the item ordered
	CookTime time.Duration // the servers' cook time, for the wall/cook ratio; 0 for unknown
	Timeout  time.Duration // bounds each request
	CPUPIDs  []int
	Progress io.Writer
	dialer   *dialer
}

// SeedResult is what the seed scenario measured.
type SeedResult struct {
	Scenario    string   `json:"scenario"`
	Targets     []string `json:"targets"`
	N           int      `json:"n"`
	Item        string   `json:"item"`
	WallSeconds float64  `json:"wall_seconds"` // first request sent → last answer
	// Latency is each request's, answered or not.
	Latency      Latency          `json:"latency"`
	CookSeconds  float64          `json:"cook_seconds,omitempty"`
	WallPerCook  float64          `json:"wall_per_cook,omitempty"`
	Ready        int64            `json:"ready"` // 200 with status "ready!"
	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_status"` // "503", "200 without ready!", or "transport"
	FirstError   string           `json:"first_error,omitempty"`
	CPU          *CPU             `json:"cpu"`
}

func runSeedCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cm common
	cm.register(fs)
	cfg := SeedConfig{}
	fs.IntVar(&cfg.N, "n", 100, "concurrent POST /order/{item} requests")
	fs.StringVar(&cfg.Item, "item", "pizza", "the item ordered")
	fs.DurationVar(&cfg.CookTime, "cook-time", 3*time.Second, "the servers' cook time (the engine's default is 3s), for the wall/cook ratio; 0 if unknown")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "bounds each request")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench seed [flags]

Sends -n POST /order/ITEM requests at once over HTTP (the seed route that
places a one-item order and answers 200 {"order":ITEM,"status":"ready!"}
once it is ready). Reported: wall time from the first request to the last
answer, each request's latency p50/p99/max, wall time / -cook-time, and
errors by status. -source-ips applies; the WebSocket flags do not.

Flags:
`)
		fs.PrintDefaults()
	}
	return cm.execute(fs, args, stdout, func(targets []string, pids []int, d *dialer) {
		cfg.Targets, cfg.CPUPIDs, cfg.dialer, cfg.Progress = targets, pids, d, stderr
	}, func() (printer, error) { return RunSeed(ctx, cfg) })
}

func (r *SeedResult) print(w io.Writer) {
	t := newTable(w)
	t.row("scenario", "seed: %d concurrent POST /order/%s, %d target(s)", r.N, r.Item, len(r.Targets))
	if r.CookSeconds > 0 {
		t.row("wall", "%.3f s  (%.2f x the %.3f s cook time)", r.WallSeconds, r.WallPerCook, r.CookSeconds)
	} else {
		t.row("wall", "%.3f s", r.WallSeconds)
	}
	t.latency("request latency", r.Latency)
	t.row("ready", "%d of %d", r.Ready, r.N)
	t.row("errors", "%d  %s", r.Errors, codes(r.ErrorsByKind))
	if r.FirstError != "" {
		t.row("first error", "%s", r.FirstError)
	}
	t.cpu(r.CPU, "order")
	t.flush()
}

// RunSeed runs the seed scenario against running servers.
func RunSeed(ctx context.Context, cfg SeedConfig) (*SeedResult, error) {
	if len(cfg.Targets) == 0 || cfg.N < 1 || cfg.Item == "" || cfg.CookTime < 0 {
		return nil, errors.New("need targets, n >= 1, an item and cook time >= 0")
	}
	if cfg.dialer == nil {
		cfg.dialer, _ = newDialer(nil)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	res := &SeedResult{Scenario: "seed", Targets: cfg.Targets, N: cfg.N, Item: cfg.Item, CookSeconds: cfg.CookTime.Seconds(), ErrorsByKind: map[string]int64{}}
	path := "/order/" + url.PathEscape(cfg.Item)
	lat := make([]int64, cfg.N)
	kinds := make([]string, cfg.N) // "" for ready
	details := make([]string, cfg.N)
	var mu sync.Mutex
	var answered int
	start := time.Now()
	progStop := startProgress(cfg.Progress, start, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("answered=%d/%d", answered, cfg.N)
	})
	defer progStop()

	m0 := markCPU(cfg.CPUPIDs)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range cfg.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := cfg.dialer.clients[i%len(cfg.dialer.clients)]
			rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(rctx, http.MethodPost, cfg.Targets[i%len(cfg.Targets)]+path, nil)
			<-release
			t0 := time.Now()
			kind, detail := "", ""
			if err == nil {
				kind, detail = order(client, req)
			} else {
				kind, detail = "request", err.Error()
			}
			lat[i] = int64(time.Since(t0))
			kinds[i], details[i] = kind, detail
			mu.Lock()
			answered++
			mu.Unlock()
		}()
	}
	t0 := time.Now()
	close(release)
	wg.Wait()
	res.WallSeconds = time.Since(t0).Seconds()
	m1 := markCPU(cfg.CPUPIDs)
	progStop()
	for i, k := range kinds {
		if k == "" {
			res.Ready++
			continue
		}
		res.Errors++
		res.ErrorsByKind[k]++
		if res.FirstError == "" {
			res.FirstError = details[i]
		}
	}
	res.Latency = summarize(lat)
	if res.CookSeconds > 0 {
		res.WallPerCook = res.WallSeconds / res.CookSeconds
	}
	res.CPU = cpuBetween(m0, m1, res.Ready)
	return res, nil
}

// order sends one request; kind is "" when it answered 200 with
// "status":"ready!", else the status code, "200 without ready!" or
// "transport".
func order(client *http.Client, req *http.Request) (kind, detail string) {
	resp, err := client.Do(req)
	if err != nil {
		return "transport", err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "transport", err.Error()
	}
	body := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return strconv.Itoa(resp.StatusCode), resp.Status + ": " + clip(body)
	}
	if !strings.Contains(body, `"status":"ready!"`) {
		return "200 without ready!", clip(body)
	}
	return "", ""
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
