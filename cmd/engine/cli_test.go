package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dirEntries lists dir, or returns nil when it does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestExportImportNeedAStore: export, and import without -create, refuse a
// -data that holds no store, with a message naming it, and create nothing
// there; import -create starts a store, and after that import needs no
// -create.
func TestExportImportNeedAStore(t *testing.T) {
	log := filepath.Join(testdata, "game.jsonl")
	for _, tc := range []struct {
		name string
		args []string // -data DIR is appended
		hint string
	}{
		{"export", []string{"export"}, "(give -data the directory the engine serves from)"},
		{"export one stream", []string{"export", "-stream", "game:final"}, "(give -data the directory the engine serves from)"},
		{"import", []string{"import", log}, "(give -data the directory the engine serves from, or -create to start a new store there)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "mistyped", "path")
			empty := t.TempDir()
			for _, dir := range []string{missing, empty} {
				code, out, stderr := runCmd(append(tc.args[:1:1], append([]string{"-data", dir}, tc.args[1:]...)...)...)
				if code != 1 || out != "" {
					t.Errorf("-data %s: exit %d, stdout %q; want 1 and nothing", dir, code, out)
				}
				if want := "no store in " + dir + " " + tc.hint; !strings.Contains(stderr, want) {
					t.Errorf("-data %s: stderr %q, want %q", dir, stderr, want)
				}
			}
			if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
				t.Errorf("%s was created (stat: %v)", filepath.Dir(missing), err)
			}
			if got := dirEntries(t, empty); len(got) != 0 {
				t.Errorf("the empty -data now holds %v", got)
			}
		})
	}
	t.Run("ENGINE_DATA too", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		getenv := func(k string) string {
			if k == "ENGINE_DATA" {
				return missing
			}
			return ""
		}
		var out, errb strings.Builder
		if code := run(context.Background(), []string{"export"}, getenv, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no store in "+missing) {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
		if dirEntries(t, missing) != nil {
			t.Errorf("%s was created", missing)
		}
	})
	t.Run("import -create, then import and export", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "data")
		code, out, stderr := runCmd("import", "-create", "-data", dir, log)
		if code != 0 || out != "imported 57 events (0 already stored)\n" {
			t.Fatalf("import -create: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		// The store exists now: import without -create appends to it
		// (here: nothing new), and -create on it is harmless.
		for _, args := range [][]string{{"import", "-data", dir, log}, {"import", "-create", "-data", dir, log}} {
			code, out, stderr := runCmd(args...)
			if code != 0 || out != "imported 0 events (57 already stored)\n" {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
			}
		}
		code, out, stderr = runCmd("export", "-data", dir)
		if code != 0 || len(decodeAll(t, out)) != 57 {
			t.Fatalf("export: exit %d, %d events, stderr %q", code, len(decodeAll(t, out)), stderr)
		}
	})
	t.Run("import from stdin", func(t *testing.T) {
		f, err := os.Open(log)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stdin := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = stdin }()
		code, out, stderr := runCmd("import", "-create", "-data", t.TempDir(), "-")
		if code != 0 || out != "imported 57 events (0 already stored)\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
	})
	t.Run("a missing input creates nothing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		code, _, stderr := runCmd("import", "-create", "-data", dir, filepath.Join(testdata, "nope.jsonl"))
		if code != 1 || !strings.Contains(stderr, "nope.jsonl") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if dirEntries(t, dir) != nil {
			t.Errorf("%s was created", dir)
		}
	})
}

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
		{"max-actors", "ENGINE_MAX_ACTORS", "0"},
		{"command-timeout", "ENGINE_COMMAND_TIMEOUT", "0s"},
		{"max-subscriptions", "ENGINE_MAX_SUBSCRIPTIONS", "0"},
		{"max-connections", "ENGINE_MAX_CONNECTIONS", "0"},
		{"max-connections-per-ip", "ENGINE_MAX_CONNECTIONS_PER_IP", "0"},
		{"http-read-timeout", "ENGINE_HTTP_READ_TIMEOUT", "0s"},
		{"close-linger", "ENGINE_CLOSE_LINGER", "0s"},
		{"close-linger-bytes", "ENGINE_CLOSE_LINGER_BYTES", "0"},
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
		decided := map[string]bool{"rate-limit": true, "rate-burst": true, "jwt-leeway": true}
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
		{"jwt-leeway", "(0: none)", func(c Config) float64 { return float64(c.JWTLeeway) }},
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

// TestHelpCommand: `engine help` prints what -h prints, on stdout, with
// exit 0; `engine help COMMAND` a command's usage.
func TestHelpCommand(t *testing.T) {
	_, _, dashH := runCmd("-h")
	code, out, stderr := runCmd("help")
	if code != 0 || stderr != "" {
		t.Fatalf("engine help: exit %d, stderr %q", code, stderr)
	}
	if out != dashH {
		t.Errorf("engine help prints:\n%s\nengine -h prints:\n%s", out, dashH)
	}
	for _, tc := range []struct{ topic, want string }{
		{"serve", "Usage:\n  engine [flags]"},
		{"replay", "Usage: engine replay FILE.jsonl…"},
		{"export", "Usage: engine export [-data DIR] [-stream S] [-from N]"},
		{"import", "-create"},
	} {
		code, out, stderr := runCmd("help", tc.topic)
		if code != 0 || stderr != "" || !strings.Contains(out, tc.want) {
			t.Errorf("engine help %s: exit %d, stderr %q, stdout %q; want 0 and %q", tc.topic, code, stderr, out, tc.want)
		}
		_, _, dashH := runCmd(tc.topic, "-h")
		if tc.topic != "serve" && out != dashH {
			t.Errorf("engine help %s differs from engine %[1]s -h", tc.topic)
		}
	}
	t.Run("a bad environment does not hide the help", func(t *testing.T) {
		getenv := func(k string) string {
			if k == "ENGINE_BODY_LIMIT" {
				return "0"
			}
			return ""
		}
		for _, args := range [][]string{{"-h"}, {"help"}} {
			var o, e strings.Builder
			if code := run(context.Background(), args, getenv, &o, &e); code != 0 || !strings.Contains(o.String()+e.String(), "Usage:") {
				t.Errorf("engine %v with ENGINE_BODY_LIMIT=0: exit %d, stdout %q, stderr %q", args, code, o.String(), e.String())
			}
		}
	})
	if code, out, stderr := runCmd("help", "nope"); code != 2 || out != "" || !strings.Contains(stderr, `unknown command "nope"`) {
		t.Errorf("engine help nope: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestJWTSettings: the token settings' defaults, environment and flags.
func TestJWTSettings(t *testing.T) {
	if m := NewMain(); m.Config.JWTLeeway != 30*time.Second || m.Config.JWKSFile != "" || m.Config.JWTSecret != "" {
		t.Fatalf("defaults: leeway %s, jwks %q", m.Config.JWTLeeway, m.Config.JWKSFile)
	}
	env := map[string]string{"ENGINE_JWT_LEEWAY": "5s", "ENGINE_JWT_JWKS_FILE": "/etc/engine/jwks.json"}
	var cfg Config
	var stderr strings.Builder
	if err := cfg.ParseFlags("engine", nil, func(k string) string { return env[k] }, &stderr); err != nil {
		t.Fatal(err)
	}
	if cfg.JWTLeeway != 5*time.Second || cfg.JWKSFile != "/etc/engine/jwks.json" {
		t.Fatalf("from the environment: leeway %s, jwks %q", cfg.JWTLeeway, cfg.JWKSFile)
	}
	if err := cfg.ParseFlags("engine", []string{"-jwt-leeway", "1m", "-jwt-jwks-file", "k.json"}, func(k string) string { return env[k] }, &stderr); err != nil {
		t.Fatal(err)
	}
	if cfg.JWTLeeway != time.Minute || cfg.JWKSFile != "k.json" {
		t.Fatalf("from flags: leeway %s, jwks %q", cfg.JWTLeeway, cfg.JWKSFile)
	}
	if code, _, stderr := runCmd("-jwt-leeway", "-1s"); code != 2 || !strings.Contains(stderr, "negative duration") {
		t.Errorf("-jwt-leeway -1s: exit %d, stderr %q", code, stderr)
	}
}

// The start-up line names a URL a browser can open, also when the server
// listens on every interface.
func TestBrowserURL(t *testing.T) {
	for addr, want := range map[string]string{
		"[::]:8080":      "http://127.0.0.1:8080/",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/",
		":8080":          "http://127.0.0.1:8080/",
		"127.0.0.1:4321": "http://127.0.0.1:4321/",
		"[::1]:80":       "http://[::1]:80/",
		"":               "",
	} {
		if got := browserURL(addr); got != want {
			t.Errorf("browserURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
