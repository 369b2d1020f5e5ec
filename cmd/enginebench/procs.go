package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Starting and stopping the servers the suite (and the tests) drive.

// serverProc is a server the suite started.
type serverProc struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startServer starts bin with args, its output to dir/server.log, and
// waits until GET readyURL answers 200.
func startServer(ctx context.Context, bin string, args []string, dir, readyURL string) (*serverProc, error) {
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &serverProc{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			log.Close()
			return nil, fmt.Errorf("exited before it was ready: %v (see %s)", p.err, log.Name())
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		default:
		}
		if resp, err := client.Get(readyURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("not ready at %s after 30 s (see %s)", readyURL, log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, and SIGKILL after 15 s.
func (p *serverProc) stop() error {
	defer p.log.Close()
	select {
	case <-p.done:
		return fmt.Errorf("exited during the run: %v", p.err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("did not stop within 15 s of SIGTERM: killed")
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// findCentrifugo looks for centrifugo on PATH, then where go install
// puts it.
func findCentrifugo() string {
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, l := range lines {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			if i == 0 {
				dirs = append(dirs, l)
			} else {
				for _, gp := range filepath.SplitList(l) {
					dirs = append(dirs, filepath.Join(gp, "bin"))
				}
			}
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "centrifugo")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
