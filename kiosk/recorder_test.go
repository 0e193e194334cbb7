package kiosk

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/obs"
)

// TestStateShowsOBSProblem runs a real OBS guard against a port where
// something that is not OBS answers: once the guard has tried it, the
// lecturer's state must say OBS cannot be reached.
func TestStateShowsOBSProblem(t *testing.T) {
	k := newTestKiosk(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	dialed := make(chan struct{})
	go func() {
		// Hang up on every caller; the first call tells the test the guard
		// has really tried, so the status below is its verdict and not
		// what it starts with.
		var once sync.Once
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			once.Do(func() { close(dialed) })
		}
	}()
	guard, err := obs.NewGuard(obs.Config{URL: "ws://" + ln.Addr().String()}, k.store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	k.srv.recorder = guard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { guard.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-dialed:
	case <-time.After(10 * time.Second):
		t.Fatal("the guard never tried to reach OBS")
	}

	status, st := k.do("GET", "/api/state", testToken, "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/state = %d", status)
	}
	o, ok := st["obs"].(map[string]any)
	if !ok {
		t.Fatalf("state %v has no obs status", st)
	}
	if o["problem"] != obs.ProblemUnreachable || o["connected"] != false {
		t.Errorf("obs status %v; want not connected, %q", o, obs.ProblemUnreachable)
	}
	// Without a guard the field is absent.
	k.srv.recorder = nil
	if _, st := k.do("GET", "/api/state", testToken, ""); st["obs"] != nil {
		t.Errorf("state without a guard has obs %v", st["obs"])
	}
}
