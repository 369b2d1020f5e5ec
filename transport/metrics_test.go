package transport_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/transport"
)

func TestMetricsStepAttempts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := transport.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.StepAttempt("user", "welcome", actors.StepRetry)
	m.StepAttempt("user", "welcome", actors.StepRetry)
	m.StepAttempt("user", "welcome", actors.StepOK)
	m.StepAttempt("order", "receipt", actors.StepFailed)

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "engine_step_attempts_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["kind"]+"/"+labels["step"]+"/"+labels["outcome"]] = mt.GetCounter().GetValue()
		}
	}
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"user/welcome/retry", 2},
		{"user/welcome/ok", 1},
		{"order/receipt/failed", 1},
		{"order/receipt/ok", 0},
	} {
		t.Run(tc.series, func(t *testing.T) {
			if got[tc.series] != tc.want {
				t.Fatalf("engine_step_attempts_total %s = %v, want %v (all: %v)", tc.series, got[tc.series], tc.want, got)
			}
		})
	}
}
