// Command engine is the event-sourced real-time engine. Run without a
// subcommand it serves HTTP and WebSocket; `engine replay`, `engine export`
// and `engine import` work on logs and the store. `engine -h` (or `engine
// help`) lists every setting; `engine help COMMAND` a command's flags.
//
// main only dispatches: each subcommand is a function of its arguments and
// output streams, and the server is the Main type, so tests run them
// in-process.
package main

import (
	"context"
	"fmt"
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
		case "help":
			return runHelp(ctx, args[1:], getenv, stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, getenv, stderr)
}

// runHelp is `engine help [COMMAND]`: the usage -h prints, on stdout
// (asked-for output, ready for a pager), with exit status 0.
func runHelp(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: engine help [COMMAND]")
		return 2
	}
	topic := ""
	if len(args) == 1 {
		topic = args[0]
	}
	switch topic {
	case "", "serve", "help":
		return runServe(ctx, []string{"-h"}, getenv, stdout)
	case "replay":
		return runReplay([]string{"-h"}, stdout, stdout)
	case "export":
		return runExport(ctx, []string{"-h"}, getenv, stdout, stdout)
	case "import":
		return runImport(ctx, []string{"-h"}, getenv, stdout, stdout)
	}
	fmt.Fprintf(stderr, "engine help: unknown command %q (commands: serve, replay, export, import)\n", topic)
	return 2
}
