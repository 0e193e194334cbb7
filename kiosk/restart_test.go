package kiosk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

// TestRestartLocksUntilPhonesReport: the kiosk keeps no phone's choice on
// disk, so after a restart it cannot vouch for the tally until every phone
// that held a slip has sent it again. Until then it is locked, restarted,
// and says how many are missing; received still counts their slips.
func TestRestartLocksUntilPhonesReport(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	b.slip("consent")
	k.wantUnlock("before restart", 200, "")
	k.stop()

	k2 := startKiosk(t, k.path)
	k2.wantUnlock("after restart", 423, "restarted")
	st := k2.lecturer("GET", "/api/state", "")
	if st["missing"] != float64(2) || st["received"] != float64(2) {
		t.Errorf("state after restart: missing %v, received %v; want 2 and 2", st["missing"], st["received"])
	}
	k2.clock.Advance(10 * time.Minute) // the join token has long expired
	again := k2.connectPhone("a")
	again.hello(join)
	// The kiosk does not know what phone a said: it says none, and the
	// phone sends its slip again.
	if ack := again.expect("ack"); ack["choice"] != "none" {
		t.Errorf("hello after restart = %v; want choice none (the kiosk kept no choice)", ack)
	}
	again.slip("consent")
	k2.wantUnlock("one of two reported", 423, "restarted")
	if st := k2.lecturer("GET", "/api/state", ""); st["missing"] != float64(1) || st["received"] != float64(2) {
		t.Errorf("one reported: missing %v, received %v; want 1 and 2", st["missing"], st["received"])
	}
	bAgain := k2.connectPhone("b")
	bAgain.hello("")
	bAgain.expect("ack")
	bAgain.slip("consent")
	k2.wantUnlock("both reported", 200, "")
	if st := k2.lecturer("GET", "/api/state", ""); st["missing"] != float64(0) {
		t.Errorf("missing after both reported = %v; want 0", st["missing"])
	}
}

// TestRestartRelease: the lecturer lets the phones that did not come back
// go. Their slips are removed, and the room is asked again; until then the
// kiosk stays locked.
func TestRestartRelease(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	b.slip("refuse")
	k.stop()

	k2 := startKiosk(t, k.path)
	again := k2.connectPhone("a")
	again.hello("")
	again.expect("ack")
	again.slip("consent")
	if status, _ := k2.do("POST", "/api/restart/release", "", `{}`); status != http.StatusUnauthorized {
		t.Errorf("release without a token = %d; want 401", status)
	}
	k2.wantUnlock("a stranger cannot release", 423, "restarted")
	st := k2.lecturer("POST", "/api/restart/release", `{}`)
	if st["missing"] != float64(0) || st["received"] != float64(1) || st["reason"] != "waiting" {
		t.Errorf("after release: %v; want missing 0, received 1, waiting", st)
	}
	k2.wantUnlock("after release", 423, "waiting")
	// Phone b was let go: it is no longer in the session and must join again.
	gone := k2.connectPhone("b")
	gone.hello("")
	if m := gone.expect("error"); m["code"] != "join-required" {
		t.Errorf("hello from a released phone = %v; want join-required", m)
	}
	gone.hello(k2.joinToken())
	gone.expect("ack")
	gone.slip("consent")
	k2.wantUnlock("the room answered again", 200, "")
	// Releasing with nobody missing changes nothing.
	before := k2.lecturer("GET", "/api/state", "")
	after := k2.lecturer("POST", "/api/restart/release", `{}`)
	if before["version"] != after["version"] {
		t.Errorf("release with nobody missing changed the state: %v -> %v", before, after)
	}
}

// holdWriteLock takes SQLite's write lock on the kiosk's file from another
// connection, as another process or a stalled disk would, until the test
// ends or release is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", tally.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	other.SetMaxOpenConns(1)
	ctx := context.Background()
	hold, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('held', 1)`); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			hold.Rollback()
			other.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestLecturerLocksWhileDiskIsBusy: a lecturer's change that locks (a
// latecomer raises the headcount, a new round, closing) locks at once, even
// while the file is held and its transaction waits.
func TestLecturerLocksWhileDiskIsBusy(t *testing.T) {
	for _, tt := range []struct {
		name, path, body, reason string
	}{
		{"headcount raised", "/api/headcount", `{"headcount":2}`, "waiting"},
		{"new round", "/api/round", `{"purpose":"Another purpose"}`, "waiting"},
		{"session closed", "/api/close", `{}`, "closed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKiosk(t)
			k.setHeadcount(1)
			k.newPhone("a", k.joinToken()).slip("consent")
			k.wantUnlock("before", 200, "")
			release := holdWriteLock(t, k.path)
			sent := time.Now()
			answered := make(chan int, 1)
			go func() {
				status, _ := k.do("POST", tt.path, testToken, tt.body)
				answered <- status
			}()
			waitState(t, k, func(st tally.State) bool { return !st.Unlocked })
			// Well under the 5 s busy_timeout: the lock did not wait for the disk.
			if took := time.Since(sent); took > 2*time.Second {
				t.Errorf("the change locked after %v; want at once", took)
			}
			k.wantUnlock("while the file is held", 423, tt.reason)
			release()
			<-answered
		})
	}
}

// sealKey reads the public key the kiosk gives a new websocket.
func sealKey(t *testing.T, k *testKiosk) string {
	t.Helper()
	conn, _, err := k.dial(k.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var m struct{ Type, Key string }
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.ReadJSON(&m); err != nil || m.Type != "seal" || m.Key == "" {
		t.Fatalf("first message = %+v, %v; want the seal key", m, err)
	}
	return m.Key
}

// TestSealKeyLivesInMemoryOnly: whoever holds the database file cannot
// open a sealed frame captured on the room's network. The seal's key is
// drawn at each start, and no key in the file, nor any key derived from one
// as earlier kiosks did, gives it.
func TestSealKeyLivesInMemoryOnly(t *testing.T) {
	k := newTestKiosk(t)
	first := sealKey(t, k)
	// Read the file as anyone holding it would, beside the running kiosk.
	db, err := sql.Open("sqlite", tally.DSN(k.path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key, value FROM meta`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var value []byte
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if len(value) != 32 {
			continue
		}
		m := hmac.New(sha256.New, value)
		m.Write([]byte("seal"))
		for _, seed := range [][]byte{value, m.Sum(nil)} {
			if seal.NewSealer(seed).PublicKeyString() == first {
				t.Errorf("the seal's key comes from %s in the database file", name)
			}
		}
	}
	if seal.NewSealer(k.store.DeriveKey("seal")).PublicKeyString() == first {
		t.Error("the seal's key is derived from the kiosk key in the database file")
	}
	k.stop()
	k2 := startKiosk(t, k.path)
	if sealKey(t, k2) == first {
		t.Error("the seal's key survived a restart: it is kept somewhere")
	}
}

// TestBrowserPhoneReportsAfterRestart: a real phone page consents, the
// kiosk restarts, and the page, reconnecting by itself, sends its slip
// again: the kiosk is restarted until then, and unlocks after.
func TestBrowserPhoneReportsAfterRestart(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.setHeadcount(1)
	phone := newTab(t, browser, "phone", "", tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	phone.navigate(k.http.URL + "/j/" + k.joinToken())
	phone.waitFor("the buttons", buttonsShown)
	phone.do(chromedp.Click(chromedp.ID("consent")))
	waitState(t, k, func(st tally.State) bool { return st.Unlocked })

	addr := k.http.Listener.Addr().String()
	k.stop()
	k2 := restartKioskAt(t, k.path, addr)
	if st := k2.store.State(); st.Reason != tally.ReasonRestarted || st.Missing != 1 {
		t.Fatalf("after the restart: %+v; want restarted, 1 missing", st)
	}
	// The page reconnects with backoff and sends its consent again.
	waitState(t, k2, func(st tally.State) bool { return st.Missing == 0 })
	k2.wantUnlock("the page sent its slip again", 200, "")
	phone.checkClean(k2.http.URL)
}

// TestBrowserLeaveAfterRestart: a student whose phone consented taps "I am
// leaving the room" while the kiosk restarts. The restarted kiosk knows the
// phone only as missing, and answers its hello with no slip. The page
// still sends the leave, so the kiosk no longer waits for that phone; it
// does not just say "left" while the kiosk still counts it.
func TestBrowserLeaveAfterRestart(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.setHeadcount(1)
	en := catalogue(t, "en")
	phone := newTab(t, browser, "phone", "", tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	phone.navigate(k.http.URL + "/j/" + k.joinToken())
	phone.waitFor("the buttons", buttonsShown)
	phone.tap("consent")
	waitState(t, k, func(st tally.State) bool { return st.Unlocked })

	addr := k.http.Listener.Addr().String()
	k.stop()
	phone.waitFor("reconnecting", fmt.Sprintf(`document.getElementById('status').textContent === %q`, en["phone.reconnecting"]))
	phone.tap("leave")
	k2 := restartKioskAt(t, k.path, addr)
	phone.waitFor("left", fmt.Sprintf(`document.getElementById('status').textContent === %q`, en["phone.left"]))
	waitState(t, k2, func(st tally.State) bool { return st.Missing == 0 })
	if st := k2.store.State(); st.Issued != 0 || st.Received != 0 {
		t.Errorf("after the phone left: %+v; want no phone and no slip", st)
	}
}

// TestRecordAPIShowsHeadcountChanges: GET /api/record lists every headcount
// the lecturer set in a round, with its time (R8).
func TestRecordAPIShowsHeadcountChanges(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	k.clock.Advance(time.Minute)
	k.setHeadcount(3)
	rec := k.lecturer("GET", "/api/record", "")
	rounds, _ := rec["rounds"].([]any)
	if len(rounds) == 0 {
		t.Fatalf("record = %v; want a round", rec)
	}
	last, _ := rounds[len(rounds)-1].(map[string]any)
	changes, _ := last["headcount_changes"].([]any)
	if len(changes) != 2 {
		t.Fatalf("headcount_changes = %v; want 2", last["headcount_changes"])
	}
	for i, want := range []float64{2, 3} {
		c, _ := changes[i].(map[string]any)
		if c["headcount"] != want || c["at"] == "" || c["at"] == nil {
			t.Errorf("headcount change %d = %v; want headcount %v with its time", i, c, want)
		}
	}
}

// TestWithdrawalLocksBehindAWaitingCommit: while another process holds the
// database file, a newcomer's first slip waits for its commit. A consenting
// phone that withdraws meanwhile must not wait behind it: its ack and the
// lock come at once.
func TestWithdrawalLocksBehindAWaitingCommit(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	join := k.joinToken()
	a := k.newPhone("a", join)
	a.slip("consent")
	newcomer := k.newPhone("newcomer", join)
	k.wantUnlock("before", 200, "")
	release := holdWriteLock(t, k.path)
	newcomer.send(map[string]string{"type": "slip", "choice": "consent"}) // its commit waits
	waitState(t, k, func(st tally.State) bool { return !st.Unlocked })    // an overcount: locked before the commit
	sent := time.Now()
	a.slip("none")
	if took := time.Since(sent); took > time.Second {
		t.Errorf("the withdrawal was acknowledged after %v behind a waiting commit; want at once", took)
	}
	k.wantUnlock("withdrawn while a commit waits", 423, "waiting")
	release()
	if ack := newcomer.expect("ack"); ack["choice"] != "consent" {
		t.Errorf("newcomer's ack after the file came back = %v; want consent", ack)
	}
	k.wantUnlock("the newcomer's slip is in", 200, "")
}

// TestPhonesGoOnWhileALecturerChangeWaits: while a lecturer's change waits
// for a file another process holds, phones' changes are answered at once.
func TestPhonesGoOnWhileALecturerChangeWaits(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	a := k.newPhone("a", k.joinToken())
	a.slip("consent")
	release := holdWriteLock(t, k.path)
	answered := make(chan int, 1)
	go func() {
		status, _ := k.do("POST", "/api/headcount", testToken, `{"headcount":2}`)
		answered <- status
	}()
	waitState(t, k, func(st tally.State) bool { return !st.Unlocked }) // the change is waiting
	sent := time.Now()
	a.slip("refuse")
	a.slip("none")
	if took := time.Since(sent); took > time.Second {
		t.Errorf("two changes took %v while a lecturer's change waited; want at once", took)
	}
	release()
	if status := <-answered; status != http.StatusOK {
		t.Errorf("the headcount change after the file came back = %d; want 200", status)
	}
	if st := k.lecturer("GET", "/api/state", ""); st["headcount"] != float64(2) || st["received"] != float64(0) {
		t.Errorf("state = %v; want headcount 2 and no slips", st)
	}
}

// TestBrowserConsoleSurvivesRestart: the lecturer's console on the laptop
// stays signed in across a kiosk restart. While the kiosk is down it says
// so; when the kiosk is back it says what happened (restarted, a phone
// still to report) without a new sign-in link, and then ready.
func TestBrowserConsoleSurvivesRestart(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.setHeadcount(1)
	en := catalogue(t, "en")
	con := newTab(t, browser, "console", "", tabOptions{lang: "en", width: 1280, height: 800})
	con.navigate(k.loginLink())
	con.waitFor("the console", `location.pathname === '/console' && document.getElementById('count-line').textContent !== ''`)
	phone := newTab(t, browser, "phone", "", tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	phone.navigate(k.http.URL + "/j/" + k.joinToken())
	phone.waitFor("the buttons", buttonsShown)
	phone.do(chromedp.Click(chromedp.ID("consent")))
	con.waitFor("ready", fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q`, en["proj.reason.ready"]))

	addr := k.http.Listener.Addr().String()
	// The phone's page goes away, so that it cannot report before the
	// console has shown what the restart left.
	phone.navigate("about:blank")
	k.stop()
	con.waitFor("the kiosk gone", fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q && document.getElementById('auth-problem').hidden`, en["proj.reason.offline"]))
	k2 := restartKioskAt(t, k.path, addr)
	missing := strings.ReplaceAll(en["con.missing"], "{missing}", "1")
	con.waitFor("the restart explained", fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q && !document.getElementById('missing-box').hidden && document.getElementById('missing-text').textContent === %q && document.getElementById('auth-problem').hidden`, en["proj.reason.restarted"], missing))
	// Still signed in: the console's own control works without a new link.
	con.do(chromedp.Evaluate[chromedp.Void](`window.confirm = function () { return true; }`), chromedp.Click(chromedp.CSS(`#release`)))
	con.waitFor("the missing phone let go", `document.getElementById('missing-box').hidden`)
	if st := k2.store.State(); st.Missing != 0 {
		t.Errorf("after letting the phone go: %+v; want none missing", st)
	}
	con.checkClean(k2.http.URL)
}
