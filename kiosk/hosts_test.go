package kiosk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// TestDNSRebindingRefused plays a page on attacker.example whose name the
// attacker has made resolve to the kiosk: the browser sends the page's own
// name as Host, and its Origin matches it, so the Origin check alone lets
// it through. Every path must refuse it, the phone ones included.
func TestDNSRebindingRefused(t *testing.T) {
	k := newTestKiosk(t)
	port := k.http.Listener.Addr().String()[strings.LastIndex(k.http.Listener.Addr().String(), ":"):]
	evil := "rebind.attacker.example" + port
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/j/" + k.joinToken(), ""},
		{"GET", "/k", ""},
		{"GET", "/api/unlock", ""},
		{"GET", "/static/phone.js", ""},
		{"POST", "/api/phone", `{"type":"hello","device":"` + strings.Repeat("a", 32) + `"}`},
		{"GET", "/api/state", ""},
	} {
		req, _ := http.NewRequest(tc.method, k.http.URL+tc.path, strings.NewReader(tc.body))
		req.Host = evil
		req.Header.Set("Origin", "http://"+evil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s %s with Host %s = %d; want %d", tc.method, tc.path, evil, resp.StatusCode, http.StatusMisdirectedRequest)
		}
	}

	// The websocket: the handshake is refused before any frame.
	h := http.Header{}
	h.Set("Host", evil)
	h.Set("Origin", "http://"+evil)
	d := websocket.Dialer{}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(k.http.URL, "http")+"/ws", h)
	if err == nil {
		conn.Close()
		t.Fatalf("websocket with Host %s was accepted", evil)
	}
	if resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("websocket with Host %s: %v; want %d", evil, err, http.StatusMisdirectedRequest)
	}

	// Its own names still work.
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "[::1]" + port} {
		req, _ := http.NewRequest("GET", k.http.URL+"/api/unlock", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusMisdirectedRequest {
			t.Errorf("GET /api/unlock with Host %s = %d; want an answer", host, resp.StatusCode)
		}
	}
}

// TestNoPhonesJoinedHint: two minutes into a round without a phone, the
// kiosk says why that may be; a phone joining ends the hint.
func TestNoPhonesJoinedHint(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	store, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "kiosk.db"), tally.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	srv := New(Config{Store: store, AdminToken: testToken, PublicURL: "http://" + ts.Listener.Addr().String(), Now: clk.Now})
	ts.Config.Handler = srv.Handler()
	ts.Start()
	k := &testKiosk{t: t, store: store, clock: clk, srv: srv, http: ts}
	t.Cleanup(k.stop)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for enrolled students"}`)
	k.setHeadcount(3)

	hints := func() []any {
		h, ok := k.lecturer("GET", "/api/state", "")["hints"].([]any)
		if !ok {
			t.Fatalf("state has no hints array")
		}
		return h
	}
	if h := hints(); len(h) != 0 {
		t.Errorf("at the start: hints %v; want none", h)
	}
	clk.Advance(noPhonesAfter - time.Second)
	if h := hints(); len(h) != 0 {
		t.Errorf("just before two minutes: hints %v; want none", h)
	}
	clk.Advance(time.Second)
	if h := hints(); len(h) != 1 || h[0] != HintNoPhonesJoined {
		t.Errorf("two minutes without a phone: hints %v; want [%s]", h, HintNoPhonesJoined)
	}
	k.newPhone("a", k.joinToken())
	if h := hints(); len(h) != 0 {
		t.Errorf("after a phone joined: hints %v; want none", h)
	}
}
