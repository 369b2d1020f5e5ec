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
	p, err := launchProcess(logw, bin, args, 30*time.Second)
	if p != nil {
		t.Cleanup(p.kill)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launchProcess runs the binary with args and waits up to wait for its
// start-up line, which names the address. The process, when not nil, is
// the caller's to kill, also when err is set (then it is dead already or
// did not listen in time).
func launchProcess(logw io.Writer, bin string, args []string, wait time.Duration) (*process, error) {
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
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
	select {
	case a := <-addr:
		p.base = "http://" + a
		return p, nil
	case <-p.exited:
		return p, fmt.Errorf("engine exited before listening: %v", p.exitErr)
	case <-time.After(wait):
		return p, fmt.Errorf("engine did not print its start-up line within %v", wait)
	}
}

// kill kills the process and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
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
