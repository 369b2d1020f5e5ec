package transport

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/b6368a97/engine/actors"
)

// Metrics are the engine's Prometheus collectors. The transport updates the
// connection and frame metrics itself; the command, append and actor
// metrics come from the actor runtime, to which Metrics is passed as
// actors.Config.Observer. Safe for concurrent use.
type Metrics struct {
	connections prometheus.Gauge
	framesIn    prometheus.Counter
	framesOut   prometheus.Counter
	commands    *prometheus.CounterVec
	// commandsBy caches commands' children by commandKey: WithLabelValues
	// hashes and validates its labels on every call.
	commandsBy    sync.Map
	appendSeconds prometheus.Histogram
	slowCloses    prometheus.Counter
	activeActors  *prometheus.GaugeVec
	stepAttempts  *prometheus.CounterVec
}

var _ actors.Observer = (*Metrics)(nil)

// NewMetrics creates the collectors and registers them, with the Go
// runtime and process collectors, on reg. A Go or process collector that
// reg already has is kept.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "engine_ws_frames_total",
		Help: "WebSocket data frames by direction (in: read from clients, out: written to them).",
	}, []string{"direction"})
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "engine_connections",
			Help: "Open WebSocket connections.",
		}),
		framesIn:  frames.WithLabelValues("in"),
		framesOut: frames.WithLabelValues("out"),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_commands_total",
			Help: "Commands handled by the actor runtime, by stream kind and result.",
		}, []string{"kind", "result"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "engine_append_seconds",
			Help:    "Time to make a command's events durable in the store.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "engine_slow_consumer_closes_total",
			Help: "WebSocket connections closed with 1008 because their send queue overflowed.",
		}),
		activeActors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "engine_active_actors",
			Help: "Stream actors currently active, by kind.",
		}, []string{"kind"}),
		stepAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_step_attempts_total",
			Help: "Attempts of background steps, by stream kind, step and outcome (ok; retry: failed, tried again; failed: failed for good).",
		}, []string{"kind", "step", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.connections, frames, m.commands, m.appendSeconds, m.slowCloses, m.activeActors, m.stepAttempts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("transport: register metrics: %w", err)
		}
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, fmt.Errorf("transport: register runtime metrics: %w", err)
		}
	}
	return m, nil
}

type commandKey struct{ kind, result string }

// CommandDone implements actors.Observer.
func (m *Metrics) CommandDone(kind, result string, appendDur time.Duration) {
	k := commandKey{kind, result}
	c, ok := m.commandsBy.Load(k)
	if !ok {
		c, _ = m.commandsBy.LoadOrStore(k, m.commands.WithLabelValues(kind, result))
	}
	c.(prometheus.Counter).Inc()
	if appendDur > 0 {
		m.appendSeconds.Observe(appendDur.Seconds())
	}
}

// ActorActivated implements actors.Observer.
func (m *Metrics) ActorActivated(kind string) { m.activeActors.WithLabelValues(kind).Inc() }

// ActorPassivated implements actors.Observer.
func (m *Metrics) ActorPassivated(kind string) { m.activeActors.WithLabelValues(kind).Dec() }

// StepAttempt implements actors.Observer.
func (m *Metrics) StepAttempt(kind, step, outcome string) {
	m.stepAttempts.WithLabelValues(kind, step, outcome).Inc()
}
