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
// prints the final state of every stream as one JSON array: the states of
// the first file in order of first appearance, then those of the next
// file, and so on. One file prints the format of testdata/*.state.json.
// A stream present in two files is folded twice, once per file, and is in
// the array twice. A broken log stops it with exit status 1, an error
// naming the file and line and nothing on stdout; a usage error exits
// with 2.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: engine replay FILE.jsonl…

Folds each JSON Lines event log, on its own, through the actors' own code
and prints the final state of every stream as one JSON array: the first
file's streams in order of first appearance, then the next file's. A log
that breaks a rule (a version gap, a version out of order, an unknown
stream kind or event type, a malformed line) is an error naming its file
and line, and nothing is printed.
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
	var all []actors.ReplayedStream
	for _, path := range fs.Args() {
		streams, err := actors.ReplayFile(kinds.ByName, path)
		if err != nil {
			fmt.Fprintf(stderr, "engine replay: %v\n", err)
			return 1
		}
		all = append(all, streams...)
	}
	out, err := actors.StatesJSON(all)
	if err != nil {
		fmt.Fprintf(stderr, "engine replay: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "engine replay: %v\n", err)
		return 1
	}
	return 0
}
