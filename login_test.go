package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var loginLinkRE = regexp.MustCompile(`Lecturer sign-in link: +(https?://\S+/lecturer\?login=\S+)`)

// loginLinkIn returns the last sign-in link in the terminal output.
func loginLinkIn(t *testing.T, out string) string {
	t.Helper()
	m := loginLinkRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		t.Fatalf("no sign-in link in the output:\n%s", out)
	}
	return m[len(m)-1][1]
}

// qrRunes are the blocks a terminal QR code is drawn with.
const qrRunes = "█▀▄"

// TestBannerShowsNoLecturerQR: the terminal, mirrored on the projector at
// the start of class, shows no QR code of a lecturer credential unless
// -lecturer-qr asks for one, and never the token.
func TestBannerShowsNoLecturerQR(t *testing.T) {
	for _, withQR := range []bool{false, true} {
		t.Run(fmt.Sprintf("lecturer-qr=%v", withQR), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			const token = "a-token-for-the-banner-test-0123"
			args := []string{"-addr", "127.0.0.1:0", "-data", filepath.Join(t.TempDir(), "k.db"), "-admin-token", token}
			if withQR {
				args = append(args, "-lecturer-qr")
			}
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, &out, func(string) string { return "" }) }()
			waitBanner(t, &out, done)
			banner := out.String()
			if strings.Contains(banner, token) {
				t.Errorf("the terminal shows the lecturer token:\n%s", banner)
			}
			hasQR := strings.ContainsAny(banner, qrRunes)
			if !withQR && hasQR {
				t.Errorf("without -lecturer-qr the terminal shows a QR code:\n%s", banner)
			}
			if withQR {
				want, err := terminalQR(loginLinkIn(t, banner))
				if err != nil || !strings.Contains(banner, want) {
					t.Errorf("with -lecturer-qr the terminal has no QR code of the sign-in link (%v):\n%s", err, banner)
				}
			}
			// The printed link signs a browser in once.
			link := loginLinkIn(t, banner)
			for i, want := range []int{200, 401} {
				resp, err := http.Get(link)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("use %d of the printed link = %d; want %d", i+1, resp.StatusCode, want)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run = %v; want nil after cancel", err)
			}
		})
	}
}

// TestEnterPrintsNewLink: each Enter in the terminal prints a new link,
// with no QR code unless asked for.
func TestEnterPrintsNewLink(t *testing.T) {
	n := 0
	newLink := func() (string, time.Time) {
		n++
		return fmt.Sprintf("http://kiosk.test/lecturer?login=link%d", n), time.Date(2026, 12, 1, 9, 10, 0, 0, time.UTC)
	}
	var out strings.Builder
	printLoginLinks(context.Background(), strings.NewReader("\n\n"), &out, false, newLink)
	links := loginLinkRE.FindAllStringSubmatch(out.String(), -1)
	if len(links) != 2 || links[0][1] == links[1][1] {
		t.Errorf("two presses of Enter printed %v; want two different links", links)
	}
	if strings.ContainsAny(out.String(), qrRunes) {
		t.Errorf("a QR code without -lecturer-qr:\n%s", out.String())
	}
	out.Reset()
	printLoginLinks(context.Background(), strings.NewReader("\n"), &out, true, newLink)
	if !strings.ContainsAny(out.String(), qrRunes) {
		t.Errorf("no QR code with -lecturer-qr:\n%s", out.String())
	}
}
