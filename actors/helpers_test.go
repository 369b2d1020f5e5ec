package actors

// Test kinds and helpers of the runtime tests. Every identifier here starts
// with rt so that it cannot collide with the replay tests of this package.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/events/pebblestore"
	"github.com/b6368a97/engine/mail"
)

// rtCounter is a counter kind: Inc, Add {by}, AddTwice, IfBelow {limit},
// Noop, Reject, Panic, and Bogus (an event its Evolve refuses).
type rtCounter struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	N       int    `json:"n"`
	// Hist holds the last 100 increments, so that replay order matters and
	// Evolve mutates a slice in place, as real kinds do.
	Hist []int `json:"hist"`
}

type rtBy struct {
	By    int `json:"by"`
	Limit int `json:"limit"`
}

func rtCounterKind() decider.Kind {
	return decider.New(decider.Decider[rtCounter]{
		Name:    "counter",
		Initial: func(stream string) rtCounter { return rtCounter{Stream: stream} },
		Decide: func(s rtCounter, c decider.Command) ([]events.Event, error) {
			var in rtBy
			if len(c.Data) > 0 {
				if err := json.Unmarshal(c.Data, &in); err != nil {
					return nil, fmt.Errorf("%w: %v", decider.ErrInvalid, err)
				}
			}
			switch c.Type {
			case "Inc":
				return []events.Event{{Type: "Incremented"}}, nil
			case "Add":
				if in.By <= 0 {
					return nil, fmt.Errorf("%w: by must be positive", decider.ErrInvalid)
				}
				return []events.Event{{Type: "Added", Data: c.Data}}, nil
			case "AddTwice":
				return []events.Event{{Type: "Added", Data: c.Data}, {Type: "Added", Data: c.Data}}, nil
			case "IfBelow":
				if s.N >= in.Limit {
					return nil, fmt.Errorf("%w: counter at %d", decider.ErrConflict, s.N)
				}
				return []events.Event{{Type: "Incremented"}}, nil
			case "Noop":
				return nil, nil
			case "Reject":
				return nil, fmt.Errorf("%w: rejected", decider.ErrConflict)
			case "Panic":
				panic("decider bug")
			case "Bogus":
				return []events.Event{{Type: "Bogus"}}, nil
			}
			return nil, fmt.Errorf("%w: %s", decider.ErrUnknownCommand, c.Type)
		},
		Evolve: func(s rtCounter, e events.Event) (rtCounter, error) {
			by := 1
			switch e.Type {
			case "Incremented":
			case "Added":
				var in rtBy
				if err := json.Unmarshal(e.Data, &in); err != nil {
					return s, err
				}
				by = in.By
			default:
				return s, fmt.Errorf("%w: %s", decider.ErrUnknownEvent, e.Type)
			}
			s.N += by
			s.Hist = append(s.Hist, by)
			if len(s.Hist) > 100 {
				s.Hist = s.Hist[1:]
			}
			s.Version = e.Version
			return s, nil
		},
	})
}

// rtShop is an order-like kind with three background steps: notify (a
// command to tally:main), cook (a wait) and receipt (an email, only with
// an address).
type rtShop struct {
	Stream   string            `json:"stream"`
	Version  uint64            `json:"version"`
	Email    string            `json:"email"`
	Placed   bool              `json:"placed"`
	Steps    map[string]string `json:"steps"`
	Attempts map[string]int    `json:"attempts"`
	Errors   map[string]string `json:"errors"`
}

var rtShopSteps = []string{"notify", "cook", "receipt"}

type rtStepData struct {
	Step     string `json:"step"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

func rtShopKind() decider.Kind {
	return decider.New(decider.Decider[rtShop]{
		Name:    "shop",
		Initial: func(stream string) rtShop { return rtShop{Stream: stream} },
		Decide: func(s rtShop, c decider.Command) ([]events.Event, error) {
			if c.Type != "Place" {
				return nil, fmt.Errorf("%w: %s", decider.ErrUnknownCommand, c.Type)
			}
			if s.Placed {
				return nil, fmt.Errorf("%w: already placed", decider.ErrConflict)
			}
			return []events.Event{{Type: "Placed", Data: c.Data}}, nil
		},
		Evolve: func(s rtShop, e events.Event) (rtShop, error) {
			switch e.Type {
			case "Placed":
				var in struct{ Email string }
				if err := json.Unmarshal(e.Data, &in); err != nil {
					return s, err
				}
				s.Placed, s.Email = true, in.Email
				s.Steps = map[string]string{"notify": "pending", "cook": "pending", "receipt": "pending"}
				if in.Email == "" {
					s.Steps["receipt"] = "skipped"
				}
				s.Attempts, s.Errors = map[string]int{}, map[string]string{}
			case "StepDone", "StepFailed":
				var in rtStepData
				if err := json.Unmarshal(e.Data, &in); err != nil {
					return s, err
				}
				s.Steps[in.Step] = map[string]string{"StepDone": "done", "StepFailed": "failed"}[e.Type]
				s.Attempts[in.Step] = in.Attempts
				if in.Error != "" {
					s.Errors[in.Step] = in.Error
				}
			default:
				return s, fmt.Errorf("%w: %s", decider.ErrUnknownEvent, e.Type)
			}
			s.Version = e.Version
			return s, nil
		},
		Steps: func(s rtShop) []decider.Step {
			var out []decider.Step
			for _, name := range rtShopSteps {
				if s.Steps[name] != "pending" {
					continue
				}
				st := decider.Step{Name: name, Key: s.Stream + "/" + name}
				switch name {
				case "notify":
					st.Action, st.Target, st.Command = decider.StepCommand, "tally:main", "Record"
					st.Data, _ = json.Marshal(map[string]string{"order": s.Stream})
				case "cook":
					st.Action = decider.StepWait
				case "receipt":
					st.Action = decider.StepEmail
					st.Email = &decider.Email{To: s.Email, Subject: "Your receipt", Body: "Thanks for " + s.Stream + ".\nBye."}
				}
				out = append(out, st)
			}
			return out
		},
		Complete: func(s rtShop, res decider.StepResult) ([]events.Event, error) {
			typ := "StepDone"
			if res.Err != "" {
				typ = "StepFailed"
			}
			data, err := json.Marshal(rtStepData{Step: res.Step, Attempts: res.Attempts, Error: res.Err})
			if err != nil {
				return nil, err
			}
			return []events.Event{{Type: typ, Data: data}}, nil
		},
	})
}

// rtTally records the orders notified to it, one Recorded per command:
// it deliberately does not deduplicate, so a repeated notification would
// show. Record is internal: only shop's notify step sends it.
type rtTally struct {
	Stream  string   `json:"stream"`
	Version uint64   `json:"version"`
	Orders  []string `json:"orders"`
}

func rtTallyKind() decider.Kind {
	return decider.New(decider.Decider[rtTally]{
		Name:     "tally",
		Internal: []string{"Record"},
		Initial:  func(stream string) rtTally { return rtTally{Stream: stream} },
		Decide: func(s rtTally, c decider.Command) ([]events.Event, error) {
			if c.Type != "Record" {
				return nil, fmt.Errorf("%w: %s", decider.ErrUnknownCommand, c.Type)
			}
			return []events.Event{{Type: "Recorded", Data: c.Data}}, nil
		},
		Evolve: func(s rtTally, e events.Event) (rtTally, error) {
			var in struct{ Order string }
			if err := json.Unmarshal(e.Data, &in); err != nil {
				return s, err
			}
			s.Orders = append(s.Orders, in.Order)
			s.Version = e.Version
			return s, nil
		},
	})
}

// rtRoom is a kind with presence.
type rtRoom struct {
	Stream  string   `json:"stream"`
	Version uint64   `json:"version"`
	Members []string `json:"members"`
	Posts   int      `json:"posts"`
}

func rtRoomKind() decider.Kind {
	return decider.New(decider.Decider[rtRoom]{
		Name:    "room",
		Initial: func(stream string) rtRoom { return rtRoom{Stream: stream, Members: []string{}} },
		Decide: func(s rtRoom, c decider.Command) ([]events.Event, error) {
			return []events.Event{{Type: "Posted", Data: c.Data}}, nil
		},
		Evolve: func(s rtRoom, e events.Event) (rtRoom, error) {
			s.Posts++
			s.Version = e.Version
			return s, nil
		},
		WithMembers: func(s rtRoom, members []string) rtRoom {
			s.Members = members
			return s
		},
	})
}

func rtKinds() []decider.Kind {
	return []decider.Kind{rtCounterKind(), rtShopKind(), rtTallyKind(), rtRoomKind()}
}

// rtLogger logs warnings and errors to stderr when RT_LOG is set.
func rtLogger() *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("RT_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func rtMemStore(t testing.TB) events.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func rtOpenPebble(t testing.TB, dir string) *pebblestore.Store {
	s, err := pebblestore.Open(dir, pebblestore.Config{Logger: rtLogger()})
	if err != nil {
		t.Fatalf("open pebble store in %s: %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rtConfig is the tests' default configuration: fast steps, no
// passivation unless a test asks for it.
func rtConfig(store events.Store) Config {
	return Config{
		Store:       store,
		Kinds:       rtKinds(),
		Logger:      rtLogger(),
		IdleTimeout: time.Hour,
		StepBackoff: time.Millisecond,
		Executors:   map[string]Executor{decider.StepWait: cookFor(5 * time.Millisecond)},
	}
}

// cookFor is a wait executor that waits d whatever the step says, so that
// a test sets how long the test kinds' wait steps take.
func cookFor(d time.Duration) Executor {
	return func(ctx context.Context, _ decider.Step) error {
		return Wait(ctx, decider.Step{Wait: d})
	}
}

func setCook(cfg *Config, d time.Duration) { cfg.Executors[decider.StepWait] = cookFor(d) }

func setMailer(cfg *Config, m mail.Sender) { cfg.Executors[decider.StepEmail] = mail.Executor(m) }

// rtStart creates and starts a Runtime and stops it at cleanup.
func rtStart(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rtStop(t, r) })
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r
}

func rtStop(t testing.TB, r *Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func rtCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rtExec(t testing.TB, r *Runtime, stream, typ, data string) Result {
	t.Helper()
	res, err := r.Execute(rtCtx(t), decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(data)}, events.AnyVersion)
	if err != nil {
		t.Fatalf("%s %s: %v", stream, typ, err)
	}
	return res
}

// rtWaitFor polls cond until it holds or 10 s pass.
func rtWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rtState decodes a stream's state into v.
func rtState[S any](t testing.TB, r *Runtime, stream string) S {
	t.Helper()
	view, err := r.State(rtCtx(t), stream, decider.Caller{})
	if err != nil {
		t.Fatalf("State %s: %v", stream, err)
	}
	var s S
	if err := json.Unmarshal(view.JSON, &s); err != nil {
		t.Fatalf("decode state of %s: %v", stream, err)
	}
	return s
}

// rtSink is a Sink recording what it receives; with limit > 0 it refuses
// deliveries beyond limit. It does not pace catch-up.
type rtSink struct {
	mu        sync.Mutex
	got       []Delivery
	limit     int
	overflows int
}

func (s *rtSink) Enqueue(d Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 && len(s.got) >= s.limit {
		return false
	}
	s.got = append(s.got, d)
	return true
}

// WaitRoom never waits: a full rtSink refuses in Enqueue.
func (s *rtSink) WaitRoom(ctx context.Context) error { return ctx.Err() }

func (s *rtSink) Overflow() {
	s.mu.Lock()
	s.overflows++
	s.mu.Unlock()
}

func (s *rtSink) versions() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []uint64
	for _, d := range s.got {
		if d.Event != nil {
			vs = append(vs, d.Event.Version)
		}
	}
	return vs
}

func (s *rtSink) presence() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps [][]string
	for _, d := range s.got {
		if d.Presence {
			ps = append(ps, slices.Clone(d.Members))
		}
	}
	return ps
}

func (s *rtSink) lastPresence() []string {
	ps := s.presence()
	if len(ps) == 0 {
		return nil
	}
	return ps[len(ps)-1]
}

func (s *rtSink) overflowCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overflows
}

// rtObserver counts what the runtime reports.
type rtObserver struct {
	activated, passivated atomic.Int64
	mu                    sync.Mutex
	results               map[string]int
	steps                 map[string]int // step/outcome
}

func (o *rtObserver) CommandDone(kind, result string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.results == nil {
		o.results = map[string]int{}
	}
	o.results[result]++
}
func (o *rtObserver) ActorActivated(string)  { o.activated.Add(1) }
func (o *rtObserver) ActorPassivated(string) { o.passivated.Add(1) }

func (o *rtObserver) StepAttempt(kind, step, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.steps == nil {
		o.steps = make(map[string]int)
	}
	o.steps[step+"/"+outcome]++
}

func (o *rtObserver) stepCount(step, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.steps[step+"/"+outcome]
}

func (o *rtObserver) result(r string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.results[r]
}

// rtGoroutinesBack waits for the goroutine count to return to base and
// fails with a dump of the goroutines if it does not.
func rtGoroutinesBack(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var b bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rtActive reports whether the stream has a serving activation.
func (r *Runtime) rtActive(stream string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[stream] != nil
}
