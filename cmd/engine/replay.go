package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/kinds"
)

// runReplay is `engine replay FILE.jsonl…`: it folds each file, on its own,
// through the kinds' Evolve (actors.Replay with the kinds registry) and
// prints the final state of each of its streams as a JSON array, in order
// of first appearance — the format of testdata/*.state.json — one file
// after another in argument order. A broken log stops it with exit status 1
// and an error naming the file and line; a usage error exits with 2.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: engine replay FILE.jsonl…

Folds each JSON Lines event log through the actors' own code and prints the
final state of each of its streams as a JSON array, one file after another.
A log that breaks a rule (a version gap, a version out of order, an unknown
stream kind or event type, a malformed line) is an error naming its line.
`)
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	for _, path := range fs.Args() {
		streams, err := actors.ReplayFile(kinds.ByName, path)
		if err != nil {
			fmt.Fprintf(stderr, "engine replay: %v\n", err)
			return 1
		}
		out, err := actors.StatesJSON(streams)
		if err != nil {
			fmt.Fprintf(stderr, "engine replay: %s: %v\n", path, err)
			return 1
		}
		if _, err := stdout.Write(out); err != nil {
			fmt.Fprintf(stderr, "engine replay: %v\n", err)
			return 1
		}
	}
	return 0
}
