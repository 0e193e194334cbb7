package kiosk

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/consent-kiosk/kiosk/obs"
)

// TestStateShowsOBSProblem runs a real OBS guard against a port where no
// OBS listens: the lecturer's state must say so.
func TestStateShowsOBSProblem(t *testing.T) {
	k := newTestKiosk(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	guard, err := obs.NewGuard(obs.Config{URL: "ws://" + addr}, k.store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	k.srv.recorder = guard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { guard.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

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
