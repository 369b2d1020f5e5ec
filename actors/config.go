package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config's zero values.
const (
	DefaultSnapshotEvery     = 1000
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultStepAttempts      = 5
	DefaultStepBackoff       = 200 * time.Millisecond
	DefaultStepMaxTime       = 10 * time.Minute
	DefaultIdempotencyWindow = 1024
	DefaultMaxActors         = 100_000
)

// Observer is told what the runtime does, for metrics. Its methods are
// called from actor goroutines, concurrently: they must be safe for
// concurrent use and must not block.
type Observer interface {
	// CommandDone reports one command: result is one of the Result*
	// constants; appendDur is how long the store append took (0 when
	// nothing was appended).
	CommandDone(kind, result string, appendDur time.Duration)
	// ActorActivated and ActorPassivated bracket the life of one stream
	// actor (passivation, or the runtime stopping): their difference is
	// the number of active actors.
	ActorActivated(kind string)
	ActorPassivated(kind string)
	// StepAttempt reports one attempt of a background step: outcome is
	// StepOK, StepRetry (failed, will be tried again) or StepFailed
	// (failed for good: permanent, or out of attempts or time).
	StepAttempt(kind, step, outcome string)
}

// Step attempt outcomes reported to Observer.StepAttempt.
const (
	StepOK     = "ok"
	StepRetry  = "retry"
	StepFailed = "failed"
)

// Command results reported to Observer.CommandDone.
const (
	ResultOK          = "ok"         // events appended
	ResultNoop        = "noop"       // Decide returned no events
	ResultIdempotent  = "idempotent" // a repeated command id: the first result again
	ResultRejected    = "rejected"   // Decide returned an error
	ResultWrongExpect = "wrong_expected_version"
	ResultUnavailable = "unavailable" // the caller had gone, or the runtime stops
	ResultError       = "error"       // the store failed
)

type nopObserver struct{}

func (nopObserver) CommandDone(string, string, time.Duration) {}
func (nopObserver) ActorActivated(string)                     {}
func (nopObserver) ActorPassivated(string)                    {}
func (nopObserver) StepAttempt(string, string, string)        {}

// withDefaults returns cfg with every zero value replaced by its default.
func (cfg Config) withDefaults() Config {
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.StepAttempts == 0 {
		cfg.StepAttempts = DefaultStepAttempts
	}
	if cfg.StepBackoff == 0 {
		cfg.StepBackoff = DefaultStepBackoff
	}
	if cfg.StepMaxTime == 0 {
		cfg.StepMaxTime = DefaultStepMaxTime
	}
	if cfg.IdempotencyWindow == 0 {
		cfg.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if cfg.MaxActors == 0 {
		cfg.MaxActors = DefaultMaxActors
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return cfg
}

// Validate reports a Config that New would refuse. Zero values are valid
// (they take their defaults) except Store and Kinds, which are required.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("a Store is required"))
	}
	if len(cfg.Kinds) == 0 {
		errs = append(errs, errors.New("at least one Kind is required"))
	}
	seen := make(map[string]bool, len(cfg.Kinds))
	for i, k := range cfg.Kinds {
		if k == nil {
			errs = append(errs, fmt.Errorf("kind %d is nil", i))
			continue
		}
		name := k.Name()
		if !validKindName(name) {
			errs = append(errs, fmt.Errorf("kind %d: name %q is not 1-32 lower-case letters", i, name))
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("kind %d: %q is served twice", i, name))
		}
		seen[name] = true
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"SnapshotEvery", int64(cfg.SnapshotEvery)},
		{"IdleTimeout", int64(cfg.IdleTimeout)},
		{"StepAttempts", int64(cfg.StepAttempts)},
		{"StepBackoff", int64(cfg.StepBackoff)},
		{"StepMaxTime", int64(cfg.StepMaxTime)},
		{"IdempotencyWindow", int64(cfg.IdempotencyWindow)},
		{"MaxActors", int64(cfg.MaxActors)},
	} {
		if c.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s", c.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("actors: invalid config: %w", err)
	}
	return nil
}

func validKindName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
