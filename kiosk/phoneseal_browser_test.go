package kiosk

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/tally"
)

// TestBrowserPhoneFallbackSeals: a real phone page on a network that
// refuses websockets falls back to /api/phone. Every body it sends there,
// as Chromium put it on the wire, must hide the device secret and the
// choice; once websockets get through again, the page goes back to them.
func TestBrowserPhoneFallbackSeals(t *testing.T) {
	browser := startChromium(t)
	var blockWS atomic.Bool
	blockWS.Store(true)
	var phoneRequests atomic.Int64 // POST /api/phone seen by the kiosk
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/ws":
				if blockWS.Load() {
					// A proxy on the way that does not pass websockets.
					http.Error(w, "no websockets here", http.StatusBadGateway)
					return
				}
			case "/api/phone":
				phoneRequests.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	k := startKioskBehind(t, filepath.Join(t.TempDir(), "kiosk.db"), wrap)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video","notice":"Voice and slides."}`)
	k.setHeadcount(1)

	var mu sync.Mutex
	var bodies []string
	p := newTab(t, browser, "phone", "", tabOptions{width: 360, height: 640, mobile: true, setup: recordSockets, events: func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || !strings.HasSuffix(e.Request.URL, "/api/phone") {
			return
		}
		var b strings.Builder
		for _, d := range e.Request.PostDataEntries {
			b.Write(d.Bytes)
		}
		mu.Lock()
		bodies = append(bodies, b.String())
		mu.Unlock()
	}})
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("the buttons", buttonsShown)
	p.do(chromedp.Click(chromedp.ID("consent")))
	waitState(t, k, func(st tally.State) bool { return st.Unlocked })
	want := eval[string](p, `Kiosk.t('phone.current_consent')`)
	p.waitFor("the acknowledged consent", `document.getElementById('current').textContent === `+jsString(want))

	device := eval[string](p, `localStorage.getItem('consent-kiosk-device')`)
	mu.Lock()
	seen := append([]string(nil), bodies...)
	mu.Unlock()
	if device == "" || len(seen) < 2 {
		t.Fatalf("device %q, %d bodies to /api/phone; want a device secret and at least a hello and a slip", device, len(seen))
	}
	for _, b := range seen {
		if b == "" {
			t.Errorf("a POST /api/phone whose body Chromium did not report; cannot check it")
		}
		for _, secret := range []string{device, "consent", "refuse"} {
			if strings.Contains(b, secret) {
				t.Errorf("a body sent to /api/phone shows %q in clear: %s", secret, b)
			}
		}
	}

	// Websockets get through again: the page must go back to them by
	// itself, and then send its next answer there.
	blockWS.Store(false)
	p.waitFor("the page back on the websocket", `window.__sent.length > 0`)
	before := phoneRequests.Load()
	p.do(chromedp.Click(chromedp.ID("refuse")))
	waitState(t, k, func(st tally.State) bool { return st.Reason == tally.ReasonRefused })
	if after := phoneRequests.Load(); after != before {
		t.Errorf("the refusal after websockets came back went over /api/phone (%d requests); want the websocket", after-before)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}
