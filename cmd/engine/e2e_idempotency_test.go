package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// The crash-test bug: an order placed with an Idempotency-Key, snapshotted
// past its first event, then the engine restarted. The retry with the same
// key must get the first reply and append nothing, not a 409 because the
// order exists already; the same key with another order is still a 422.
func TestE2EIdempotencyKeyAcrossSnapshotAndRestart(t *testing.T) {
	dir := t.TempDir()
	opts := func(m *Main) {
		m.Config.SnapshotEvery = 2
		m.Config.CookTime = 10 * time.Millisecond
	}
	body := []byte(`{"items":[{"name":"tea","qty":1}]}`)
	key := map[string]string{"Idempotency-Key": "K1"}

	e := startEngine(t, dir, opts)
	first := e.do("POST", "/orders", body, key)
	if first.status != http.StatusAccepted {
		t.Fatalf("POST /orders: %s", first)
	}
	var placed struct{ Order string }
	if err := json.Unmarshal(first.body, &placed); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the order to be ready, its ticket released", func() (bool, error) {
		ticket, err := e.stateField(placed.Order, "ticket")
		return ticket == "released", err
	})
	stored := len(e.allEvents())
	if err := e.close(); err != nil {
		t.Fatal(err)
	}

	e2 := startEngine(t, dir, opts)
	again := e2.do("POST", "/orders", body, key)
	if again.status != first.status || !jsonEqual(t, string(again.body), string(first.body)) {
		t.Fatalf("the retry after the restart: %s; want the first reply %s", again, first)
	}
	other := e2.do("POST", "/orders", []byte(`{"items":[{"name":"tea","qty":2}]}`), key)
	expectProblem(t, other, http.StatusUnprocessableEntity, "idempotency_mismatch")
	if n := len(e2.allEvents()); n != stored {
		t.Fatalf("%d events stored after the retries, want %d", n, stored)
	}
}
