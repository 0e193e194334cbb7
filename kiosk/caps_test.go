package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/hooks"
	"github.com/gorilla/websocket"
)

// flood holds what a script in the room can hold without any token: long-
// polling tokenless hellos with "seen" from ever new device secrets, and
// websockets that never say hello. It stops at cleanup.
func (k *testKiosk) flood(posters, sockets int) {
	k.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: posters}}
	var wg sync.WaitGroup
	started := make(chan struct{}, posters)
	version := k.store.State().Version
	for i := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				body := fmt.Sprintf(`{"type":"hello","device":"junk-%08d-%08dxxxxxxxxxxxxxx","seen":%d}`, i, n, version)
				req, _ := http.NewRequestWithContext(ctx, "POST", k.http.URL+"/api/phone", strings.NewReader(body))
				req.Header.Set("Origin", k.http.URL)
				if n == 0 {
					started <- struct{}{}
				}
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for range posters {
		<-started
	}
	var conns []*websocket.Conn
	for range sockets {
		if c, _, err := k.dial(k.http.URL); err == nil {
			conns = append(conns, c)
		}
	}
	k.t.Cleanup(func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		client.CloseIdleConnections()
	})
}

// TestKnownPhoneWithdrawsThroughAFlood: while a script holds every slot a
// stranger can take, a phone that holds a consent reconnects, on either
// transport, and withdraws; the recorder endpoint locks at once.
func TestKnownPhoneWithdrawsThroughAFlood(t *testing.T) {
	for _, transport := range []string{"websocket", "http"} {
		t.Run(transport, func(t *testing.T) {
			k := newTestKiosk(t)
			k.srv.maxPhones = 20
			k.srv.lobbyMax = 20
			k.setHeadcount(1)
			p := k.newPhone("a", k.joinToken())
			p.slip("consent")
			k.wantUnlock("consented", 200, "")
			p.conn.Close() // the phone's socket dropped

			k.flood(60, 40)

			start := time.Now()
			if transport == "websocket" {
				conn, resp, err := k.dial(k.http.URL)
				if err != nil {
					status := 0
					if resp != nil {
						status = resp.StatusCode
					}
					t.Fatalf("the consenting phone cannot reconnect during the flood: %v (status %d)", err, status)
				}
				again := &testPhone{t: t, conn: conn, device: p.device}
				t.Cleanup(func() { conn.Close() })
				again.hello("")
				if ack := again.expect("ack"); ack["choice"] != "consent" {
					t.Fatalf("rejoin ack %v; want its consent", ack)
				}
				again.slip("refuse")
			} else {
				hp := &httpPhone{k: k, device: p.device}
				status, msgs := hp.post(map[string]any{"type": "slip", "choice": "refuse"}, k.http.URL)
				if ack := find(msgs, "ack"); status != http.StatusOK || ack == nil || ack["choice"] != "refuse" {
					t.Fatalf("withdrawal over HTTP during the flood = %d %v; want 200 and an ack of refuse", status, msgs)
				}
			}
			k.wantUnlock("withdrawn during the flood", http.StatusLocked, "refused")
			if took := time.Since(start); took > time.Second {
				t.Errorf("reconnecting and withdrawing took %v during the flood; want under 1 s", took)
			}
		})
	}
}

// TestStrangersHoldNoLongPoll: a tokenless hello from an unknown phone is
// refused before it waits, so it cannot hold a request open.
func TestStrangersHoldNoLongPoll(t *testing.T) {
	k := newTestKiosk(t)
	v := k.store.State().Version
	done := make(chan int, 1)
	go func() {
		status, _ := k.postPhone(fmt.Sprintf(`{"type":"hello","device":"stranger-0123456789abcdefghijklmnop","seen":%d}`, v), k.http.URL)
		done <- status
	}()
	select {
	case status := <-done:
		if status != http.StatusForbidden {
			t.Errorf("tokenless hello with seen = %d; want 403 join-required", status)
		}
	case <-time.After(phoneWait / 2):
		t.Fatal("a tokenless hello from an unknown phone is waiting: strangers can hold long-polls")
	}
}

// TestUnlockWaitBounds: wait=Inf, NaN or negative get a clear 400; a huge
// wait is the long-poll's maximum, answered on the next change.
func TestUnlockWaitBounds(t *testing.T) {
	k := newTestKiosk(t)
	v := k.store.State().Version
	for _, w := range []string{"Inf", "+Inf", "-Inf", "infinity", "NaN", "-1", "-0.5", "1e400"} {
		status, m := k.do("GET", fmt.Sprintf("/api/unlock?wait=%s&seen=%d", w, v), "", "")
		if status != http.StatusBadRequest || m["error"] != "invalid" {
			t.Errorf("wait=%s: %d %v; want 400 invalid", w, status, m)
		}
	}
	for _, w := range []string{"1e300", "9223372037", "1e18"} {
		got := make(chan map[string]any, 1)
		go func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/unlock?wait=%s&seen=%d", k.http.URL, w, v), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				got <- map[string]any{"err": err.Error()}
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			got <- m
		}()
		// Changing the headcount wakes the long-poll, or the request
		// arrives after the change and answers at once.
		k.setHeadcount(int(v%50) + 1)
		select {
		case m := <-got:
			if ver, _ := m["version"].(float64); uint64(ver) <= v {
				t.Errorf("wait=%s: answer %v; want the changed state", w, m)
			}
		case <-time.After(maxWait / 2):
			t.Fatalf("wait=%s: no answer after a change", w)
		}
		v = k.store.State().Version
	}
}

// TestParseWait: a long-poll's wait is what it asks for up to maxWait, and
// maxWait however long it asks, even past time.Duration's range; anything
// not a finite, non-negative number is refused.
func TestParseWait(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"0", 0, true},
		{"2.5", 2500 * time.Millisecond, true},
		{fmt.Sprint(maxWait.Seconds() - 1), maxWait - time.Second, true},
		{fmt.Sprint(maxWait.Seconds()), maxWait, true},
		{fmt.Sprint(maxWait.Seconds() + 1), maxWait, true},
		{"9223372037", maxWait, true}, // just past time.Duration's range in seconds
		{"1e18", maxWait, true},
		{"1e300", maxWait, true},
		{"-0.5", 0, false},
		{"-1", 0, false},
		{"Inf", 0, false},
		{"-Inf", 0, false},
		{"NaN", 0, false},
		{"1e400", 0, false},
		{"ten", 0, false},
	} {
		got, err := parseWait(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestJunkHellosDoNotCrowdOutNewPhones: hellos with made-up device secrets
// must not fill the per-phone limiter table, or a real phone gets 429.
func TestJunkHellosDoNotCrowdOutNewPhones(t *testing.T) {
	k := newTestKiosk(t)
	k.srv.phoneLimits.max = 20
	for i := range 40 {
		k.postPhone(fmt.Sprintf(`{"type":"hello","device":"junk-%030d"}`, i), k.http.URL)
		k.postPhone(fmt.Sprintf(`{"type":"slip","choice":"consent","device":"junk-%030d"}`, i), k.http.URL)
	}
	p := k.newHTTPPhone("real", k.joinToken())
	p.hello()
}

// TestJoinLimit: one typed code cannot register phones without bound: the
// headcount plus a margin, and a clear refusal beyond it.
func TestJoinLimit(t *testing.T) {
	k := newTestKiosk(t)
	if st := k.lecturer("GET", "/api/state", ""); st["join_limit"] != 1100.0 || st["join_limit_hit"] != false {
		t.Errorf("before a headcount: join_limit %v, hit %v; want 1100, false", st["join_limit"], st["join_limit_hit"])
	}
	k.setHeadcount(5)
	join := k.joinToken()
	limit := 5 + 20
	for i := range limit {
		k.newHTTPPhone(fmt.Sprint("p", i), join).hello()
	}
	status, msgs := k.newHTTPPhone("one-too-many", join).post(map[string]any{"type": "hello", "join": join}, k.http.URL)
	if e := find(msgs, "error"); status != http.StatusForbidden || e == nil || e["code"] != "join-limit" {
		t.Fatalf("join past the limit = %d %v; want 403 join-limit", status, msgs)
	}
	st := k.lecturer("GET", "/api/state", "")
	if st["join_limit"] != float64(limit) || st["join_limit_hit"] != true {
		t.Errorf("after the limit: join_limit %v, hit %v; want %d, true", st["join_limit"], st["join_limit_hit"], limit)
	}
	// A phone already in is never held back.
	k.newHTTPPhone("p0", "").hello()
	k.setHeadcount(200)
	k.newHTTPPhone("after-raise", join).hello()
}

// TestEveryPhoneHearsTheSameAfterHello: a phone that consented earlier in
// the series and one that did not get the same number of frames of the
// same sizes after hello, so a listener cannot tell them apart.
func TestEveryPhoneHearsTheSameAfterHello(t *testing.T) {
	k := newTestKiosk(t)
	round := `{"purpose":"Lecture video for INF100","series":"INF100","notice":{"course":"INF100","camera":"Front rows."}}`
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(1)
	a := k.newPhone("a", k.joinToken())
	a.slip("consent")
	k.lecturer("POST", "/api/close", `{}`)
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(2)
	join := k.joinToken()

	frames := func(name string) []int {
		p := k.connectPhone(name)
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := p.conn.ReadMessage(); err != nil { // the seal message
			t.Fatal(err)
		}
		p.hello(join)
		var sizes []string
		var lens []int
		for {
			_, b, err := p.conn.ReadMessage()
			if err != nil {
				t.Fatalf("%s: %v after %v", name, err, sizes)
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			typ, _ := m["type"].(string)
			sizes = append(sizes, typ)
			lens = append(lens, len(b))
			if typ == "tally" {
				t.Logf("%s hears %v %v", name, sizes, lens)
				return lens
			}
		}
	}
	old, fresh := frames("a"), frames("b")
	if fmt.Sprint(old) != fmt.Sprint(fresh) {
		t.Errorf("after hello a phone that consented before hears frames of sizes %v, a new phone %v; want the same", old, fresh)
	}
}

// waitHookProblem long-polls /api/state until hook_problem is there or not.
func (k *testKiosk) waitHookProblem(want bool) {
	k.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := k.lecturer("GET", "/api/state", "")
		if p, _ := st["hook_problem"].(string); (p != "") == want {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("hook_problem %v after 30 s; want present: %v", st["hook_problem"], want)
		}
		v := uint64(st["version"].(float64))
		k.lecturer("GET", fmt.Sprintf("/api/state?wait=5&seen=%d", v), "")
	}
}

// TestLockHookRetriedUntilItRuns: a lock hook that cannot start is tried
// again until it runs, and /api/state shows the problem meanwhile.
func TestLockHookRetriedUntilItRuns(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "stop-recorder")
	marker := filepath.Join(dir, "stopped")
	k := newTestKiosk(t)
	status := new(hooks.Status)
	k.srv.hookStatus = status
	h := hooks.Commands{OnLock: script, Timeout: time.Minute, Retry: 20 * time.Millisecond, Status: status}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx, k.store); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// The command is missing: the lock hook does not start, and says so.
	k.waitHookProblem(true)
	if err := os.WriteFile(script+".tmp", []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(script+".tmp", script); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, marker, func(string) bool { _, err := os.Stat(marker); return err == nil })
	k.waitHookProblem(false)
}

// TestFlakyPhoneIsNeverLockedOutByItsOldSockets: a phone whose dropped
// sockets have not timed out yet holds many; each new hello ends the
// oldest, so the phone always gets in and can withdraw, while one device
// never holds more than seatsPerDevice.
func TestFlakyPhoneIsNeverLockedOutByItsOldSockets(t *testing.T) {
	k := newTestKiosk(t)
	k.srv.maxPhones = 1
	k.setHeadcount(1)
	first := k.newPhone("a", k.joinToken())
	first.slip("consent")
	var last *testPhone
	for range seatsPerDevice + 2 {
		last = k.connectPhone("a")
		last.hello("")
		if ack := last.expect("ack"); ack["choice"] != "consent" {
			t.Fatalf("reconnect: %v; want its consent", ack)
		}
	}
	waitClosed(t, first.conn, "the device's oldest socket")
	last.slip("refuse")
	k.wantUnlock("withdrawn after many reconnects", http.StatusLocked, "refused")
}

// TestHTTPHelloHearsWhatTheWebsocketDoes: a hello over the HTTP fallback
// is answered with the messages a websocket hello gets, in the same order,
// the series message included: a phone that consented earlier in the
// series hears its offer on either transport, and a new one hears "none".
func TestHTTPHelloHearsWhatTheWebsocketDoes(t *testing.T) {
	k := newTestKiosk(t)
	round := `{"purpose":"Lecture video for INF100","series":"INF100"}`
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(1)
	a := k.newPhone("a", k.joinToken())
	a.slip("consent")
	k.lecturer("POST", "/api/close", `{}`)
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(2)
	join := k.joinToken()

	ws := k.connectPhone("a")
	ws.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	ws.conn.ReadMessage() // the seal message
	ws.device = a.device
	ws.hello(join)
	var wsTypes []string
	var wsSeries map[string]any
	for len(wsTypes) == 0 || wsTypes[len(wsTypes)-1] != "tally" {
		var m map[string]any
		if err := ws.conn.ReadJSON(&m); err != nil {
			t.Fatalf("websocket after %v: %v", wsTypes, err)
		}
		wsTypes = append(wsTypes, m["type"].(string))
		if m["type"] == "series" {
			wsSeries = m
		}
	}
	for _, p := range []struct {
		phone *httpPhone
		want  any
	}{
		{&httpPhone{k: k, device: a.device, join: join}, wsSeries["consented_on"]},
		{k.newHTTPPhone("new", join), "none"},
	} {
		msgs := p.phone.hello()
		var types []string
		for _, m := range msgs {
			types = append(types, m["type"].(string))
		}
		if fmt.Sprint(types) != fmt.Sprint(wsTypes) {
			t.Errorf("hello over HTTP answers %v; the websocket %v", types, wsTypes)
		}
		if s := find(msgs, "series"); s == nil || s["consented_on"] != p.want {
			t.Errorf("series message over HTTP = %v; want consented_on %v", s, p.want)
		}
	}
	if wsSeries["consented_on"] == "none" {
		t.Error("the phone that consented earlier in the series heard no offer over the websocket")
	}
}
