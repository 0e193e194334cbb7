package kiosk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/relay"
	"github.com/consent-kiosk/kiosk/tally"
)

// TestBrowserPhoneThroughRelay: a real phone page whose kiosk is reached
// only through a relay finds its websocket, files and typed-code form below
// the room's prefix, consents and withdraws; when the relay dies and comes
// back, the page reconnects and resends its slip by itself.
func TestBrowserPhoneThroughRelay(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)

	const relayToken = "relay-token-for-tests-0123456789"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := ln.Addr().String()
	serveRelay := func(ln net.Listener) func() {
		rl := relay.New(relay.Config{Token: relayToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		srv := &http.Server{Handler: rl.Handler(), ErrorLog: relay.ErrorLog()}
		go srv.Serve(ln)
		return func() { srv.Close(); rl.Close() }
	}
	killRelay := serveRelay(ln)
	t.Cleanup(func() { killRelay() })

	store, err := tally.Open(context.Background(), filepath.Join(t.TempDir(), "kiosk.db"), tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	link := &relay.Link{URL: "http://" + relayAddr, Token: relayToken, Key: store.DeriveKey("relay-room"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := New(Config{Store: store, AdminToken: testToken, PublicURL: "http://127.0.0.1:1", PhoneURL: link.RoomURL()})

	viaRelay := &http.Server{Handler: srv.RelayHandler()}
	ctx, cancel := context.WithCancel(context.Background())
	linkDone := make(chan struct{})
	go func() {
		defer close(linkDone)
		link.Run(ctx, viaRelay.Serve, func(up bool) {
			srv.SetRelayConnected(up)
			store.SetUnreachable(context.Background(), !up)
		})
	}()
	t.Cleanup(func() { cancel(); <-linkDone; viaRelay.Close(); srv.Close(); store.Close() })
	waitUntil := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil(5*time.Second, "the kiosk reaches the relay", func() bool { return srv.relayUp.Load() })

	if _, err := store.NewRound(context.Background(), tally.RoundSpec{Purpose: "Lecture video"}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetHeadcount(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	join, _ := srv.JoinURL()
	en := catalogue(t, "en")

	p := newTab(t, browser, "phone through the relay", axe, tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	p.navigate(join)
	p.waitFor("the buttons", buttonsShown)
	p.waitFor("connected", fmt.Sprintf(`document.getElementById('status').textContent === %q`, en["phone.connected"]))
	prefix := "/r/" + relay.RoomID(link.Key)
	if p.requested(prefix+"/ws") == 0 {
		t.Errorf("the page opened no websocket at %s/ws", prefix)
	}
	p.do(chromedp.Click(chromedp.ID("consent")))
	p.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))

	// A second phone types the code at the room's /k.
	typed := newTab(t, browser, "phone typing the code through the relay", axe, tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	typed.navigate(strings.TrimSuffix(join, join[strings.LastIndex(join, "/j/"):]) + "/k")
	typed.do(chromedp.SendKeys(chromedp.ID("code"), srv.join.currentCode()+"\r"))
	// The buttons show once the round is known; the tap goes at once, as a
	// student's does, whether or not the page says "Connected." yet.
	typed.waitFor("the buttons in the room", fmt.Sprintf(`location.pathname.indexOf(%q) === 0 && `, prefix+"/j/")+buttonsShown)
	typed.tap("consent")
	typed.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))
	if !store.State().Unlocked {
		t.Fatalf("both consented through the relay: state %+v; want unlocked", store.State())
	}
	typed.tap("refuse")
	typed.waitFor("the refusal counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_refuse"]))
	if st := store.State(); st.Unlocked || st.Reason != tally.ReasonRefused {
		t.Fatalf("after a change of mind: state %+v; want locked, refused", st)
	}
	typed.tap("consent")
	typed.waitFor("consent again", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))

	// The relay dies: locked at once. It comes back on its address: both
	// pages reconnect and resend their slips without anyone touching them.
	killRelay()
	waitUntil(2*time.Second, "locked unreachable", func() bool { return store.State().Reason == tally.ReasonUnreachable })
	ln2, err := net.Listen("tcp", relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	killRelay = serveRelay(ln2)
	waitUntil(30*time.Second, "unlocked again after the relay came back", func() bool { return store.State().Unlocked })
	p.checkClean("http://" + relayAddr)
	typed.checkClean("http://" + relayAddr)
}
