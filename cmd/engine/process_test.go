//go:build integration || soak

package main

// The engine as a separate process, for the integration tests and the soak
// test: build the binary, start it on a free port, talk HTTP to it.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var listenLine = regexp.MustCompile(`msg="engine listening" addr=(\S+)`)

// buildBinary compiles the engine into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "engine")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

type process struct {
	cmd     *exec.Cmd
	base    string
	exited  chan struct{} // closed when the process has been waited for
	exitErr error         // its exit status, set before exited closes
	lines   chan string
}

// startProcess runs the binary on 127.0.0.1:0 with data in dir and waits for
// its start-up line, which names the address.
func startProcess(t *testing.T, bin, dir string, extra ...string) *process {
	t.Helper()
	return startProcessLog(t, nil, bin, dir, extra...)
}

// startProcessLog is startProcess that also copies every line of the
// engine's log to logw, when it is not nil.
func startProcessLog(t *testing.T, logw io.Writer, bin, dir string, extra ...string) *process {
	t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-data", dir, "-cook-time", "300ms", "-step-backoff", "10ms"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), lines: make(chan string, 1024)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if logw != nil {
				fmt.Fprintln(logw, line)
			}
			if m := listenLine.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
			select {
			case p.lines <- line:
			default:
			}
		}
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.exited:
		t.Fatalf("engine exited before listening: %v", p.exitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("engine did not print its start-up line within 30 s")
	}
	return p
}

func (p *process) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(p.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *process) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// logTail logs the last lines of the engine's log file after a failure.
func logTail(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	t.Logf("the engine's log, last %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
}
