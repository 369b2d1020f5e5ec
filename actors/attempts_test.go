package actors

import (
	"testing"
	"time"
)

// Every attempt of a step is reported to the Observer with its outcome.
func TestStepAttemptsObserved(t *testing.T) {
	tests := []struct {
		name                string
		failFirst, attempts int
		retry, ok, failed   int
	}{
		{"first attempt succeeds", 0, 3, 0, 1, 0},
		{"two retries then success", 2, 5, 2, 1, 0},
		{"out of attempts", -1, 3, 2, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &rtObserver{}
			cfg := rtConfig(rtMemStore(t))
			setMailer(&cfg, &rtMailer{failFirst: tc.failFirst})
			cfg.StepAttempts = tc.attempts
			cfg.StepBackoff = time.Millisecond
			cfg.Observer = obs
			r := rtStart(t, cfg)
			rtExec(t, r, "shop:o", "Place", `{"email":"bob@example.com"}`)
			rtWaitFor(t, "the receipt step to finish", func() bool {
				return rtState[rtShop](t, r, "shop:o").Steps["receipt"] != "pending"
			})
			if r, o, f := obs.stepCount("receipt", StepRetry), obs.stepCount("receipt", StepOK), obs.stepCount("receipt", StepFailed); r != tc.retry || o != tc.ok || f != tc.failed {
				t.Fatalf("receipt attempts retry/ok/failed = %d/%d/%d, want %d/%d/%d", r, o, f, tc.retry, tc.ok, tc.failed)
			}
		})
	}
}

// StepMaxTime, like the other durations, must not be negative.
func TestStepMaxTimeValidated(t *testing.T) {
	cfg := rtConfig(rtMemStore(t))
	cfg.StepMaxTime = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Fatal("a negative StepMaxTime is accepted")
	}
}
