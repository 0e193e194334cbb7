package kiosk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

const testToken = "lecturer-token-for-tests-0123456789"

// clock is a settable clock for join-token rotation.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testKiosk struct {
	t     testing.TB
	srv   *Server
	http  *httptest.Server
	store *tally.Store
	clock *clock
	path  string
}

// newTestKiosk serves a kiosk on loopback with a real SQLite file, with a
// round that has a purpose, so that phones may answer.
func newTestKiosk(t testing.TB) *testKiosk {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	k := startKiosk(t, path)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for enrolled students"}`)
	return k
}

func startKiosk(t testing.TB, path string) *testKiosk {
	t.Helper()
	return startKioskBehind(t, path, nil)
}

// startKioskBehind serves a kiosk whose handler is wrapped by wrap (nil:
// none), as a proxy on the way would.
func startKioskBehind(t testing.TB, path string, wrap func(http.Handler) http.Handler) *testKiosk {
	t.Helper()
	return startKioskClocked(t, path, wrap, false)
}

// startKioskClocked is startKioskBehind whose store, too, runs on the
// test's clock when storeClock is set.
func startKioskClocked(t testing.TB, path string, wrap func(http.Handler) http.Handler, storeClock bool) *testKiosk {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	// A failed commit is retried at once, so that no test waits out the
	// real interval.
	opts := tally.Options{FaultRetry: 50 * time.Millisecond}
	if storeClock {
		opts.Now = clk.Now
	}
	store, err := tally.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	k := &testKiosk{t: t, store: store, clock: clk, path: path}
	ts := httptest.NewUnstartedServer(nil)
	k.srv = New(Config{Store: store, AdminToken: testToken, PublicURL: "http://" + ts.Listener.Addr().String(), Now: clk.Now})
	ts.Config.Handler = k.srv.Handler()
	if wrap != nil {
		ts.Config.Handler = wrap(ts.Config.Handler)
	}
	ts.Start()
	k.http = ts
	t.Cleanup(k.stop)
	return k
}

func (k *testKiosk) stop() {
	k.http.CloseClientConnections()
	k.http.Close()
	k.srv.Close()
	k.store.Close()
}

// do sends a request; token "" sends none.
func (k *testKiosk) do(method, path, token string, body string) (int, map[string]any) {
	k.t.Helper()
	req, err := http.NewRequest(method, k.http.URL+path, strings.NewReader(body))
	if err != nil {
		k.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (k *testKiosk) lecturer(method, path, body string) map[string]any {
	k.t.Helper()
	status, m := k.do(method, path, testToken, body)
	if status != http.StatusOK {
		k.t.Fatalf("%s %s = %d %v; want 200", method, path, status, m)
	}
	return m
}

func (k *testKiosk) setHeadcount(n int) {
	k.t.Helper()
	k.lecturer("POST", "/api/headcount", fmt.Sprintf(`{"headcount":%d}`, n))
}

// unlock asks the recorder endpoint, as curl -f would.
func (k *testKiosk) unlock() (int, string) {
	k.t.Helper()
	status, m := k.do("GET", "/api/unlock", "", "")
	reason, _ := m["reason"].(string)
	if unlocked, _ := m["unlocked"].(bool); unlocked != (status == http.StatusOK) {
		k.t.Fatalf("unlock status %d with body %v: status and body disagree", status, m)
	}
	return status, reason
}

// wantUnlock checks the recorder endpoint. Every slip is acknowledged only
// after commit, and the state is published before the ack, so no waiting is
// needed.
func (k *testKiosk) wantUnlock(step string, status int, reason string) {
	k.t.Helper()
	gotStatus, gotReason := k.unlock()
	if gotStatus != status || gotReason != reason {
		k.t.Errorf("%s: /api/unlock = %d %q; want %d %q", step, gotStatus, gotReason, status, reason)
	}
}

func (k *testKiosk) joinToken() string {
	k.t.Helper()
	m := k.lecturer("GET", "/api/join", "")
	u, _ := m["url"].(string)
	i := strings.LastIndex(u, "/j/")
	if i < 0 {
		k.t.Fatalf("join url %q has no /j/", u)
	}
	return u[i+3:]
}

type testPhone struct {
	t      testing.TB
	conn   *websocket.Conn
	device string
}

func (k *testKiosk) dial(origin string) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(k.http.URL, "http") + "/ws"
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return websocket.DefaultDialer.Dial(u, h)
}

// newPhone connects a phone with its own device secret and says hello with
// the given join token. It fails the test unless the hello is acked.
func (k *testKiosk) newPhone(name, join string) *testPhone {
	k.t.Helper()
	p := k.connectPhone(name)
	p.hello(join)
	if ack := p.expect("ack"); ack["choice"] != "none" {
		k.t.Fatalf("%s: hello ack %v; want choice none", name, ack)
	}
	return p
}

func (k *testKiosk) connectPhone(name string) *testPhone {
	k.t.Helper()
	conn, _, err := k.dial(k.http.URL)
	if err != nil {
		k.t.Fatalf("%s: dial: %v", name, err)
	}
	k.t.Cleanup(func() { conn.Close() })
	device := fmt.Sprintf("%-32s", "device-"+name)
	device = strings.ReplaceAll(device, " ", "x")
	return &testPhone{t: k.t, conn: conn, device: device}
}

func (p *testPhone) send(v any) {
	p.t.Helper()
	if err := p.conn.WriteJSON(v); err != nil {
		p.t.Fatal(err)
	}
}

func (p *testPhone) hello(join string) {
	p.send(map[string]string{"type": "hello", "join": join, "device": p.device})
}

// expect reads messages until one of type typ arrives, skipping tallies and
// rounds, and fails on an unexpected error message.
func (p *testPhone) expect(typ string) map[string]any {
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

func (p *testPhone) slip(choice string) {
	p.t.Helper()
	p.send(map[string]string{"type": "slip", "choice": choice})
	if ack := p.expect("ack"); ack["choice"] != choice {
		p.t.Fatalf("ack %v; want choice %q", ack, choice)
	}
}

func (p *testPhone) leave() {
	p.t.Helper()
	p.send(map[string]string{"type": "leave"})
	if ack := p.expect("ack"); ack["choice"] != "none" {
		p.t.Fatalf("leave ack %v; want choice none", ack)
	}
}

// TestLecture plays a whole lecture through the real server and websockets.
func TestLecture(t *testing.T) {
	k := newTestKiosk(t)
	k.wantUnlock("fresh kiosk", 423, "no-headcount")
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for enrolled students","notice":"Voice and slides."}`)
	k.setHeadcount(3)
	k.wantUnlock("headcount set", 423, "waiting")

	join := k.joinToken()
	a, b, c := k.newPhone("a", join), k.newPhone("b", join), k.newPhone("c", join)

	b.slip("refuse")
	k.wantUnlock("an early refusal", 423, "waiting") // R7: not "refused" yet
	a.slip("consent")
	k.wantUnlock("two of three in", 423, "waiting")
	c.slip("consent")
	k.wantUnlock("all in, one refusal", 423, "refused")
	b.slip("consent")
	k.wantUnlock("all consent", 200, "")

	a.slip("refuse") // withdrawal
	k.wantUnlock("after a withdrawal", 423, "refused")
	a.slip("consent")
	k.wantUnlock("consent again", 200, "")

	d := k.newPhone("d", join)
	d.slip("consent")
	k.wantUnlock("a fourth phone", 423, "overcount")
	d.leave()
	k.wantUnlock("the fourth phone left", 200, "")

	k.setHeadcount(4) // a late arrival is counted in
	k.wantUnlock("late arrival", 423, "waiting")
	e := k.newPhone("e", join)
	e.slip("consent")
	k.wantUnlock("late arrival consents", 200, "")

	k.lecturer("POST", "/api/round", `{"purpose":"A different purpose"}`)
	k.wantUnlock("new round", 423, "waiting")
	if st := k.lecturer("GET", "/api/state", ""); st["received"] != 0.0 || st["headcount"] != 4.0 || st["issued"] != 4.0 {
		t.Errorf("state after new round = %v; want 0 received of 4, 4 phones", st)
	}
	// Phones are told the round changed and what it is for.
	if r := a.expect("round"); r["purpose"] != "A different purpose" {
		t.Errorf("round message %v; want the new purpose", r)
	}
}

// TestStateNeverShowsTheSplit checks every lecturer and recorder answer for
// a field that could tell consents from refusals (R6, R7).
func TestStateNeverShowsTheSplit(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	b.slip("refuse")
	_, state := k.do("GET", "/api/state", testToken, "")
	_, unlock := k.do("GET", "/api/unlock", "", "")
	for name, m := range map[string]map[string]any{"state": state, "unlock": unlock} {
		for key := range m {
			if strings.Contains(key, "consent") || strings.Contains(key, "refus") {
				t.Errorf("/api/%s has field %q", name, key)
			}
		}
	}
	if state["reason"] != "refused" {
		t.Errorf("state reason = %v; want refused (the outcome, once all are in)", state["reason"])
	}
}

func TestLecturerEndpointsNeedToken(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	before := k.store.State()
	tests := []struct{ method, path, body string }{
		{"GET", "/api/state", ""},
		{"POST", "/api/headcount", `{"headcount":5}`},
		{"POST", "/api/round", `{"purpose":"x"}`},
		{"POST", "/api/close", `{}`},
		{"POST", "/api/paper", `{"consents":1,"refusals":0}`},
		{"GET", "/api/record", ""},
		{"GET", "/api/series", ""},
		{"POST", "/api/series/end", `{"series":"x"}`},
		{"GET", "/api/templates", ""},
		{"GET", "/api/join", ""},
		{"GET", "/api/runtime", ""},
		{"GET", "/qr.png", ""},
		{"GET", "/lecturer?token=wrong", ""},
		{"GET", "/lecturer?login=wrong", ""},
		{"GET", "/lecturer?token=" + testToken, ""},
		{"GET", "/api/login-link", ""},
		{"POST", "/api/logout", ""},
		{"POST", "/api/logout/others", ""},
	}
	for _, tt := range tests {
		for _, token := range []string{"", "wrong-token", testToken + "x", testToken[:len(testToken)-1]} {
			if status, _ := k.do(tt.method, tt.path, token, tt.body); status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q = %d; want 401", tt.method, tt.path, token, status)
			}
		}
	}
	if after := k.store.State(); after != before {
		t.Errorf("state changed by unauthorized requests: %+v -> %+v", before, after)
	}
}

func TestLecturerCookie(t *testing.T) {
	k := newTestKiosk(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(k.loginLink())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == lecturerCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no %s cookie set", lecturerCookie)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie HttpOnly=%v SameSite=%v; want HttpOnly, Strict", cookie.HttpOnly, cookie.SameSite)
	}
	if strings.Contains(cookie.Value, testToken) {
		t.Error("the cookie holds the token itself")
	}
	req, _ := http.NewRequest("GET", k.http.URL+"/api/state", nil)
	req.AddCookie(cookie)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /api/state with cookie = %v %v; want 200", resp.StatusCode, err)
	}
	// A page elsewhere cannot use the lecturer's cookie to change anything.
	req, _ = http.NewRequest("POST", k.http.URL+"/api/headcount", strings.NewReader(`{"headcount":3}`))
	req.AddCookie(cookie)
	req.Header.Set("Origin", "http://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || k.store.State().Headcount != 0 {
		t.Errorf("cross-site POST = %d, headcount %d; want 403 and no change", resp.StatusCode, k.store.State().Headcount)
	}
}

func TestForeignOriginWebsocketRefused(t *testing.T) {
	k := newTestKiosk(t)
	_, resp, err := k.dial("http://evil.example")
	if err == nil {
		t.Fatal("websocket from a foreign origin was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin handshake status = %v; want 403", resp)
	}
}

func TestBadLecturerBodiesChangeNothing(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(7)
	before := k.store.State()
	tests := []struct {
		path, body string
		status     int
	}{
		{"/api/headcount", `{"headcount":0}`, 400},
		{"/api/headcount", `{"headcount":-3}`, 400},
		{"/api/headcount", `{"headcount":100001}`, 400},
		{"/api/headcount", `{"headcount":2.5}`, 400},
		{"/api/headcount", `{"headcount":"3"}`, 400},
		{"/api/headcount", `{"headcount":null}`, 400},
		{"/api/headcount", `{}`, 400},
		{"/api/headcount", ``, 400},
		{"/api/headcount", `{"headcount":3,"extra":1}`, 400},
		{"/api/headcount", `{"headcount":3}{"headcount":4}`, 400},
		{"/api/headcount", `[3]`, 400},
		{"/api/headcount", `{"headcount":1e400}`, 400},
		{"/api/headcount", `{"headcount":3` + strings.Repeat(" ", 65<<10) + `}`, 413},
		{"/api/round", `{"notice":"no purpose"}`, 400},
		{"/api/round", `{"purpose":"   "}`, 400},
		{"/api/round", `{"purpose":"` + strings.Repeat("x", 501) + `"}`, 400},
		{"/api/round", `{"purpose":"ok","color":"red"}`, 400},
		{"/api/round", `{"purpose":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
	}
	for _, tt := range tests {
		status, m := k.do("POST", tt.path, testToken, tt.body)
		if status != tt.status {
			t.Errorf("POST %s %.60q = %d %v; want %d", tt.path, tt.body, status, m, tt.status)
		}
		if msg, _ := m["message"].(string); msg == "" {
			t.Errorf("POST %s %.60q: no error message", tt.path, tt.body)
		}
	}
	if after := k.store.State(); after != before {
		t.Errorf("state changed by bad bodies: %+v -> %+v", before, after)
	}
}

func TestLongPollHearsWithdrawal(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	_, first := k.do("GET", "/api/unlock", "", "")
	if first["unlocked"] != true {
		t.Fatalf("want unlocked first: %v", first)
	}
	seen := fmt.Sprint(uint64(first["version"].(float64)))

	type answer struct {
		status int
		body   map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(k.http.URL + "/api/unlock?wait=30&seen=" + seen)
		if err != nil {
			got <- answer{}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		got <- answer{resp.StatusCode, m}
	}()
	// The long-poll must be waiting: it has not answered yet.
	select {
	case a := <-got:
		t.Fatalf("long-poll answered before any change: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
	p.slip("refuse")
	select {
	case a := <-got:
		if a.status != http.StatusLocked || a.body["unlocked"] != false {
			t.Errorf("long-poll after withdrawal = %d %v; want 423 locked", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not answer after a withdrawal")
	}
}

func TestLongPollAnswersAfterWait(t *testing.T) {
	k := newTestKiosk(t)
	_, first := k.do("GET", "/api/unlock", "", "")
	seen := fmt.Sprint(uint64(first["version"].(float64)))
	status, m := k.do("GET", "/api/unlock?wait=0.05&seen="+seen, "", "")
	if status != http.StatusLocked || fmt.Sprint(uint64(m["version"].(float64))) != seen {
		t.Errorf("long-poll without change = %d %v; want 423 with the same version", status, m)
	}
	for _, q := range []string{"wait=abc&seen=1", "wait=-1&seen=1", "wait=5&seen=x", "seen=-2"} {
		if status, _ := k.do("GET", "/api/unlock?"+q, "", ""); status != http.StatusBadRequest {
			t.Errorf("GET /api/unlock?%s = %d; want 400", q, status)
		}
	}
}

func TestJoinTokenRotation(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	old := k.joinToken()
	a := k.newPhone("a", old)
	a.slip("consent")

	k.clock.Advance(2 * joinValidFor)
	// A photo of the old QR code no longer lets a new phone in.
	late := k.connectPhone("late")
	late.hello(old)
	if m := late.expectError(); m["code"] != "join-expired" {
		t.Errorf("hello with an expired token: %v; want join-expired", m)
	}
	forged := k.connectPhone("forged")
	forged.hello("AAAAAAAAAAAAAAAAAAAAAA")
	if m := forged.expectError(); m["code"] != "join-invalid" {
		t.Errorf("hello with a forged token: %v; want join-invalid", m)
	}
	if st := k.store.State(); st.Issued != 1 {
		t.Errorf("issued = %d; want 1 (refused phones must not count)", st.Issued)
	}

	// The phone that joined earlier reconnects with its stale token and
	// still holds and can change its slip.
	a.conn.Close()
	again := k.connectPhone("a")
	again.hello(old)
	if ack := again.expect("ack"); ack["choice"] != "consent" {
		t.Errorf("reconnect ack = %v; want the held consent", ack)
	}
	again.slip("refuse")
	if st := k.store.State(); st.Received != 1 {
		t.Errorf("received = %d after a change; want 1", st.Received)
	}
}

func (p *testPhone) expectError() map[string]any {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := p.conn.ReadJSON(&m); err != nil {
			p.t.Fatalf("waiting for an error: %v", err)
		}
		if m["type"] == "error" {
			return m
		}
	}
}

func TestBadPhoneMessagesChangeNothing(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.connectPhone("a")
	p.send(map[string]string{"type": "slip", "choice": "consent"})
	if m := p.expectError(); m["code"] != "hello-first" {
		t.Errorf("slip before hello: %v; want hello-first", m)
	}
	p.hello(k.joinToken())
	p.expect("ack")
	before := k.store.State()
	for _, raw := range []string{
		`{"type":"slip","choice":"maybe"}`,
		`{"type":"slip"}`,
		`{"type":"vote","choice":"consent"}`,
		`{"type":"slip","choice":"consent","admin":true}`,
		`{"type":"slip","choice":"consent"} {"type":"slip","choice":"consent"}`,
		`not json`,
	} {
		p.conn.WriteMessage(websocket.TextMessage, []byte(raw))
		if m := p.expectError(); m["code"] != "invalid" {
			t.Errorf("%s: %v; want code invalid", raw, m)
		}
	}
	if after := k.store.State(); after != before {
		t.Errorf("bad messages changed the state: %+v -> %+v", before, after)
	}
}

func TestAckFramesHaveEqualLength(t *testing.T) {
	var lengths []int
	for _, c := range []tally.Choice{tally.ChoiceConsent, tally.ChoiceRefuse, tally.ChoiceNone} {
		frame := ackFrame(tally.Slip{Choice: c, Round: 12})
		var m map[string]any
		if err := json.Unmarshal(frame, &m); err != nil || m["choice"] != c.String() {
			t.Errorf("ackFrame(%v) = %s: not the JSON it should be (%v)", c, frame, err)
		}
		lengths = append(lengths, len(frame))
	}
	if lengths[0] != lengths[1] || lengths[1] != lengths[2] {
		t.Errorf("ack frame lengths %v; want all equal", lengths)
	}
}

// TestRestartKeepsPhonesNotChoices: a restart keeps which phones hold a
// slip, so they rejoin without a fresh token, but not what the slips say:
// the kiosk is locked, restarted, until the phone sends its slip again.
func TestRestartKeepsPhonesNotChoices(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	join := k.joinToken()
	p := k.newPhone("a", join)
	p.slip("consent")
	k.wantUnlock("before restart", 200, "")
	k.stop()

	k2 := startKiosk(t, k.path)
	k2.wantUnlock("after restart", 423, "restarted")
	k2.clock.Advance(10 * time.Minute) // the token has long expired
	again := k2.connectPhone("a")
	again.hello(join)
	if ack := again.expect("ack"); ack["choice"] != "none" {
		t.Errorf("after restart the phone's slip is %v; want none: the kiosk keeps no choice", ack)
	}
	again.slip("consent")
	k2.wantUnlock("the phone sent its slip again", 200, "")
	again.slip("refuse")
	k2.wantUnlock("withdrawal after restart", 423, "refused")
}

func TestSecurityHeaders(t *testing.T) {
	k := newTestKiosk(t)
	for _, path := range []string{"/", "/j/abc", "/api/unlock", "/static/kiosk.css"} {
		resp, err := http.Get(k.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, h := range []string{"Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("GET %s has no %s header", path, h)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s CSP = %q", path, csp)
		}
	}
}

func TestQRCodeIsPNG(t *testing.T) {
	k := newTestKiosk(t)
	req, _ := http.NewRequest("GET", k.http.URL+"/qr.png", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("GET /qr.png = %d, %d bytes starting %q; want a PNG", resp.StatusCode, len(b), b[:min(8, len(b))])
	}
}

func TestPhonesHearTally(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	b.slip("consent")
	// Phone a eventually hears that both slips are in and it is unlocked.
	a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := a.conn.ReadJSON(&m); err != nil {
			t.Fatalf("no unlocked tally: %v", err)
		}
		if m["type"] == "tally" && m["unlocked"] == true {
			if m["received"] != 2.0 || m["headcount"] != 2.0 {
				t.Errorf("tally %v; want 2 of 2", m)
			}
			return
		}
	}
}

// BenchmarkLockFanOut measures how long it takes from a change of lock
// state until every phone in the hall has heard it: the commit, the hub, and
// one write per phone over real loopback websockets. The lecturer's headcount
// flips the state, since a phone may not send that fast.
func BenchmarkLockFanOut(b *testing.B) {
	for _, listeners := range []int{100, 500} {
		b.Run(fmt.Sprintf("phones=%d", listeners), func(b *testing.B) {
			k := newTestKiosk(b)
			k.setHeadcount(1)
			join := k.joinToken()
			k.newPhone("driver", join).slip("consent")
			heard := make(chan bool, listeners*4)
			for i := range listeners {
				p := k.newPhone(fmt.Sprintf("listener-%d", i), join)
				go func() {
					for {
						var m map[string]any
						p.conn.SetReadDeadline(time.Now().Add(time.Minute))
						if err := p.conn.ReadJSON(&m); err != nil {
							return
						}
						if m["type"] == "tally" {
							heard <- m["unlocked"] == true
						}
					}
				}()
			}
			unlocked := true
			b.ResetTimer()
			for b.Loop() {
				unlocked = !unlocked
				if unlocked {
					k.setHeadcount(1)
				} else {
					k.setHeadcount(2)
				}
				for n := 0; n < listeners; {
					if <-heard == unlocked {
						n++
					}
				}
			}
		})
	}
}

// TestJoinRateLetsAFullHallIn: the limit on new phones exists to stop
// floods, and must never hold back a full hall scanning at once. The hall
// here is the largest the kiosk is for, joining with no refill of the
// limiter at all, so only its burst lets them in.
func TestJoinRateLetsAFullHallIn(t *testing.T) {
	const hall = 1000
	k := newTestKiosk(t)
	k.setHeadcount(hall)
	k.srv.newPhones.SetLimit(0) // no refill: the test must not race the clock
	join := k.joinToken()
	for i := range hall {
		k.newPhone(fmt.Sprint("hall-", i), join)
	}
}
