package main

import (
	"context"
	"strings"
	"testing"
)

// TestZeroSettings: a setting whose 0 the owning package would silently
// read as its default is refused at start-up, from a flag or from the
// environment; a setting whose 0 means something (-h says what) keeps it.
func TestZeroSettings(t *testing.T) {
	refused := []struct{ flag, env, zero string }{
		{"cook-time", "ENGINE_COOK_TIME", "0s"},
		{"body-limit", "ENGINE_BODY_LIMIT", "0"},
		{"read-limit", "ENGINE_READ_LIMIT", "0"},
		{"send-queue", "ENGINE_SEND_QUEUE", "0"},
		{"snapshot-every", "ENGINE_SNAPSHOT_EVERY", "0"},
		{"idle-timeout", "ENGINE_IDLE_TIMEOUT", "0"},
		{"command-timeout", "ENGINE_COMMAND_TIMEOUT", "0s"},
		{"step-attempts", "ENGINE_STEP_ATTEMPTS", "0"},
		{"step-backoff", "ENGINE_STEP_BACKOFF", "0ms"},
		{"step-max-time", "ENGINE_STEP_MAX_TIME", "0"},
		{"shutdown-grace", "ENGINE_SHUTDOWN_GRACE", "0s"},
	}
	for _, tc := range refused {
		t.Run(tc.flag, func(t *testing.T) {
			code, out, stderr := runCmd("-"+tc.flag, tc.zero)
			if code != 2 || out != "" {
				t.Errorf("-%s %s: exit %d, stdout %q; want 2", tc.flag, tc.zero, code, out)
			}
			if want := "-" + tc.flag + ": must be positive"; !strings.Contains(stderr, want) {
				t.Errorf("-%s %s: stderr does not say %q:\n%s", tc.flag, tc.zero, want, stderr)
			}
			var o, e strings.Builder
			getenv := func(k string) string {
				if k == tc.env {
					return tc.zero
				}
				return ""
			}
			if code := run(context.Background(), nil, getenv, &o, &e); code != 2 {
				t.Errorf("%s=%s: exit %d, want 2", tc.env, tc.zero, code)
			}
			if want := tc.env + `="` + tc.zero + `": must be positive`; !strings.Contains(e.String(), want) {
				t.Errorf("%s=%s: stderr %q, want %q", tc.env, tc.zero, e.String(), want)
			}
		})
	}
	t.Run("every numeric setting is decided", func(t *testing.T) {
		// A new number or duration must be added to one of the tables.
		decided := map[string]bool{"rate-limit": true, "rate-burst": true}
		for _, tc := range refused {
			decided[tc.flag] = true
		}
		var cfg Config
		for _, s := range cfg.settings() {
			numeric := s.set("x") != nil
			if numeric && s.set("0") == nil && !decided[s.flag] {
				t.Errorf("-%s accepts 0 and is in neither table", s.flag)
			}
		}
	})
	for _, tc := range []struct {
		flag, usage string
		get         func(Config) float64
	}{
		{"rate-limit", "(0: off)", func(c Config) float64 { return c.RateLimit }},
		{"rate-burst", "(0: the rate, rounded up)", func(c Config) float64 { return float64(c.RateBurst) }},
	} {
		t.Run(tc.flag+" 0 is meaningful", func(t *testing.T) {
			var cfg Config
			var stderr strings.Builder
			if err := cfg.ParseFlags("engine", []string{"-" + tc.flag, "0"}, func(string) string { return "" }, &stderr); err != nil {
				t.Fatalf("-%s 0: %v", tc.flag, err)
			}
			if got := tc.get(cfg); got != 0 {
				t.Errorf("-%s 0 gave %v", tc.flag, got)
			}
			code, _, help := runCmd("-h")
			if code != 0 || !strings.Contains(help, tc.usage) {
				t.Errorf("-h does not say what -%s 0 means (%q)", tc.flag, tc.usage)
			}
		})
	}
}
