package kiosk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignOut: the laptop and a tablet sign in with login links;
// the laptop's controls show two devices, sign the tablet out, and then
// sign the laptop itself out. Each page then says how to sign in again;
// axe-core checks the controls.
func TestBrowserSignOut(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	en := catalogue(t, "en")
	devices := func(n int) string { return strings.ReplaceAll(en["proj.devices"], "{n}", fmt.Sprint(n)) }

	laptop := newTab(t, browser, "laptop", axe, tabOptions{lang: "en", width: 1280, height: 800})
	tablet := newTab(t, browser, "tablet", "", tabOptions{lang: "en", width: 800, height: 1280})
	laptop.navigate(k.loginLink())
	laptop.waitFor("one device", fmt.Sprintf(`location.pathname === '/' && document.getElementById('devices-count').textContent === %q`, devices(1)))
	tablet.navigate(k.loginLink())
	tablet.waitFor("the projector page", `location.pathname === '/' && document.getElementById('auth-problem').hidden`)
	laptop.waitFor("two devices", fmt.Sprintf(`document.getElementById('devices-count').textContent === %q`, devices(2)))

	laptop.do(chromedp.Click(chromedp.CSS("#controls > summary")))
	laptop.checkAxe("controls open, two devices")
	laptop.do(chromedp.Click(chromedp.ID("logout-others")))
	laptop.waitFor("one device again", fmt.Sprintf(`document.getElementById('devices-count').textContent === %q && document.getElementById('control-msg').textContent === %q`,
		devices(1), en["proj.signed_out_others"]))
	tablet.waitFor("the tablet signed out", `!document.getElementById('auth-problem').hidden`)
	if m := k.lecturer("GET", "/api/state", ""); m["lecturer_devices"] != float64(1) {
		t.Errorf("lecturer_devices after signing the others out = %v; want 1", m["lecturer_devices"])
	}

	laptop.do(chromedp.Click(chromedp.ID("logout")))
	laptop.waitFor("the laptop signed out", `!document.getElementById('auth-problem').hidden`)
	if got := laptop.text("auth-problem"); got != en["proj.auth"] {
		t.Errorf("signed-out page says %q; want %q", got, en["proj.auth"])
	}
	if m := k.lecturer("GET", "/api/state", ""); m["lecturer_devices"] != float64(0) {
		t.Errorf("lecturer_devices after signing out = %v; want 0", m["lecturer_devices"])
	}
	laptop.checkClean(k.http.URL)
	tablet.checkClean(k.http.URL)
}
