package obs

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name, raw    string
		scheme, host string // empty host: an error is expected
	}{
		{"default", "", "ws", "127.0.0.1:4455"},
		{"full", "ws://127.0.0.1:4455", "ws", "127.0.0.1:4455"},
		{"trailing slash", "ws://localhost:4455/", "ws", "localhost:4455"},
		{"no port", "ws://localhost", "ws", "localhost:4455"},
		{"no scheme", "localhost:4444", "ws", "localhost:4444"},
		{"wss", "wss://obs.lan:443", "wss", "obs.lan:443"},
		{"ipv6", "ws://[::1]", "ws", "[::1]:4455"},
		{"http", "http://localhost:4455", "", ""},
		{"password in url", "ws://:secret@localhost:4455", "", ""},
		{"path", "ws://localhost:4455/obs", "", ""},
		{"query", "ws://localhost:4455?x=1", "", ""},
		{"no host", "ws://:4455", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, host, err := parseURL(tt.raw)
			if tt.host == "" {
				if err == nil {
					t.Fatalf("parseURL(%q) = %q, %q, nil; want an error", tt.raw, scheme, host)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("parseURL(%q) error %q shows the password", tt.raw, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL(%q) error: %v", tt.raw, err)
			}
			if scheme != tt.scheme || host != tt.host {
				t.Errorf("parseURL(%q) = %q, %q; want %q, %q", tt.raw, scheme, host, tt.scheme, tt.host)
			}
		})
	}
}

// TestGuardWithoutOBS checks that a guard whose OBS hangs up on it keeps
// trying and says so, from before it runs until it stops.
func TestGuardWithoutOBS(t *testing.T) {
	// A peer that accepts and at once hangs up, as a port does while OBS
	// is starting or shutting down; it counts the guard's attempts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	attempts := make(chan struct{}, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			attempts <- struct{}{}
		}
	}()

	store := openStore(t)
	g, err := NewGuard(Config{URL: "ws://" + l.Addr().String(), Autostart: true}, store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Problem: ProblemUnreachable}
	if got := g.Status(); got != want {
		t.Errorf("Status() before Run = %+v; want %+v", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := runGuard(t, ctx, g)

	// Unlocking changes nothing while OBS is away.
	unlock(t, store, 1)
	const tries = 3
	timeout := time.After(10 * time.Second)
	for i := range tries {
		select {
		case <-attempts:
		case <-timeout:
			t.Fatalf("guard made %d connection attempts in 10s; want %d", i, tries)
		}
		if got := g.Status(); got != want {
			t.Errorf("Status() after attempt %d = %+v; want %+v", i+1, got, want)
		}
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
	if got := g.Status(); got != want {
		t.Errorf("Status() after Run = %+v; want %+v", got, want)
	}
}

// openStore returns a store on a fresh database that is closed when the
// test ends.
func openStore(t *testing.T) *tally.Store {
	t.Helper()
	s, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"), tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Slips count only in a round whose purpose the room was told.
	if _, err := s.NewRound(context.Background(), tally.RoundSpec{Purpose: "lecture video"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// phones returns n distinct device secrets.
func phones(n int) []string {
	var p []string
	for i := range n {
		p = append(p, strings.Repeat(string(rune('a'+i)), 32))
	}
	return p
}

// unlock sets the headcount to n and has n phones join and consent.
func unlock(t *testing.T, s *tally.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.SetHeadcount(ctx, n); err != nil {
		t.Fatal(err)
	}
	p := phones(n)
	for _, secret := range p {
		if _, err := s.Admit(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cast(ctx, secret, tally.ChoiceConsent, 0); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.State(); !st.Unlocked {
		t.Fatalf("after %d consents of %d: unlocked = false (%s); want true", n, n, st.Reason)
	}
	return p
}

// runGuard runs g until ctx ends, and makes the test wait for it to return.
func runGuard(t *testing.T, ctx context.Context, g *Guard) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

// waitStatus waits until cond holds for the guard's status, checking at
// every change, and fails the test after timeout.
func waitStatus(t *testing.T, g *Guard, what string, timeout time.Duration, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		st, changed := g.Changed()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("after %v: status %+v; want %s", timeout, g.Status(), what)
		}
	}
}

// testLogger logs through t, so that a failing test shows what the guard did.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
