package kiosk

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// loginLink is what the terminal prints for a browser.
func (k *testKiosk) loginLink() string {
	k.t.Helper()
	u, _ := k.srv.LoginLink()
	return u
}

// open follows a login link as a browser would and returns the status and
// the session cookie it set, if any.
func (k *testKiosk) open(link string) (int, *http.Cookie) {
	k.t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		k.t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == lecturerCookie && c.Value != "" {
			return resp.StatusCode, c
		}
	}
	return resp.StatusCode, nil
}

// signIn opens a fresh login link and returns the session cookie.
func (k *testKiosk) signIn() *http.Cookie {
	k.t.Helper()
	status, c := k.open(k.loginLink())
	if status != http.StatusOK || c == nil {
		k.t.Fatalf("opening a fresh login link = %d, cookie %v; want 200 and a cookie", status, c)
	}
	return c
}

// asBrowser sends a request from the kiosk's own page with cookie c.
func (k *testKiosk) asBrowser(method, path string, c *http.Cookie, body string) (int, map[string]any) {
	k.t.Helper()
	req, err := http.NewRequest(method, k.http.URL+path, strings.NewReader(body))
	if err != nil {
		k.t.Fatal(err)
	}
	if c != nil {
		req.AddCookie(c)
	}
	if method != "GET" {
		req.Header.Set("Origin", k.http.URL)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// wantSignedIn checks whether c still opens /api/state.
func (k *testKiosk) wantSignedIn(step string, c *http.Cookie, want bool) {
	k.t.Helper()
	status, _ := k.asBrowser("GET", "/api/state", c, "")
	if got := status == http.StatusOK; got != want {
		k.t.Errorf("%s: GET /api/state with the cookie = %d; want signed in %v", step, status, want)
	}
}

// TestLoginLinkWorksOnce: a login link seen on the projector after the
// lecturer used it signs nobody in.
func TestLoginLinkWorksOnce(t *testing.T) {
	k := newTestKiosk(t)
	link := k.loginLink()
	// A link preview that only looks does not spend the link.
	if resp, err := http.Head(link); err != nil || resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 0 {
		t.Fatalf("HEAD of the login link = %v, %v; want 200 and no cookie", resp, err)
	}
	if status, c := k.open(link); status != http.StatusOK || c == nil {
		t.Fatalf("first use of the login link = %d, cookie %v; want 200 and a cookie", status, c)
	}
	if status, c := k.open(link); status != http.StatusUnauthorized || c != nil {
		t.Errorf("second use of the login link = %d, cookie %v; want 401 and no cookie", status, c)
	}
}

// TestLoginLinkExpires: a link nobody used stops working after
// loginLinkLife.
func TestLoginLinkExpires(t *testing.T) {
	k := newTestKiosk(t)
	early, late := k.loginLink(), k.loginLink()
	k.clock.Advance(loginLinkLife - time.Second)
	if status, c := k.open(early); status != http.StatusOK || c == nil {
		t.Errorf("a login link just before it expires = %d, cookie %v; want 200 and a cookie", status, c)
	}
	k.clock.Advance(time.Second)
	if status, c := k.open(late); status != http.StatusUnauthorized || c != nil {
		t.Errorf("an expired login link = %d, cookie %v; want 401 and no cookie", status, c)
	}
}

// TestLoginsGetDifferentCookies: each sign-in gets a random cookie of its
// own, at least 128 bits, marked HttpOnly and SameSite=Strict and expiring.
func TestLoginsGetDifferentCookies(t *testing.T) {
	k := newTestKiosk(t)
	a, b := k.signIn(), k.signIn()
	if a.Value == b.Value {
		t.Errorf("two sign-ins got the same cookie %q", a.Value)
	}
	for _, c := range []*http.Cookie{a, b} {
		if len(c.Value) < 22 { // 128 bits in base64
			t.Errorf("cookie %q is shorter than 128 bits", c.Value)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q; want HttpOnly, Strict, /", c.HttpOnly, c.SameSite, c.Path)
		}
		if c.MaxAge != int(sessionLife/time.Second) {
			t.Errorf("cookie Max-Age = %d; want %d", c.MaxAge, int(sessionLife/time.Second))
		}
		if strings.Contains(c.Value, testToken) {
			t.Error("the cookie holds the token")
		}
	}
	k.wantSignedIn("first browser", a, true)
	k.wantSignedIn("second browser", b, true)
	if _, m := k.asBrowser("GET", "/api/state", a, ""); m["lecturer_devices"] != float64(2) {
		t.Errorf("lecturer_devices = %v; want 2", m["lecturer_devices"])
	}
}

// TestLogoutEndsSession: a cookie copied before the lecturer signed out
// does not work after.
func TestLogoutEndsSession(t *testing.T) {
	k := newTestKiosk(t)
	a, b := k.signIn(), k.signIn()
	if status, m := k.asBrowser("POST", "/api/logout", a, ""); status != http.StatusOK || m["lecturer_devices"] != float64(1) {
		t.Errorf("POST /api/logout = %d %v; want 200 and one device left", status, m)
	}
	k.wantSignedIn("after logout", a, false)
	k.wantSignedIn("the other browser after logout", b, true)
	// Without a session there is nothing to end.
	if status, _ := k.do("POST", "/api/logout", testToken, ""); status != http.StatusBadRequest {
		t.Errorf("POST /api/logout with the bearer token = %d; want 400", status)
	}
}

// TestSignOutOthers: the lecturer who sees a second device signed in ends
// it, and any login link it may have seen, without ending their own.
func TestSignOutOthers(t *testing.T) {
	k := newTestKiosk(t)
	mine, theirs, also := k.signIn(), k.signIn(), k.signIn()
	unused := k.loginLink()
	if status, m := k.asBrowser("POST", "/api/logout/others", mine, ""); status != http.StatusOK || m["lecturer_devices"] != float64(1) {
		t.Errorf("POST /api/logout/others = %d %v; want 200 and one device left", status, m)
	}
	k.wantSignedIn("the browser that signed the others out", mine, true)
	k.wantSignedIn("another browser", theirs, false)
	k.wantSignedIn("a third browser", also, false)
	if status, c := k.open(unused); status != http.StatusUnauthorized || c != nil {
		t.Errorf("a login link made before signing the others out = %d, cookie %v; want 401", status, c)
	}
	// The bearer token signs every browser out.
	k.lecturer("POST", "/api/logout/others", "")
	k.wantSignedIn("after the bearer token signed everyone out", mine, false)
}

// TestSessionExpires: a cookie stops working sessionLife after sign-in.
func TestSessionExpires(t *testing.T) {
	k := newTestKiosk(t)
	c := k.signIn()
	k.clock.Advance(sessionLife - time.Second)
	k.wantSignedIn("just before expiry", c, true)
	k.clock.Advance(time.Second)
	k.wantSignedIn("at expiry", c, false)
	if m := k.lecturer("GET", "/api/state", ""); m["lecturer_devices"] != float64(0) {
		t.Errorf("lecturer_devices after expiry = %v; want 0", m["lecturer_devices"])
	}
}

// TestCloseEndsSessions: closing the lecture's session signs every
// lecturer browser out, including the one that closed it.
func TestCloseEndsSessions(t *testing.T) {
	k := newTestKiosk(t)
	a, b := k.signIn(), k.signIn()
	if status, m := k.asBrowser("POST", "/api/close", a, "{}"); status != http.StatusOK || m["lecturer_devices"] != float64(0) {
		t.Errorf("POST /api/close = %d %v; want 200 and no devices", status, m)
	}
	k.wantSignedIn("the browser that closed", a, false)
	k.wantSignedIn("another browser", b, false)
	// The pages are told why, so that they show the closed session rather
	// than "no connection"; an unknown cookie on an open session is not.
	if _, m := k.asBrowser("GET", "/api/state", a, ""); m["error"] != "signed-out-at-close" {
		t.Errorf("GET /api/state after close = %v; want error signed-out-at-close", m)
	}
	k.lecturer("POST", "/api/round", `{"purpose":"Next lecture"}`)
	if _, m := k.asBrowser("GET", "/api/state", a, ""); m["error"] != "unauthorized" {
		t.Errorf("GET /api/state with an ended cookie in a new session = %v; want error unauthorized", m)
	}
	k.stop()
	k2 := startKiosk(t, k.path)
	k2.wantSignedIn("after close and restart", a, false)
}

// TestSessionSurvivesRestart: the laptop's console stays signed in when the
// kiosk restarts on the same database; the login link does not.
func TestSessionSurvivesRestart(t *testing.T) {
	k := newTestKiosk(t)
	c := k.signIn()
	unused := k.loginLink()
	k.stop()
	k2 := startKiosk(t, k.path)
	k2.wantSignedIn("after restart", c, true)
	if status, m := k2.asBrowser("GET", "/api/state", c, ""); status != 200 || m["lecturer_devices"] != float64(1) {
		t.Errorf("lecturer_devices after restart = %v; want 1", m["lecturer_devices"])
	}
	if status, _ := k2.open(strings.Replace(unused, k.http.URL, k2.http.URL, 1)); status != http.StatusUnauthorized {
		t.Errorf("a login link from before the restart = %d; want 401", status)
	}
	// The file holds a hash of the cookie, never the cookie.
	if fileHoldsString(t, k.path, c.Value) {
		t.Error("the database holds the session cookie in clear")
	}
}

// TestCookieNotFromToken: a cookie computed from the token, as the kiosk
// once set, signs nobody in, and the token in a URL sets no cookie.
func TestCookieNotFromToken(t *testing.T) {
	k := newTestKiosk(t)
	m := hmac.New(sha256.New, []byte(testToken))
	m.Write([]byte("lecturer-cookie"))
	old := &http.Cookie{Name: lecturerCookie, Value: hex.EncodeToString(m.Sum(nil))}
	k.wantSignedIn("the cookie derived from the token", old, false)
	if status, c := k.open(k.http.URL + "/lecturer?token=" + testToken); status != http.StatusUnauthorized || c != nil {
		t.Errorf("GET /lecturer?token=TOKEN = %d, cookie %v; want 401 and no cookie", status, c)
	}
}

// TestLoginLinkForScripts: the bearer token gets a fresh link; a signed-in
// browser cannot mint one (a signed-out session must leave no way back).
func TestLoginLinkForScripts(t *testing.T) {
	k := newTestKiosk(t)
	m := k.lecturer("GET", "/api/login-link", "")
	link, _ := m["url"].(string)
	if !strings.HasPrefix(link, k.http.URL+"/lecturer?login=") || m["expires_at"] == nil {
		t.Fatalf("GET /api/login-link = %v; want a login URL and its expiry", m)
	}
	if status, c := k.open(link); status != 200 || c == nil {
		t.Fatalf("the scripted login link = %d, %v; want 200 and a cookie", status, c)
	}
	c := k.signIn()
	if status, _ := k.asBrowser("GET", "/api/login-link", c, ""); status != http.StatusUnauthorized {
		t.Errorf("GET /api/login-link with a session cookie = %d; want 401", status)
	}
	if status, _ := k.do("GET", "/api/login-link", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /api/login-link without a token = %d; want 401", status)
	}
}

// TestLecturerDevicesWakesState: the console's long-poll answers when a
// device signs in, so the count it shows is current.
func TestLecturerDevicesWakesState(t *testing.T) {
	k := newTestKiosk(t)
	c := k.signIn()
	_, m := k.asBrowser("GET", "/api/state", c, "")
	done := make(chan map[string]any, 1)
	go func() {
		_, m2 := k.asBrowser("GET", "/api/state?wait=30&seen="+jsonNumber(m["version"]), c, "")
		done <- m2
	}()
	// The poll may park after a sign-in, so sign in again until it
	// answers: it must do so long before its 30 seconds.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for signedIn := 1; ; {
		select {
		case m2 := <-done:
			if n, _ := m2["lecturer_devices"].(float64); n < 2 || int(n) > signedIn {
				t.Errorf("lecturer_devices from the woken poll = %v; want 2 to %d", m2["lecturer_devices"], signedIn)
			}
			return
		case <-tick.C:
			k.signIn()
			signedIn++
		case <-deadline:
			t.Fatal("the long-poll did not answer within 10s of sign-ins")
		}
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// fileHoldsString reports whether the database or its WAL holds s, or the
// bytes s encodes in base64.
func fileHoldsString(t *testing.T, path, s string) bool {
	t.Helper()
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) || (len(raw) > 0 && bytes.Contains(b, raw)) {
			return true
		}
	}
	return false
}

// TestSessionAndLinkBounds: a script with the token cannot grow the
// kiosk's memory with links or sessions; the bounds are reported, and
// signing the others out makes room again.
func TestSessionAndLinkBounds(t *testing.T) {
	k := newTestKiosk(t)
	first := k.loginLink()
	for range maxLoginLinks {
		k.loginLink()
	}
	if status, _ := k.open(first); status != http.StatusUnauthorized {
		t.Errorf("the oldest of %d links = %d; want 401 (retired)", maxLoginLinks+1, status)
	}
	var mine *http.Cookie
	for range maxLecturerSessions {
		mine = k.signIn()
	}
	if status, c := k.open(k.loginLink()); status != http.StatusBadRequest || c != nil {
		t.Errorf("sign-in number %d = %d, cookie %v; want 400 and no cookie", maxLecturerSessions+1, status, c)
	}
	k.asBrowser("POST", "/api/logout/others", mine, "")
	k.signIn()
}
