// Command engine is the event-sourced real-time engine. Run without a
// subcommand it serves HTTP and WebSocket; `engine replay`, `engine export`
// and `engine import` work on logs and the store. `engine -h` lists every
// setting.
//
// main only dispatches: each subcommand is a function of its arguments and
// output streams, and the server is the Main type, so tests run them
// in-process.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "replay":
			return runReplay(args[1:], stdout, stderr)
		case "export":
			return runExport(ctx, args[1:], getenv, stdout, stderr)
		case "import":
			return runImport(ctx, args[1:], getenv, stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, getenv, stderr)
}
