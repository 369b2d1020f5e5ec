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
	"github.com/b6368a97/engine/events/pebblestore"
)

// storeFlags reads the settings that name a store (-data, -store with
// their environment fallbacks) for export and import.
func storeFlags(fs *flag.FlagSet, getenv func(string) string) *Config {
	cfg := &Config{DataDir: "./data"}
	if v := getenv("ENGINE_DATA"); v != "" {
		cfg.DataDir = v
	}
	cfg.Store = getenv("ENGINE_STORE")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory the engine serves from, holding the embedded store (env ENGINE_DATA)")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "event store: empty for the embedded one, or postgres://… (env ENGINE_STORE)")
	return cfg
}

// subcommandUsage prints a subcommand's usage: the synopsis, what it does,
// then its flags.
func subcommandUsage(fs *flag.FlagSet, w io.Writer, text string) func() {
	return func() {
		fmt.Fprint(w, text)
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
}

// storeLogger is the logger of the store a subcommand opens: warnings and
// errors only, on stderr.
func storeLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runExport prints stored events as JSON Lines: one stream from a version,
// or the whole log from a position. The store must exist: export never
// creates one (a mistyped -data is an error, not an empty export).
func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := storeFlags(fs, getenv)
	stream := fs.String("stream", "", "export only this stream")
	from := fs.Uint64("from", 0, "export events after this version (with -stream) or global position")
	fs.Usage = subcommandUsage(fs, stderr, `Usage: engine export [-data DIR] [-stream S] [-from N]

Prints the stored events on stdout as JSON Lines, the format import and
replay read. -data must hold a store: a directory without one is an error,
and export creates nothing there. On a terminal, stderr shows the progress;
a summary line (events, time, rate) ends a successful export.
`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "engine export: unexpected argument %q (see -h)\n", fs.Arg(0))
		return 2
	}
	if *stream != "" {
		if _, err := events.ParseStreamID(*stream); err != nil {
			fmt.Fprintln(stderr, "engine export:", err)
			return 2
		}
	}
	store, err := OpenExistingStore(*cfg, storeLogger(stderr))
	if errors.Is(err, pebblestore.ErrNoStore) {
		fmt.Fprintf(stderr, "engine export: %v (give -data the directory the engine serves from)\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "engine export:", err)
		return 1
	}
	defer store.Close()
	if err := export(ctx, store, *stream, *from, stdout, newProgress(stderr, "engine export")); err != nil {
		fmt.Fprintln(stderr, "engine export:", err)
		return 1
	}
	return 0
}

// export writes the events of one stream after a version, or with stream
// "" of the whole log after a position, reporting to p.
func export(ctx context.Context, store events.Store, stream string, from uint64, w io.Writer, p *progress) error {
	var (
		seq  = events.IterAll(ctx, store, from)
		head uint64
		err  error
	)
	if stream != "" {
		seq = events.IterStream(ctx, store, stream, from)
		head, err = store.StreamVersion(ctx, stream)
	} else {
		head, err = store.Head(ctx)
	}
	if err != nil {
		return err
	}
	if head > from {
		p.setTotal(int64(head - from))
	}
	enc := events.NewEncoder(w)
	for ev, err := range seq {
		if err == nil {
			err = enc.Encode(ev)
		}
		if err != nil {
			p.clear()
			return err
		}
		at := ev.Position
		if stream != "" {
			at = ev.Version
		}
		p.add(1, int64(at-from))
	}
	if err := enc.Flush(); err != nil {
		p.clear()
		return err
	}
	p.finish()
	return nil
}

// runImport appends a JSON Lines log to the store. Each event keeps its
// id, type, time, data and meta and must land at the version it had: the
// append expects the version before it, so a log that does not continue
// the stored streams is refused at the line that breaks. Positions are the
// store's own. Importing the same file twice is a no-op (ids are stored).
//
// The store must exist unless -create is given: moving a deployment is
// `engine import -create -data NEW FILE`, and a mistyped -data without
// -create is an error that creates nothing, not a new store beside the
// real one.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := storeFlags(fs, getenv)
	create := fs.Bool("create", false, "create the store when -data holds none (a new deployment)")
	fs.Usage = subcommandUsage(fs, stderr, `Usage: engine import [-data DIR] [-create] FILE.jsonl
       engine export -data OLD | engine import -create -data NEW -

Appends a JSON Lines log (- for stdin) to the store, checking that each
event continues its stream; importing the same log twice is a no-op. -data
must hold a store unless -create is given: without it a directory with no
store is an error, and import creates nothing there. With -create an
existing store is used as it is. On a terminal, stderr shows the progress
(with a percent when FILE is a regular file); a summary line (events,
time, rate) ends a successful import.
`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: engine import [-data DIR] [-create] FILE.jsonl (see -h)")
		return 2
	}
	name := fs.Arg(0)
	in, size, err := openInput(name)
	if err != nil {
		fmt.Fprintln(stderr, "engine import:", err)
		return 1
	}
	defer in.Close()
	open := OpenExistingStore
	if *create {
		open = OpenStore
	}
	store, err := open(*cfg, storeLogger(stderr))
	if errors.Is(err, pebblestore.ErrNoStore) {
		fmt.Fprintf(stderr, "engine import: %v (give -data the directory the engine serves from, or -create to start a new store there)\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "engine import:", err)
		return 1
	}
	defer store.Close()

	p := newProgress(stderr, "engine import")
	p.setTotal(size)
	r := &countingReader{r: in}
	n, dup, err := importLog(ctx, store, r, func(n int) { p.add(n, r.n) })
	if err != nil {
		p.clear()
		fmt.Fprintf(stderr, "engine import: %s: %v\n", name, err)
		return 1
	}
	p.finish()
	fmt.Fprintf(stdout, "imported %d events (%d already stored)\n", n, dup)
	return 0
}

// openInput opens an import's input: the file, or stdin for "-". size is
// the file's size when it is a regular file, else 0 (unknown).
func openInput(name string) (r io.ReadCloser, size int64, err error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, nil
}

// importLog appends the events of r in order, one append per run of
// consecutive events of the same stream, and calls appended (when not nil)
// with the number of events of each append.
func importLog(ctx context.Context, store events.Store, r io.Reader, appended func(n int)) (imported, duplicate int, err error) {
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
		if appended != nil {
			appended(len(batch))
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
