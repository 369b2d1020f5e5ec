package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// readRSS returns a process's resident set size (VmRSS of
// /proc/PID/status) in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseRSS(b, pid)
}

func parseRSS(b []byte, pid int) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n, nil
				}
			}
			break
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// goStats are the Go runtime figures a server exposes at GET /metrics.
type goStats struct {
	Goroutines   float64 `json:"goroutines"`
	HeapInuseMiB float64 `json:"heap_inuse_mib"`
}

// scrapeGoStats reads go_goroutines and go_memstats_heap_inuse_bytes from
// base's /metrics; an error if either is missing.
func scrapeGoStats(ctx context.Context, client *http.Client, base string) (*goStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return parseGoStats(b)
}

func parseGoStats(b []byte) (*goStats, error) {
	var s goStats
	var haveG, haveH bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			s.Goroutines, haveG = v, true
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuseMiB, haveH = v/(1<<20), true
		}
	}
	if !haveG || !haveH {
		return nil, fmt.Errorf("/metrics has no go_goroutines or go_memstats_heap_inuse_bytes")
	}
	return &s, nil
}
