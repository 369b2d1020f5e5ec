// Package kinds is the registry of the engine's stream kinds: it wraps each
// kind package's pure functions (room, game, order, user, kitchen) in an
// decider.Kind, the form the runtime, `engine replay` and the golden tests
// use, so that every one of them runs the same code.
//
// Its tests hold the golden replay of testdata/*.jsonl (`go test
// ./actors/kinds -update` rewrites the *.state.json files), the check that
// the broken logs of testdata/broken fail on the expected line, the snapshot
// round trip, and the generator of the recorded logs (`go test
// ./actors/kinds -run TestTestdataLogs -gen` rewrites testdata/*.jsonl; without
// -gen the test checks that the committed logs are what the kinds decide).
//
// Concurrency: All and ByName build fresh values on each call and hold no
// state; an decider.Kind made here is safe for concurrent use.
package kinds
