package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// syncBuffer is a bytes.Buffer safe to write from run while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	const token = "a-token-for-the-main-test-0123"
	db := filepath.Join(t.TempDir(), "k.db")
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", db, "-admin-token", token}, &out, func(string) string { return "" })
	}()

	recorder := regexp.MustCompile(`Recorders poll: +(http://\S+)/api/unlock`)
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if m := recorder.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "Lecturer sign-in link") {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no banner after 10s; output so far:\n%s", out.String())
		} else {
			select {
			case err := <-done:
				t.Fatalf("run returned early: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	banner := out.String()
	if !strings.Contains(banner, base+"/lecturer?login=") || strings.Contains(banner, token) {
		t.Errorf("banner has no lecturer sign-in link, or shows the token:\n%s", banner)
	}
	if !strings.Contains(banner, base+"/j/") {
		t.Errorf("banner has no phone URL:\n%s", banner)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d; want 200", resp.StatusCode)
	}

	// A recorder listening for events while the kiosk stops must not hold
	// it up. The first event proves the handler is running.
	events, err := http.Get(base + "/api/unlock/events")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	sc := bufio.NewScanner(events.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of cancel")
	}
}

func TestEnvironmentToken(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{}, func(k string) string {
		if k == "KIOSK_ADMIN_TOKEN" {
			return "from-the-environment"
		}
		return ""
	})
	if err != nil || o.adminToken != "from-the-environment" {
		t.Errorf("parseFlags with KIOSK_ADMIN_TOKEN = %+v, %v", o, err)
	}
	o, _ = parseFlags([]string{"-admin-token", "flag-wins"}, &bytes.Buffer{}, func(string) string { return "env" })
	if o.adminToken != "flag-wins" {
		t.Errorf("flag did not override the environment: %q", o.adminToken)
	}
}

func TestRetentionFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 180 * 24 * time.Hour},
		{[]string{"-retention", "30d"}, 30 * 24 * time.Hour},
		{[]string{"-retention", "48h"}, 48 * time.Hour},
	} {
		o, err := parseFlags(tt.args, &bytes.Buffer{}, func(string) string { return "" })
		if err != nil || o.retention != tt.want {
			t.Errorf("parseFlags(%q) retention = %v, %v; want %v", tt.args, o.retention, err, tt.want)
		}
	}
}

func TestFaultRetryFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, tally.DefaultFaultRetry},
		{[]string{"-fault-retry", "50ms"}, 50 * time.Millisecond},
		{[]string{"-fault-retry", "10ms"}, 10 * time.Millisecond},
		{[]string{"-fault-retry", "1m"}, time.Minute},
	} {
		o, err := parseFlags(tt.args, &bytes.Buffer{}, func(string) string { return "" })
		if err != nil || o.faultRetry != tt.want {
			t.Errorf("parseFlags(%q) fault retry = %v, %v; want %v", tt.args, o.faultRetry, err, tt.want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-public-url", "kiosk.local"},
		{"-max-phones", "0"},
		{"-retention", "30m"},
		{"-retention", "0d"},
		{"-retention", "a while"},
		{"-fault-retry", "0"},
		{"-fault-retry", "-2s"},
		{"-fault-retry", "9ms"},
		{"-fault-retry", "61s"},
		{"-fault-retry", "2"},
		{"stray"},
		{"-relay", "https://relay.example.no"}, // no token
		{"-relay", "relay.example.no", "-relay-token", "t"},
		{"-relay", "https://relay.example.no/some/path", "-relay-token", "t"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}, func(string) string { return "" }); err == nil {
			t.Errorf("parseFlags(%q) = nil error", args)
		}
	}
}

func TestBadRelayFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-token", "short"},
		{"-token", "0123456789abcdef0123", "-addr", ":8443"}, // public, no TLS
		{"-token", "0123456789abcdef0123", "-addr", ":8443", "-tls-cert", "c.pem"},
		{"-token", "0123456789abcdef0123", "-acme-host", "r.example.no", "-tls-cert", "c", "-tls-key", "k"},
		{"-token", "0123456789abcdef0123", "-addr", "127.0.0.1:1", "stray"},
	} {
		if _, err := parseRelayFlags(args, &bytes.Buffer{}, func(string) string { return "" }); err == nil {
			t.Errorf("parseRelayFlags(%q) = nil error", args)
		}
	}
	o, err := parseRelayFlags([]string{"-addr", "127.0.0.1:8443"}, &bytes.Buffer{}, func(k string) string {
		if k == "KIOSK_RELAY_TOKEN" {
			return "0123456789abcdef0123"
		}
		return ""
	})
	if err != nil || o.token != "0123456789abcdef0123" {
		t.Errorf("relay on loopback with KIOSK_RELAY_TOKEN = %+v, %v; want that token", o, err)
	}
}

func TestDefaultPublicURL(t *testing.T) {
	if got := defaultPublicURL("http", &net.TCPAddr{Port: 8080}, "127.0.0.1:8080"); got != "http://127.0.0.1:8080" {
		t.Errorf("explicit host: %s", got)
	}
	got := defaultPublicURL("http", &net.TCPAddr{Port: 9000}, ":9000")
	if !strings.HasPrefix(got, "http://") || !strings.HasSuffix(got, ":9000") || strings.Contains(got, "0.0.0.0") {
		t.Errorf("unspecified host: %s; want the LAN address and port 9000", got)
	}
}
