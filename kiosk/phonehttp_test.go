package kiosk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// httpPhone is a phone on the HTTP fallback: every message is a POST to
// /api/phone carrying its device secret.
type httpPhone struct {
	k      *testKiosk
	device string
	join   string
}

func (k *testKiosk) newHTTPPhone(name, join string) *httpPhone {
	k.t.Helper()
	device := strings.ReplaceAll(fmt.Sprintf("%-32s", "http-"+name), " ", "x")
	return &httpPhone{k: k, device: device, join: join}
}

// post sends one message and returns the status and the messages answered.
func (p *httpPhone) post(msg map[string]any, origin string) (int, []map[string]any) {
	p.k.t.Helper()
	msg["device"] = p.device
	b, _ := json.Marshal(msg)
	return p.k.postPhone(string(b), origin)
}

func (k *testKiosk) postPhone(body, origin string) (int, []map[string]any) {
	k.t.Helper()
	req, _ := http.NewRequest("POST", k.http.URL+"/api/phone", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var msgs []map[string]any
	if err := json.Unmarshal(raw, &msgs); err != nil {
		k.t.Fatalf("POST /api/phone %.60s: answer %q is not a list of messages: %v", body, raw, err)
	}
	return resp.StatusCode, msgs
}

// find returns the first message of type typ, or nil.
func find(msgs []map[string]any, typ string) map[string]any {
	for _, m := range msgs {
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func (p *httpPhone) hello() []map[string]any {
	p.k.t.Helper()
	status, msgs := p.post(map[string]any{"type": "hello", "join": p.join}, p.k.http.URL)
	if status != http.StatusOK || find(msgs, "ack") == nil || find(msgs, "round") == nil || find(msgs, "tally") == nil {
		p.k.t.Fatalf("hello over HTTP = %d %v; want 200 with round, ack and tally", status, msgs)
	}
	return msgs
}

func (p *httpPhone) slip(choice string) {
	p.k.t.Helper()
	status, msgs := p.post(map[string]any{"type": "slip", "choice": choice}, p.k.http.URL)
	if ack := find(msgs, "ack"); status != http.StatusOK || ack == nil || ack["choice"] != choice {
		p.k.t.Fatalf("slip %s over HTTP = %d %v; want 200 and an ack of %s", choice, status, msgs, choice)
	}
}

// TestPhoneOverHTTP plays a lecture with phones on both transports: the
// HTTP fallback must mean exactly what the websocket means.
func TestPhoneOverHTTP(t *testing.T) {
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(3)
	join := k.joinToken()
	a, b := k.newHTTPPhone("a", join), k.newHTTPPhone("b", join)
	ws := k.newPhone("c", join)

	msgs := a.hello()
	if r := find(msgs, "round"); r["purpose"] != "Lecture video" {
		t.Errorf("round over HTTP = %v; want the purpose", r)
	}
	if ack := find(msgs, "ack"); ack["choice"] != "none" {
		t.Errorf("first hello ack = %v; want choice none", ack)
	}
	b.hello()
	a.slip("consent")
	ws.slip("consent")
	k.wantUnlock("two of three", 423, "waiting")
	b.slip("consent")
	k.wantUnlock("all three consent", 200, "")

	// A long-polling hello answers when the tally changes.
	tally := find(a.hello(), "tally")
	seen := uint64(tally["version"].(float64))
	got := make(chan []map[string]any, 1)
	go func() {
		msg, _ := json.Marshal(map[string]any{"type": "hello", "device": a.device, "seen": seen})
		req, _ := http.NewRequest("POST", k.http.URL+"/api/phone", strings.NewReader(string(msg)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		var m []map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		got <- m
	}()
	select {
	case m := <-got:
		t.Fatalf("long-poll answered before any change: %v", m)
	case <-time.After(100 * time.Millisecond):
	}
	b.slip("refuse") // a withdrawal
	select {
	case m := <-got:
		tally := find(m, "tally")
		if tally == nil || tally["unlocked"] != false || find(m, "ack")["choice"] != "consent" {
			t.Errorf("long-poll after a withdrawal = %v; want a locked tally and a's own consent", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not answer after a withdrawal")
	}
	k.wantUnlock("after a withdrawal over HTTP", 423, "refused")

	// Leaving over HTTP forgets the phone, as over the websocket.
	status, msgs := b.post(map[string]any{"type": "leave"}, k.http.URL)
	if ack := find(msgs, "ack"); status != 200 || ack["choice"] != "none" {
		t.Errorf("leave over HTTP = %d %v; want an ack of none", status, msgs)
	}
	status, msgs = b.post(map[string]any{"type": "slip", "choice": "consent"}, k.http.URL)
	if e := find(msgs, "error"); status != http.StatusForbidden || e["code"] != "join-required" {
		t.Errorf("slip after leaving = %d %v; want 403 join-required", status, msgs)
	}
}

// TestPhoneOverHTTPAfterRestart: after a restart, long after its join token
// expired, a phone on the fallback is still known, hears that the kiosk
// does not know its slip, and sends it again.
func TestPhoneOverHTTPAfterRestart(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newHTTPPhone("a", k.joinToken())
	p.hello()
	p.slip("consent")
	k.stop()

	k2 := startKiosk(t, k.path)
	k2.clock.Advance(10 * time.Minute)
	p.k = k2
	if ack := find(p.hello(), "ack"); ack["choice"] != "none" {
		t.Errorf("after restart the phone's slip is %v; want none: the kiosk keeps no choice", ack)
	}
	k2.wantUnlock("after restart", 423, "restarted")
	p.slip("consent")
	k2.wantUnlock("after the phone sent its slip again", 200, "")
}

func TestPhoneOverHTTPRefusals(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	join := k.joinToken()
	p := k.newHTTPPhone("a", join)
	p.hello()
	before := k.store.State()

	tests := []struct {
		name   string
		body   string
		origin string
		status int
		code   string
	}{
		{"foreign origin", `{"type":"slip","choice":"consent","device":"` + p.device + `"}`, "http://evil.example", 403, "forbidden"},
		{"no device", `{"type":"slip","choice":"consent"}`, "", 400, "invalid"},
		{"bad choice", `{"type":"slip","choice":"maybe","device":"` + p.device + `"}`, "", 400, "invalid"},
		{"unknown field", `{"type":"slip","choice":"consent","device":"` + p.device + `","x":1}`, "", 400, "invalid"},
		{"seen on a slip", `{"type":"slip","choice":"consent","device":"` + p.device + `","seen":1}`, "", 400, "invalid"},
		{"not JSON", `consent`, "", 400, "invalid"},
		{"too large", `{"type":"hello","device":"` + p.device + `","join":"` + strings.Repeat("j", 5000) + `"}`, "", 413, "too-large"},
		{"new phone, forged token", `{"type":"hello","join":"AAAAAAAAAAAAAAAAAAAAAA","device":"` + strings.Repeat("f", 32) + `"}`, "", 403, "join-invalid"},
		{"new phone, no token", `{"type":"slip","choice":"consent","device":"` + strings.Repeat("g", 32) + `"}`, "", 403, "join-required"},
		{"stale round", `{"type":"slip","choice":"consent","round":99,"device":"` + p.device + `"}`, "", 409, "stale-round"},
	}
	for _, tt := range tests {
		status, msgs := k.postPhone(tt.body, tt.origin)
		e := find(msgs, "error")
		if status != tt.status || e == nil || e["code"] != tt.code {
			t.Errorf("%s: POST /api/phone = %d %v; want %d with error %q", tt.name, status, msgs, tt.status, tt.code)
		}
	}
	if after := k.store.State(); after.Received != before.Received || after.Issued != before.Issued {
		t.Errorf("refused requests changed the tally: %+v -> %+v", before, after)
	}

	// The same rate as a websocket: a burst, then rate-limited.
	limited := false
	for range defaultLimits.msgBurst + 5 {
		status, msgs := p.post(map[string]any{"type": "slip", "choice": "consent"}, "")
		if status == http.StatusTooManyRequests && find(msgs, "error")["code"] == "rate-limited" {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("%d messages at once were all taken; want rate-limited after %d", defaultLimits.msgBurst+5, defaultLimits.msgBurst)
	}
}

// TestTypedCode: the code on the projector leads a phone to the same phone
// page the QR code does.
func TestTypedCode(t *testing.T) {
	k := newTestKiosk(t)
	j := k.lecturer("GET", "/api/join", "")
	code, _ := j["code"].(string)
	if len(code) != codeLen || j["code_url"] != k.http.URL+"/k" {
		t.Fatalf("/api/join = %v; want a %d-character code and code_url %s/k", j, codeLen, k.http.URL)
	}
	token := k.joinToken()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(typed, origin string) (int, string) {
		req, _ := http.NewRequest("POST", k.http.URL+"/k", strings.NewReader(url.Values{"code": {typed}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	tests := []struct {
		name, typed, origin string
		status              int
		location            string
	}{
		{"as shown", code, k.http.URL, 303, "/j/" + token},
		{"lower case, spaced", strings.ToLower(code[:3] + " " + code[3:]), "", 303, "/j/" + token},
		{"wrong", flipCode(code), "", 303, "/k?error=join-invalid"},
		{"empty", "", "", 303, "/k?error=join-invalid"},
		{"from another site", code, "http://evil.example", 403, ""},
	}
	for _, tt := range tests {
		status, loc := post(tt.typed, tt.origin)
		if status != tt.status || loc != tt.location {
			t.Errorf("%s: POST /k code=%q = %d %q; want %d %q", tt.name, tt.typed, status, loc, tt.status, tt.location)
		}
	}
	k.clock.Advance(joinValidFor)
	if status, loc := post(code, ""); status != 303 || loc != "/k?error=join-expired" {
		t.Errorf("an expired code: POST /k = %d %q; want 303 /k?error=join-expired", status, loc)
	}
	// The phone that typed the code joins with the token it was given.
	k2 := newTestKiosk(t)
	j2 := k2.lecturer("GET", "/api/join", "")
	req, _ := http.NewRequest("POST", k2.http.URL+"/k", strings.NewReader("code="+j2["code"].(string)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	p := k2.newPhone("typed", strings.TrimPrefix(loc, "/j/"))
	p.slip("consent")
}
