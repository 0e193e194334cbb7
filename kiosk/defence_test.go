package kiosk

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// TestWithdrawalLocksWhileDiskIsSlow holds SQLite's write lock from a second
// connection, as another process or a stalled disk would. A change of mind
// and a withdrawal touch no disk before their answer: each is acknowledged
// and locks /api/unlock at once, however long the file is held.
func TestWithdrawalLocksWhileDiskIsSlow(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	k.wantUnlock("before", 200, "")

	other, err := sql.Open("sqlite", tally.DSN(k.path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	ctx := context.Background()
	hold, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('held', 1)`); err != nil {
		t.Fatal(err)
	}

	sent := time.Now()
	p.send(map[string]string{"type": "slip", "choice": "refuse"})
	waitState(t, k, func(st tally.State) bool { return !st.Unlocked })
	// Well under the 5 s busy_timeout: the lock did not wait for the disk.
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("the withdrawal locked after %v; want at once", took)
	}
	k.wantUnlock("change of mind while the disk is held", 423, "refused")
	if ack := p.expect("ack"); ack["choice"] != "refuse" {
		t.Errorf("ack %v; want refuse", ack)
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("the change of mind was acknowledged after %v; want at once", took)
	}
	p.slip("consent")
	k.wantUnlock("an unlock waits for its record while the disk is held", 423, "refused")
	sent = time.Now()
	p.slip("none")
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("the withdrawal was acknowledged after %v; want at once", took)
	}
	k.wantUnlock("withdrawal while the disk is held", 423, "waiting")
	hold.Rollback()
	p.slip("consent")
	k.wantUnlock("after", 200, "")
}

// TestConnectionCap: past the cap on joined websockets, a hello gets a
// clear "full" error and the phone is taken again when one leaves; a phone
// that holds a slip always gets in; and sockets that never say hello only
// push the oldest of their kind out of the lobby.
func TestConnectionCap(t *testing.T) {
	k := newTestKiosk(t)
	k.srv.maxPhones = 2
	k.srv.lobbyMax = 2
	k.setHeadcount(3)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	c := k.connectPhone("c")
	c.hello(join)
	if e := c.expectError(); e["code"] != "full" || e["message"] == "" {
		t.Errorf("hello past the cap: %v; want error full with a message", e)
	}
	b.leave()
	c.hello(join)
	if ack := c.expect("ack"); ack["choice"] != "none" {
		t.Errorf("hello after one left: %v; want joined", ack)
	}
	// a's page opens a second connection while the kiosk is full again: a
	// holds a slip, so it gets in.
	a2 := k.connectPhone("a")
	a2.hello("")
	if ack := a2.expect("ack"); ack["choice"] != "consent" {
		t.Errorf("a phone holding a slip past the cap: %v; want its consent", ack)
	}

	// The lobby holds b, which left. Sockets that say nothing push the
	// oldest out, one at a time, and never hold more than lobbyMax.
	x1 := k.connectPhone("x1")
	deadline := time.Now().Add(10 * time.Second)
	for k.srv.lobby.len() < 2 { // x1 is in once its handler has run
		if time.Now().After(deadline) {
			t.Fatalf("lobby holds %d sockets; want b and x1", k.srv.lobby.len())
		}
		time.Sleep(10 * time.Millisecond) // bounded polling
	}
	k.connectPhone("x2")
	waitClosed(t, b.conn, "the oldest socket in a full lobby")
	k.connectPhone("x3")
	waitClosed(t, x1.conn, "the next oldest socket in a full lobby")
	if n := k.srv.lobby.len(); n > 2 {
		t.Errorf("lobby holds %d sockets; want at most 2", n)
	}
}

// TestIdleConnectionClosed: a connection that never joins is closed after
// helloWait, and a joined one that stops answering pings after pongWait.
func TestIdleConnectionClosed(t *testing.T) {
	k := newTestKiosk(t)
	k.srv.limits.helloWait = 200 * time.Millisecond
	k.srv.limits.pongWait = 300 * time.Millisecond
	k.srv.limits.pingPeriod = 100 * time.Millisecond
	silent := k.connectPhone("silent")
	waitClosed(t, silent.conn, "a connection that never said hello")

	joined := k.newPhone("joined", k.joinToken())
	// gorilla answers pings only while the application reads; a phone that
	// stops reading stops answering, as a frozen page does.
	joined.conn.SetPingHandler(func(string) error { return nil })
	waitClosed(t, joined.conn, "a joined phone that answers no ping")
}

// waitClosed reads until the kiosk closes conn, for at most 5 seconds.
func waitClosed(t *testing.T, conn *websocket.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("%s was not closed within 5s", what)
			}
			return
		}
	}
}

// TestReadLimit: a frame over the read limit closes the connection and
// changes nothing.
func TestReadLimit(t *testing.T) {
	k := newTestKiosk(t)
	p := k.connectPhone("big")
	p.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","device":"`+strings.Repeat("a", maxFrameSize)+`"}`))
	waitClosed(t, p.conn, "a connection that sent an over-long frame")
	if st := k.store.State(); st.Issued != 0 {
		t.Errorf("issued = %d; want 0", st.Issued)
	}
}

// TestPerConnectionRateLimit: past the burst, messages are refused with
// rate-limited and change nothing.
func TestPerConnectionRateLimit(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	limited := 0
	for i := range defaultLimits.msgBurst + 10 {
		p.send(map[string]string{"type": "slip", "choice": []string{"consent", "refuse"}[i%2]})
	}
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n := 0; n < defaultLimits.msgBurst+10; {
		var m map[string]any
		if err := p.conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		switch m["type"] {
		case "ack":
			n++
		case "error":
			if m["code"] != "rate-limited" {
				t.Fatalf("error %v; want rate-limited", m)
			}
			limited++
			n++
		}
	}
	if limited == 0 {
		t.Errorf("%d messages at once were all taken; want some rate-limited", defaultLimits.msgBurst+10)
	}
}

// TestBurstBeforeReadingKeepsTheConnection: a phone that sends a burst and
// reads its answers only afterwards is slowed down, not dropped. Its
// receive buffer is made tiny, so the kiosk's writer stalls after a few
// answers whatever the machine's speed; answers to a phone's own messages
// must then wait for room rather than overflow the send queue.
func TestBurstBeforeReadingKeepsTheConnection(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(1024)
		}
		return c, err
	}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(k.http.URL, "http")+"/ws", http.Header{"Origin": {k.http.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := &testPhone{t: t, conn: conn, device: strings.Repeat("b", 32)}
	p.hello(k.joinToken())
	p.expect("ack")
	const burst = 400
	sent := make(chan error, 1)
	go func() {
		for i := range burst {
			if err := conn.WriteJSON(map[string]string{"type": "slip", "choice": []string{"consent", "refuse"}[i%2]}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	// Read nothing until the kiosk's writer has surely stalled.
	time.Sleep(500 * time.Millisecond)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for n := 0; n < burst; {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("after %d of %d answers: %v; want the connection kept", n, burst, err)
		}
		if m["type"] == "ack" || m["type"] == "error" {
			n++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// TestLecturerTokenComparison: the lecturer check accepts exactly the token,
// whatever its length.
func TestLecturerTokenComparison(t *testing.T) {
	a := startKiosk(t, filepath.Join(t.TempDir(), "kiosk.db")).srv.auth
	for _, tok := range []string{"", testToken[:1], testToken[:len(testToken)-1], testToken + "\x00", strings.ToUpper(testToken), " " + testToken} {
		if a.tokenOK(tok) {
			t.Errorf("tokenOK(%q) = true; want false", tok)
		}
	}
	if !a.tokenOK(testToken) {
		t.Error("tokenOK(the token) = false")
	}
}

// TestCSRFOriginCheck covers each way a browser says where a request came
// from, on an authorized request that would change state.
func TestCSRFOriginCheck(t *testing.T) {
	k := newTestKiosk(t)
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no origin (curl)", nil, 200},
		{"own origin", map[string]string{"Origin": k.http.URL}, 200},
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch metadata", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same host, other port", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
	}
	for i, tt := range tests {
		req, _ := http.NewRequest("POST", k.http.URL+"/api/headcount", strings.NewReader(fmt.Sprintf(`{"headcount":%d}`, 10+i)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		for h, v := range tt.header {
			req.Header.Set(h, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		changed := k.store.State().Headcount == 10+i
		if resp.StatusCode != tt.status || changed != (tt.status == 200) {
			t.Errorf("%s: POST /api/headcount = %d, changed %v; want %d", tt.name, resp.StatusCode, changed, tt.status)
		}
	}
}
