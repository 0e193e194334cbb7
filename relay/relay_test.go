package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/kiosk"
	"github.com/consent-kiosk/kiosk/relay"
	"github.com/consent-kiosk/kiosk/tally"
)

const (
	relayToken = "relay-token-for-tests-0123456789"
	adminToken = "lecturer-token-for-tests-0123456"
)

// syncBuffer is a log destination the test reads while servers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testRelay is a relay served on loopback, as `consent-kiosk relay` serves it.
type testRelay struct {
	rl   *relay.Relay
	srv  *http.Server
	ln   net.Listener
	url  string
	logs *syncBuffer
}

// startRelay serves a relay at addr ("127.0.0.1:0" for any port).
func startRelay(t testing.TB, addr string, cfg relay.Config) *testRelay {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	if cfg.Token == "" {
		cfg.Token = relayToken
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := &testRelay{rl: relay.New(cfg), ln: ln, url: "http://" + ln.Addr().String(), logs: logs}
	r.srv = &http.Server{Handler: r.rl.Handler(), ErrorLog: relay.ErrorLog(), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	t.Cleanup(r.kill)
	return r
}

// kill stops the relay as a crash would: every connection drops at once.
func (r *testRelay) kill() {
	r.srv.Close()
	r.rl.Close()
}

// testKiosk is a kiosk whose phones come through a relay; its lecturer
// API is served directly on loopback.
type testKiosk struct {
	t      testing.TB
	store  *tally.Store
	srv    *kiosk.Server
	link   *relay.Link
	direct *httptest.Server
	stop   context.CancelFunc
	done   chan struct{}
	seen   *syncBuffer // what the kiosk's handler saw of relayed requests
}

func startKiosk(t testing.TB, relayURL, token string) *testKiosk {
	t.Helper()
	store, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "kiosk.db"), tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	link := &relay.Link{URL: relayURL, Token: token, Key: store.DeriveKey("relay-room"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	store.SetUnreachable(context.Background(), true)
	direct := httptest.NewUnstartedServer(nil)
	srv := kiosk.New(kiosk.Config{Store: store, AdminToken: adminToken, PublicURL: "http://" + direct.Listener.Addr().String(), PhoneURL: link.RoomURL()})
	direct.Config.Handler = srv.Handler()
	direct.Start()
	k := &testKiosk{t: t, store: store, srv: srv, link: link, direct: direct, done: make(chan struct{}), seen: &syncBuffer{}}
	relayed := srv.RelayHandler()
	viaRelay := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(k.seen, "%s %s remote=%s ua=%q xff=%q fwd=%q\n", r.Method, r.URL.Path, r.RemoteAddr,
			r.UserAgent(), r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"))
		relayed.ServeHTTP(w, r)
	})}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop = cancel
	go func() {
		defer close(k.done)
		link.Run(ctx, viaRelay.Serve, func(connected bool) {
			srv.SetRelayConnected(connected)
			store.SetUnreachable(context.Background(), !connected)
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-k.done
		viaRelay.Close()
		direct.CloseClientConnections()
		direct.Close()
		srv.Close()
		store.Close()
	})
	return k
}

func (k *testKiosk) do(method, path, body string) (int, map[string]any) {
	k.t.Helper()
	req, _ := http.NewRequest(method, k.direct.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (k *testKiosk) unlock() (int, string) {
	k.t.Helper()
	status, m := k.do("GET", "/api/unlock", "")
	reason, _ := m["reason"].(string)
	return status, reason
}

// waitFor polls cond until it holds or within passes; it returns how long
// that took.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func (k *testKiosk) waitConnected(within time.Duration) {
	k.t.Helper()
	waitFor(k.t, within, "kiosk reaches the relay", func() bool {
		_, m := k.do("GET", "/api/state", "")
		r, _ := m["relay"].(map[string]any)
		return r != nil && r["connected"] == true
	})
}

// joinURL is the join URL the QR code shows.
func (k *testKiosk) joinURL() string {
	k.t.Helper()
	_, m := k.do("GET", "/api/join", "")
	u, _ := m["url"].(string)
	return u
}

type phone struct {
	t      testing.TB
	conn   *websocket.Conn
	device string
}

// dialPhone opens a phone's websocket where its page would: <prefix>/ws
// for a join URL <prefix>/j/<token>, with the page's origin.
func dialPhone(t testing.TB, joinURL string, ua string) (*websocket.Conn, error) {
	t.Helper()
	prefix := joinURL[:strings.LastIndex(joinURL, "/j/")]
	h := http.Header{}
	origin := prefix[:strings.Index(prefix, "/r/")]
	h.Set("Origin", origin)
	if ua != "" {
		h.Set("User-Agent", ua)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(prefix, "http")+"/ws", h)
	return conn, err
}

func newPhone(t testing.TB, joinURL, device string) *phone {
	t.Helper()
	conn, err := dialPhone(t, joinURL, "TestPhone/1.0 (secret-agent)")
	if err != nil {
		t.Fatalf("phone dials through the relay: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &phone{t: t, conn: conn, device: device}
	p.send(map[string]string{"type": "hello", "join": joinURL[strings.LastIndex(joinURL, "/j/")+3:], "device": device})
	if ack := p.expect("ack"); ack["choice"] != "none" {
		t.Fatalf("hello ack %v; want none", ack)
	}
	return p
}

func (p *phone) send(v any) {
	p.t.Helper()
	if err := p.conn.WriteJSON(v); err != nil {
		p.t.Fatal(err)
	}
}

func (p *phone) expect(typ string) map[string]any {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := p.conn.ReadJSON(&m); err != nil {
			p.t.Fatalf("waiting for %q: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
		if m["type"] == "error" {
			p.t.Fatalf("waiting for %q, got error %v", typ, m)
		}
	}
}

func (p *phone) slip(choice string) {
	p.t.Helper()
	p.send(map[string]string{"type": "slip", "choice": choice})
	if ack := p.expect("ack"); ack["choice"] != choice {
		p.t.Fatalf("ack %v; want %q", ack, choice)
	}
}

func device(name string) string {
	return strings.ReplaceAll(fmt.Sprintf("%-32s", "device-"+name), " ", "x")
}

// TestPhonesThroughRelay plays a small lecture whose phones reach the
// kiosk only through the relay.
func TestPhonesThroughRelay(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})
	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	k.do("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.do("POST", "/api/headcount", `{"headcount":2}`)

	join := k.joinURL()
	if want := r.url + "/r/" + relay.RoomID(k.link.Key) + "/j/"; !strings.HasPrefix(join, want) {
		t.Fatalf("join URL %q; want it on the relay, %q…", join, want)
	}
	// The page and its files load through the relay.
	for _, u := range []string{join, r.url + "/r/" + relay.RoomID(k.link.Key) + "/static/phone.js"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d; want 200", u, resp.StatusCode)
		}
	}

	a, b := newPhone(t, join, device("a")), newPhone(t, join, device("b"))
	a.slip("consent")
	if status, reason := k.unlock(); status != http.StatusLocked || reason != "waiting" {
		t.Errorf("one of two in: /api/unlock = %d %q; want 423 waiting", status, reason)
	}
	b.slip("consent")
	if status, _ := k.unlock(); status != http.StatusOK {
		t.Errorf("all consent: /api/unlock = %d; want 200", status)
	}
	b.slip("none")
	if status, reason := k.unlock(); status != http.StatusLocked || reason != "waiting" {
		t.Errorf("after a withdrawal: /api/unlock = %d %q; want 423 waiting", status, reason)
	}

	// The HTTP fallback goes through the relay too, at <prefix>/api/phone.
	prefix := join[:strings.LastIndex(join, "/j/")]
	req, _ := http.NewRequest("POST", prefix+"/api/phone", strings.NewReader(`{"type":"hello","device":"`+device("b")+`"}`))
	req.Header.Set("Origin", r.url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST %s/api/phone = %d; want 200", prefix, resp.StatusCode)
	}
}

// TestRelayDropLocksWithinTwoSeconds kills the relay: phones can no
// longer withdraw, so the kiosk must lock within 2 s; when the relay is
// back, kiosk and phones find each other again unaided.
func TestRelayDropLocksWithinTwoSeconds(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})
	addr := r.ln.Addr().String()
	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	k.do("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.do("POST", "/api/headcount", `{"headcount":1}`)
	join := k.joinURL()
	p := newPhone(t, join, device("a"))
	p.slip("consent")
	if status, _ := k.unlock(); status != http.StatusOK {
		t.Fatalf("before the drop: /api/unlock = %d; want 200", status)
	}

	r.kill()
	took := waitFor(t, 2*time.Second, "unreachable after the relay dies", func() bool {
		status, reason := k.unlock()
		return status == http.StatusLocked && reason == "unreachable"
	})
	t.Logf("locked %v after the relay died", took)
	if _, m := k.do("GET", "/api/state", ""); m["relay"].(map[string]any)["connected"] != false {
		t.Errorf("state relay = %v; want connected false", m["relay"])
	}

	// The relay comes back on its address; the kiosk redials by itself and
	// the phone's page reconnects, says hello and resends its slip.
	startRelay(t, addr, relay.Config{})
	k.waitConnected(15 * time.Second)
	var conn *websocket.Conn
	waitFor(t, 10*time.Second, "phone reconnects through the relay", func() bool {
		c, err := dialPhone(t, join, "")
		conn = c
		return err == nil
	})
	t.Cleanup(func() { conn.Close() })
	q := &phone{t: t, conn: conn, device: device("a")}
	q.send(map[string]string{"type": "hello", "device": device("a")})
	q.expect("ack")
	q.slip("consent")
	waitFor(t, 2*time.Second, "unlocked again", func() bool {
		status, _ := k.unlock()
		return status == http.StatusOK
	})
}

// TestRelayRefuses: a stranger cannot use the relay as a tunnel, an
// unknown room is a 404, and the lecturer's endpoints are not on it.
func TestRelayRefuses(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})

	wrong := &relay.Link{URL: r.url, Token: "not-the-relay-token-0123456789", Key: bytes.Repeat([]byte{7}, 32)}
	if _, err := wrong.Dial(context.Background()); !errors.Is(err, relay.ErrToken) {
		t.Errorf("wrong token: Dial = %v; want ErrToken", err)
	}
	if n := r.rl.Rooms(); n != 0 {
		t.Errorf("after a wrong token: %d rooms; want 0", n)
	}

	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	room := r.url + "/r/" + relay.RoomID(k.link.Key)
	for _, tc := range []struct {
		method, url, body string
		want              int
	}{
		{"GET", r.url + "/r/AAAAAAAAAAAAAAAAAAAAAA/k", "", http.StatusNotFound},
		{"GET", r.url + "/r/" + relay.RoomID(bytes.Repeat([]byte{1}, 32)) + "/ws", "", http.StatusNotFound},
		{"GET", room + "/api/state", "", http.StatusNotFound},
		{"GET", room + "/api/join", "", http.StatusNotFound},
		{"GET", room + "/lecturer?token=" + adminToken, "", http.StatusNotFound},
		{"POST", room + "/api/headcount", `{"headcount":1}`, http.StatusNotFound},
		{"POST", room + "/api/round", `{"purpose":"x"}`, http.StatusNotFound},
		{"GET", room + "/", "", http.StatusNotFound},
		{"GET", room + "/record", "", http.StatusNotFound},
		{"GET", room + "/qr.png", "", http.StatusNotFound},
		{"GET", room + "/static/../api/state", "", http.StatusNotFound},
		{"POST", room + "/api/phone", strings.Repeat("x", 70<<10), http.StatusRequestEntityTooLarge},
		{"GET", room + "/k", "", http.StatusOK},
		{"GET", room + "/api/unlock", "", http.StatusLocked},
		{"GET", r.url + "/api/state", "", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d; want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
	}

	// Claiming the kiosk's room needs its key, which never leaves the
	// kiosk; its id (on every phone) is not enough.
	req, _ := http.NewRequest("GET", r.url+"/register/"+relay.RoomID(k.link.Key), nil)
	req.Header.Set("Authorization", "Bearer "+relayToken)
	req.Header.Set(relay.HeaderRoomKey, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("claiming a room without its key = %d; want 403", resp.StatusCode)
	}
}

// TestRoomsApart: two kiosks on one relay; neither reaches the other's
// phones, and the phones of one are counted only by it.
func TestRoomsApart(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})
	a, b := startKiosk(t, r.url, relayToken), startKiosk(t, r.url, relayToken)
	a.waitConnected(5 * time.Second)
	b.waitConnected(5 * time.Second)
	if relay.RoomID(a.link.Key) == relay.RoomID(b.link.Key) {
		t.Fatal("two kiosks share a room id")
	}
	for _, k := range []*testKiosk{a, b} {
		k.do("POST", "/api/round", `{"purpose":"Lecture video"}`)
		k.do("POST", "/api/headcount", `{"headcount":1}`)
	}
	// A's join token does not work in B's room, though both are on the
	// same relay.
	joinA := a.joinURL()
	intoB := r.url + "/r/" + relay.RoomID(b.link.Key) + joinA[strings.LastIndex(joinA, "/j/"):]
	conn, err := dialPhone(t, intoB, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]string{"type": "hello", "join": joinA[strings.LastIndex(joinA, "/j/")+3:], "device": device("x")})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "ack" {
			t.Fatalf("A's join token was accepted in B's room: %v", m)
		}
		if m["type"] == "error" {
			break
		}
	}
	p := newPhone(t, joinA, device("a"))
	p.slip("consent")
	if status, _ := a.unlock(); status != http.StatusOK {
		t.Errorf("kiosk A: /api/unlock = %d; want 200", status)
	}
	if _, m := b.do("GET", "/api/state", ""); m["issued"] != 0.0 || m["received"] != 0.0 {
		t.Errorf("kiosk B saw A's phone: state %v", m)
	}
}

// TestRelayKeepsNoClientTrace: the relay logs nothing about who
// connected, and the kiosk behind it does not even learn the phones'
// addresses or user agents.
func TestRelayKeepsNoClientTrace(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})
	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	k.do("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.do("POST", "/api/headcount", `{"headcount":1}`)
	join := k.joinURL()
	req, _ := http.NewRequest("GET", join, nil)
	req.Header.Set("User-Agent", "TestPhone/1.0 (secret-agent)")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	p := newPhone(t, join, device("secret"))
	p.slip("consent")
	p.slip("refuse")
	r.kill()
	waitFor(t, 2*time.Second, "unreachable", func() bool { _, reason := k.unlock(); return reason == "unreachable" })

	logs := r.logs.String()
	if !strings.Contains(logs, "room opened") {
		t.Fatalf("relay log %q has no room line: the test would not see a leak", logs)
	}
	for _, secret := range []string{"127.0.0.1", "[::1]", "secret-agent", "TestPhone", device("secret"), "203.0.113.9", "refuse", "consent"} {
		if strings.Contains(logs, secret) {
			t.Errorf("relay log holds %q:\n%s", secret, logs)
		}
	}
	seen := k.seen.String()
	if !strings.Contains(seen, "/ws") {
		t.Fatalf("the kiosk saw no relayed request: %q", seen)
	}
	for _, secret := range []string{"secret-agent", "203.0.113.9"} {
		if strings.Contains(seen, secret) {
			t.Errorf("the relay passed %q on to the kiosk:\n%s", secret, seen)
		}
	}
}

// TestRelayedRequestMustNameTheRelay: on the relay's streams, the kiosk
// answers only for the relay's name, and only phone paths.
func TestRelayedRequestMustNameTheRelay(t *testing.T) {
	store, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "kiosk.db"), tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := kiosk.New(kiosk.Config{Store: store, AdminToken: adminToken, PublicURL: "http://127.0.0.1:8080", PhoneURL: "https://relay.example.no/r/ROOM"})
	defer srv.Close()
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"relay.example.no", "/k", http.StatusOK},
		{"rebind.attacker.example", "/k", http.StatusMisdirectedRequest},
		{"127.0.0.1:8080", "/k", http.StatusMisdirectedRequest},
		{"relay.example.no", "/api/state", http.StatusNotFound},
		{"relay.example.no", "/", http.StatusNotFound},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Host = tc.host
		req.Header.Set("Authorization", "Bearer "+adminToken)
		w := httptest.NewRecorder()
		srv.RelayHandler().ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("relayed GET %s with Host %s = %d; want %d", tc.path, tc.host, w.Code, tc.want)
		}
	}
}

// TestRoomFlood: a room's requests are rate-limited at the relay.
func TestRoomFlood(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{RoomRate: 1, RoomBurst: 5})
	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	limited := 0
	for range 20 {
		resp, err := http.Get(r.url + "/r/" + relay.RoomID(k.link.Key) + "/k")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 requests refused with a burst of 5; want at least 10", limited)
	}
}

// TestRelayedOriginMustBeTheRelay: a relayed phone request from a page on
// another site is refused, as on the LAN.
func TestRelayedOriginMustBeTheRelay(t *testing.T) {
	r := startRelay(t, "127.0.0.1:0", relay.Config{})
	k := startKiosk(t, r.url, relayToken)
	k.waitConnected(5 * time.Second)
	room := r.url + "/r/" + relay.RoomID(k.link.Key)
	for _, origin := range []string{"https://attacker.example", "http://" + k.direct.Listener.Addr().String()} {
		req, _ := http.NewRequest("POST", room+"/api/phone", strings.NewReader(`{"type":"hello","device":"`+device("o")+`"}`))
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("relayed POST /api/phone with Origin %s = %d; want 403", origin, resp.StatusCode)
		}
		h := http.Header{}
		h.Set("Origin", origin)
		if c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(room, "http")+"/ws", h); err == nil {
			c.Close()
			t.Errorf("relayed websocket with Origin %s was accepted", origin)
		}
	}
}

// TestRoomKeepsItsAddress: the room key comes from the kiosk's database,
// so after a restart the phones' pages find the kiosk at the same address.
func TestRoomKeepsItsAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiosk.db")
	id := func() string {
		store, err := tally.Open(context.Background(), path, tally.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		return relay.RoomID(store.DeriveKey("relay-room"))
	}
	if a, b := id(), id(); a != b {
		t.Errorf("room id %q after a restart; want %q", b, a)
	}
	other, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "other.db"), tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if relay.RoomID(other.DeriveKey("relay-room")) == id() {
		t.Error("two kiosks share a room id")
	}
}
