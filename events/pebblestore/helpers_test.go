package pebblestore

import (
	"log/slog"
	"testing"
)

// testConfig keeps test stores small: the suite opens dozens of stores in
// parallel, and 64 MiB memtables and caches each would add up.
func testConfig(t testing.TB) Config {
	return Config{
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		MemTableSize: 4 << 20,
		CacheSize:    4 << 20,
	}
}

// testWriter sends log output to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
