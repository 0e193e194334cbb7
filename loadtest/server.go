package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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

const (
	// healthWait bounds a server's start-up: the kiosk opens SQLite and
	// listens, which takes well under a second even on a busy laptop.
	healthWait = 20 * time.Second
	// stopWait is how long a server gets to shut down on SIGTERM before it
	// is killed.
	stopWait = 5 * time.Second
)

// server is a kiosk or floor process the harness started.
type server struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	t       target
}

// moduleRoot returns the directory of the go.mod the harness runs in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; run from the kiosk's repository")
	}
	return filepath.Dir(gomod), nil
}

// buildKiosk builds the kiosk binary into dir and returns its path.
func buildKiosk(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kiosk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build the kiosk: %w\n%s", err, strings.TrimSpace(out.String()))
	}
	return bin, nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; the server then fails to start and
// the harness says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// randomToken returns 32 random URL-safe characters.
func randomToken() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// startServer starts bin with args followed by the kiosk's contract flags
// (-addr, -data, -admin-token, -public-url) on a free loopback port, and
// waits until GET /healthz answers 200. Its output goes to dir/name.log.
func startServer(ctx context.Context, name, dir, bin string, args ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	t := target{name: name, base: "http://" + addr, token: randomToken()}
	args = append(args,
		"-addr", addr,
		"-data", filepath.Join(dir, name+".db"),
		"-admin-token", t.token,
		"-public-url", t.base,
	)
	return startProcess(ctx, t, dir, bin, args...)
}

// startRelay starts bin as a relay on a free loopback port; t.token is
// the relay's token.
func startRelay(ctx context.Context, dir, bin string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	t := target{name: "relay", base: "http://" + addr, token: randomToken()}
	return startProcess(ctx, t, dir, bin, "relay", "-addr", addr, "-token", t.token)
}

// startProcess runs bin with args as the server t, and waits until GET
// /healthz answers 200. Its output goes to dir/NAME.log.
func startProcess(ctx context.Context, t target, dir, bin string, args ...string) (*server, error) {
	name := t.name
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t.pid = cmd.Process.Pid
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{}), t: t}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitHealthy(ctx); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not start: %w\n%s", name, err, s.logTail())
	}
	return s, nil
}

func (s *server) waitHealthy(ctx context.Context) error {
	c := newClient()
	deadline := time.NewTimer(healthWait)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.t.base+"/healthz", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return fmt.Errorf("exited: %v", s.cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("no 200 from /healthz within %v", healthWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop asks the server to shut down and kills it if it has not within
// stopWait. It returns once the process is gone.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// logTail returns the end of the server's output, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}
