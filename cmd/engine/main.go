// Command engine is the event-sourced real-time engine: run without a
// subcommand it serves HTTP and WebSocket; `engine replay FILE.jsonl…` folds
// recorded logs through the kinds' own code and prints the final states.
//
// main only dispatches: each subcommand is a function of its arguments and
// output streams, so tests run it in-process.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "replay":
			return runReplay(args[1:], stdout, stderr)
		}
	}
	// The server is wired here once it exists; until then say so.
	fmt.Fprintln(stderr, "engine: server not built yet; subcommands: replay FILE.jsonl…")
	return 2
}
