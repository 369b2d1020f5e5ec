package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/b6368a97/engine/events"
)

// storeFlags reads the settings that name a store (-data, -store with
// their environment fallbacks) for export and import.
func storeFlags(fs *flag.FlagSet, getenv func(string) string) *Config {
	cfg := &Config{DataDir: "./data"}
	if v := getenv("ENGINE_DATA"); v != "" {
		cfg.DataDir = v
	}
	cfg.Store = getenv("ENGINE_STORE")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory of the embedded store (env ENGINE_DATA)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "event store: empty for the embedded one, or postgres://… (env ENGINE_STORE)")
	return cfg
}

// runExport prints stored events as JSON Lines: one stream from a version,
// or the whole log from a position.
func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := storeFlags(fs, getenv)
	stream := fs.String("stream", "", "export only this stream")
	from := fs.Uint64("from", 0, "export events after this version (with -stream) or global position")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *stream != "" {
		if _, err := events.ParseStreamID(*stream); err != nil {
			fmt.Fprintln(stderr, "engine export:", err)
			return 2
		}
	}
	store, err := OpenStore(*cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(stderr, "engine export:", err)
		return 1
	}
	defer store.Close()

	enc := events.NewEncoder(stdout)
	seq := events.IterAll(ctx, store, *from)
	if *stream != "" {
		seq = events.IterStream(ctx, store, *stream, *from)
	}
	n := 0
	for ev, err := range seq {
		if err != nil {
			fmt.Fprintln(stderr, "engine export:", err)
			return 1
		}
		if err := enc.Encode(ev); err != nil {
			fmt.Fprintln(stderr, "engine export:", err)
			return 1
		}
		n++
	}
	if err := enc.Flush(); err != nil {
		fmt.Fprintln(stderr, "engine export:", err)
		return 1
	}
	return 0
}

// runImport appends a JSON Lines log to the store. Each event keeps its
// id, type, time, data and meta and must land at the version it had: the
// append expects the version before it, so a log that does not continue
// the stored streams is refused at the line that breaks. Positions are the
// store's own. Importing the same file twice is a no-op (ids are stored).
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := storeFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: engine import [-data DIR] FILE.jsonl")
		return 2
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "engine import:", err)
		return 1
	}
	defer f.Close()
	store, err := OpenStore(*cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(stderr, "engine import:", err)
		return 1
	}
	defer store.Close()

	n, dup, err := importLog(ctx, store, f)
	if err != nil {
		fmt.Fprintf(stderr, "engine import: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d events (%d already stored)\n", n, dup)
	return 0
}

// importLog appends the events of r in order, one append per run of
// consecutive events of the same stream.
func importLog(ctx context.Context, store events.Store, r io.Reader) (imported, duplicate int, err error) {
	dec := events.NewDecoder(r)
	var (
		batch     []events.Event
		batchLine int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		first := batch[0]
		res, err := store.Append(ctx, first.Stream, events.Exactly(first.Version-1), batch)
		if err != nil {
			return &events.LineError{Line: batchLine, Err: err}
		}
		if res.Duplicate {
			duplicate += len(batch)
		} else {
			imported += len(batch)
		}
		batch = batch[:0]
		return nil
	}
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return imported, duplicate, err
		}
		if len(batch) > 0 {
			last := batch[len(batch)-1]
			if ev.Stream != last.Stream || ev.Version != last.Version+1 || len(batch) >= 256 {
				if err := flush(); err != nil {
					return imported, duplicate, err
				}
			}
		}
		if len(batch) == 0 {
			batchLine = dec.Line()
		}
		batch = append(batch, ev)
	}
	return imported, duplicate, flush()
}
