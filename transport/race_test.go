//go:build race

package transport_test

// raceDetector is set when the tests run under -race.
const raceDetector = true
