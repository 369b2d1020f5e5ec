//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The engine is killed with SIGKILL while the welcome step waits in its
// back-off after a recorded failed attempt; a new process on the same data
// resumes the step, continues the attempt count and delivers once.
func TestIntegrationSigkillMidRetryResumes(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	srv := startSMTP(t, refuseAll)
	p := startProcess(t, bin, dir, "-smtp-url", srv.url(), "-step-backoff", "1h", "-step-max-time", "3h")

	code, body := p.post(t, "/signup", `{"email":"gus@example.com","name":"Gus"}`)
	if code != 202 {
		t.Fatalf("signup: %d %s", code, body)
	}
	var su struct{ User string }
	if err := json.Unmarshal(body, &su); err != nil {
		t.Fatal(err)
	}
	type view struct {
		WelcomeEmail string `json:"welcome_email"`
		Attempts     map[string]struct {
			Count     int    `json:"count"`
			LastError string `json:"last_error"`
		} `json:"attempts"`
	}
	poll := func(p *process, what string, ok func(view) bool) view {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body := p.get(t, "/streams/"+su.User)
			var v view
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("state %s: %v", body, err)
			}
			if ok(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %s", what, body)
			}
			time.Sleep(20 * time.Millisecond) // polling a deadline, not waiting for luck
		}
	}
	poll(p, "the first failed attempt recorded", func(v view) bool { return v.Attempts["welcome"].Count >= 1 })

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	srv.setRefuse(nil) // the mail server recovers

	q := startProcess(t, bin, dir, "-smtp-url", srv.url())
	v := poll(q, "the welcome email delivered", func(v view) bool { return v.WelcomeEmail == "done" })
	if got := srv.to("gus@example.com"); len(got) != 1 {
		t.Fatalf("%d messages delivered, want exactly 1", len(got))
	}
	if a := v.Attempts["welcome"]; a.Count != 1 || !strings.Contains(a.LastError, "451") {
		t.Fatalf("attempts after the restart: %+v, want the one recorded before the kill", v.Attempts)
	}
	if n := srv.dataAttempts(); n != 2 {
		t.Fatalf("%d DATA attempts, want 2 (one refused before the kill, one after)", n)
	}
	// The attempt after the restart was number 2: the log line says so.
	// The line is written before the outcome is recorded, but the reader
	// of the process's stderr may lag: wait for it with a deadline.
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-q.lines:
			if strings.Contains(l, `msg="step attempt"`) && strings.Contains(l, "attempt=2 outcome=ok") {
				return
			}
		case <-timeout:
			t.Fatal(`the new process logged no "step attempt" with attempt=2 outcome=ok`)
		}
	}
}
