//go:build integration

package main

// Integration tests drive the engine as a separate process built from this
// package: a SIGKILL right after acknowledged commands loses none of them,
// background steps resume in the next process, and SIGTERM drains, closes
// WebSockets with 1001 and exits 0. They run in CI through
// `go test -tags integration -run Integration ./...`.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestIntegrationSigkillLosesNothingAcknowledged(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startProcess(t, bin, dir)

	const n = 200
	for i := 1; i <= n; i++ {
		code, body := p.post(t, "/streams/room:kill/commands", fmt.Sprintf(`{"type":"PostMessage","data":{"user":"ann","text":"m%d"}}`, i))
		if code != 200 {
			t.Fatalf("command %d: %d %s", i, code, body)
		}
	}
	// An order whose background steps are still owed when the process dies.
	code, body := p.post(t, "/orders", `{"items":[{"name":"soup","qty":1}],"email":"kim@example.com"}`)
	if code != 202 {
		t.Fatalf("order: %d %s", code, body)
	}
	var placed struct{ Order string }
	if err := json.Unmarshal(body, &placed); err != nil {
		t.Fatal(err)
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	q := startProcess(t, bin, dir)
	code, body = q.get(t, "/streams/room:kill/events?from=0&limit=1000")
	if code != 200 {
		t.Fatalf("events: %d %s", code, body)
	}
	var page struct {
		Events []struct {
			Version uint64
			Data    struct{ Text string }
		}
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != n {
		t.Fatalf("after SIGKILL %d of %d acknowledged messages are stored", len(page.Events), n)
	}
	for i, e := range page.Events {
		if e.Version != uint64(i+1) || e.Data.Text != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("event %d: version %d text %q", i, e.Version, e.Data.Text)
		}
	}

	// The new process resumes the order's steps: it becomes ready and its
	// receipt lands in the outbox exactly once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body = q.get(t, "/streams/"+placed.Order)
		var st struct {
			Status string
			Steps  map[string]string
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if st.Status == "ready" && st.Steps["receipt"] == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order not finished after restart: %s", body)
		}
		time.Sleep(20 * time.Millisecond) // polling a deadline, not waiting for luck
	}
	files, err := filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("outbox holds %d files, want the one receipt: %v", len(files), files)
	}
}

func TestIntegrationSigtermDrainsAndExitsZero(t *testing.T) {
	bin := buildBinary(t)
	p := startProcess(t, bin, t.TempDir())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(p.base, "http") + "/ws"
	conn, _, err := websocket.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","ref":"p"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || !strings.Contains(string(msg), `"pong"`) {
		t.Fatalf("ping: %s %v", msg, err)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = conn.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("after SIGTERM the WebSocket closed with %v (%v), want 1001", got, err)
	}
	select {
	case <-p.exited:
		if p.exitErr != nil {
			t.Fatalf("engine exited with %v after SIGTERM, want status 0", p.exitErr)
		}
	case <-ctx.Done():
		t.Fatal("engine did not exit after SIGTERM")
	}
	var sawStopped bool
	for len(p.lines) > 0 {
		if strings.Contains(<-p.lines, `msg="engine stopped"`) {
			sawStopped = true
		}
	}
	if !sawStopped {
		t.Error(`the log has no "engine stopped" line`)
	}
}
