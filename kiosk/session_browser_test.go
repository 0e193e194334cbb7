package kiosk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignOut: the laptop and a tablet sign in with login links;
// the laptop's console shows two devices, signs the tablet out, and then
// signs the laptop itself out. Each page then says how to sign in again;
// axe-core checks the console.
func TestBrowserSignOut(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	en := catalogue(t, "en")
	devices := func(n int) string { return strings.ReplaceAll(en["con.devices"], "{devices}", fmt.Sprint(n)) }

	laptop := newTab(t, browser, "laptop", axe, tabOptions{lang: "en", width: 1280, height: 800})
	tablet := newTab(t, browser, "tablet", "", tabOptions{lang: "en", width: 800, height: 1280})
	laptop.navigate(k.loginLink())
	laptop.waitFor("one device", fmt.Sprintf(`location.pathname === '/console' && document.getElementById('devices-text').textContent === %q`, devices(1)))
	tablet.navigate(k.loginLink())
	tablet.waitFor("the tablet's console", `location.pathname === '/console' && document.getElementById('auth-problem').hidden`)
	laptop.waitFor("two devices", fmt.Sprintf(`document.getElementById('devices-text').textContent === %q`, devices(2)))
	laptop.checkAxe("console, two devices")

	// The console asks before signing the others out; the test says yes.
	laptop.waitFor("confirm answered yes", `(window.confirm = function () { return true; }, true)`)
	laptop.do(chromedp.Click(chromedp.ID("logout-others")))
	laptop.waitFor("one device again", fmt.Sprintf(`document.getElementById('devices-text').textContent === %q && document.getElementById('devices-msg').textContent === %q`,
		devices(1), en["con.logged_out_others"]))
	tablet.waitFor("the tablet signed out", `!document.getElementById('auth-problem').hidden`)
	if m := k.lecturer("GET", "/api/state", ""); m["lecturer_devices"] != float64(1) {
		t.Errorf("lecturer_devices after signing the others out = %v; want 1", m["lecturer_devices"])
	}

	laptop.do(chromedp.Click(chromedp.ID("logout")))
	laptop.waitFor("the laptop signed out", `!document.getElementById('auth-problem').hidden`)
	if got := laptop.text("auth-problem"); got != en["con.auth"] {
		t.Errorf("signed-out console says %q; want %q", got, en["con.auth"])
	}
	if m := k.lecturer("GET", "/api/state", ""); m["lecturer_devices"] != float64(0) {
		t.Errorf("lecturer_devices after signing out = %v; want 0", m["lecturer_devices"])
	}
	laptop.checkClean(k.http.URL)
	tablet.checkClean(k.http.URL)
}
