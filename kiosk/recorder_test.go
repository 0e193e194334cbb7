package kiosk

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/andreykaipov/goobs/api/closecodes"
	"github.com/consent-kiosk/kiosk/obs"
	"github.com/gorilla/websocket"
)

// TestStateShowsOBSProblem runs a real OBS guard against a server that
// speaks the websocket but refuses the guard's password, as OBS does: the
// lecturer's state must name that problem. The guard starts out saying it
// cannot reach OBS, so the test waits for the password problem, which only
// the guard's verdict on this server can give.
func TestStateShowsOBSProblem(t *testing.T) {
	k := newTestKiosk(t)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{Subprotocols: []string{"obswebsocket.json"}}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(closecodes.AuthenticationFailed, "Authentication failed."), time.Now().Add(time.Second))
	}))
	t.Cleanup(refuse.Close)
	guard, err := obs.NewGuard(obs.Config{URL: "ws" + strings.TrimPrefix(refuse.URL, "http"), Password: "wrong"}, k.store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	k.srv.recorder = guard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { guard.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	var o map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		status, st := k.do("GET", "/api/state", testToken, "")
		if status != http.StatusOK {
			t.Fatalf("GET /api/state = %d", status)
		}
		o, _ = st["obs"].(map[string]any)
		if o != nil && o["problem"] == obs.ProblemPassword {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("obs status %v; want not connected, %q", o, obs.ProblemPassword)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o["connected"] != false {
		t.Errorf("obs status %v; want not connected", o)
	}
	// Without a guard the field is absent.
	k.srv.recorder = nil
	if _, st := k.do("GET", "/api/state", testToken, ""); st["obs"] != nil {
		t.Errorf("state without a guard has obs %v", st["obs"])
	}
}
