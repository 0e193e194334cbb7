package kiosk

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/internal/browsertest"
	"github.com/consent-kiosk/kiosk/tally"
)

// evalJS evaluates a JavaScript expression in the tab and returns its value.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, expr)
}

// recordSockets wraps the page's WebSocket so the test sees every frame the
// page sends and receives, as they cross the wire.
const recordSockets = `(function () {
  var Native = window.WebSocket, send = Native.prototype.send;
  window.__sent = []; window.__got = [];
  Native.prototype.send = function (d) { window.__sent.push(String(d)); return send.call(this, d); };
  window.WebSocket = function (u, p) {
    var w = p === undefined ? new Native(u) : new Native(u, p);
    w.addEventListener('message', function (e) { window.__got.push(String(e.data)); });
    return w;
  };
  window.WebSocket.prototype = Native.prototype;
})();`

// TestPhonePageSeals loads the real phone page from a real kiosk, taps
// "consent" and "do not consent", and checks that the kiosk counted the
// slips while no frame either way showed a choice or the device secret.
func TestPhonePageSeals(t *testing.T) {
	ctx := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video","notice":"Voice and slides."}`)
	k.setHeadcount(1)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordSockets})
			return err
		}),
		chromedp.Navigate(k.http.URL+"/j/"+k.joinToken()),
		chromedp.Click(chromedp.ID("consent")),
	); err != nil {
		t.Fatalf("opening the phone page and tapping consent: %v", err)
	}
	waitState(t, k, func(st tally.State) bool { return st.Unlocked })
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("refuse"))); err != nil {
		t.Fatal(err)
	}
	waitState(t, k, func(st tally.State) bool { return st.Received == 1 && !st.Unlocked && st.Reason == tally.ReasonRefused })
	// The page has opened the sealed ack once nothing is pending.
	want := evalJS[string](t, ctx, `Kiosk.t('phone.current_refuse')`)
	deadline := time.Now().Add(10 * time.Second)
	for evalJS[string](t, ctx, `document.getElementById('current').textContent`) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed the acknowledged refusal %q", want)
		}
		time.Sleep(20 * time.Millisecond) // bounded polling of the page
	}

	device := evalJS[string](t, ctx, `localStorage.getItem('consent-kiosk-device')`)
	sent := evalJS[[]string](t, ctx, `window.__sent`)
	got := evalJS[[]string](t, ctx, `window.__got`)
	if len(sent) < 3 || device == "" {
		t.Fatalf("page sent %d frames, device %q; want hello and two slips", len(sent), device)
	}
	for _, f := range sent {
		if !strings.HasPrefix(f, `{"type":"sealed",`) {
			t.Errorf("the page sent a frame in clear: %s", f)
		}
	}
	for _, f := range append(sent, got...) {
		for _, secret := range []string{`consent"`, `refuse"`, device} {
			if strings.Contains(f, secret) {
				t.Errorf("a frame on the wire shows %s: %s", secret, f)
			}
		}
	}
}

// waitState polls the kiosk's state until ok, for at most 10 seconds.
func waitState(t *testing.T, k *testKiosk, ok func(tally.State) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, ch := k.store.Changed()
		if ok(st) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out; last state %+v", st)
		}
	}
}
