package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// The namespaces of TestRelayAcrossNamespaces: the kiosk and the phones
// each reach the relay's address 10.231.0.1, and nothing else; the relay
// does not forward, so phones cannot reach the kiosk at all, as on a
// campus network that keeps devices apart.
const (
	nsRelayAddr = "10.231.0.1"
	nsKioskLink = "10.231.1" // kiosk–relay link: .1 relay, .2 kiosk
	nsPhoneLink = "10.231.2" // phone–relay link: .1 relay, .2 phone
)

// netns is a set of network namespaces made for one test.
type netns struct {
	t                   testing.TB
	relay, kiosk, phone string
}

func sh(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns makes the three namespaces and their links, or skips the test
// (fails it under KIOSK_REQUIRE_NETNS=1) where that cannot be done.
func newNetns(t *testing.T) *netns {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("KIOSK_REQUIRE_NETNS") != "" {
			t.Fatalf("KIOSK_REQUIRE_NETNS is set, but %s", why)
		}
		t.Skipf("skipping: %s (set KIOSK_REQUIRE_NETNS=1 to fail instead)", why)
	}
	if os.Geteuid() != 0 {
		skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("the ip command (iproute2) is not installed")
	}
	id := fmt.Sprint(os.Getpid() % 100000)
	n := &netns{t: t, relay: "ckr" + id, kiosk: "ckk" + id, phone: "ckp" + id}
	for _, ns := range []string{n.relay, n.kiosk, n.phone} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			skip(fmt.Sprintf("ip netns add: %v: %s", err, out))
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	veth := func(a, b, nsA, nsB, net string) {
		sh(t, "ip", "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB)
		sh(t, "ip", "-n", nsA, "addr", "add", net+".1/24", "dev", a)
		sh(t, "ip", "-n", nsB, "addr", "add", net+".2/24", "dev", b)
		sh(t, "ip", "-n", nsA, "link", "set", a, "up")
		sh(t, "ip", "-n", nsB, "link", "set", b, "up")
		sh(t, "ip", "-n", nsB, "route", "add", nsRelayAddr+"/32", "via", net+".1")
	}
	veth("rk"+id, "kr"+id, n.relay, n.kiosk, nsKioskLink)
	veth("rp"+id, "pr"+id, n.relay, n.phone, nsPhoneLink)
	sh(t, "ip", "-n", n.relay, "addr", "add", nsRelayAddr+"/32", "dev", "lo")
	sh(t, "ip", "netns", "exec", n.relay, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	return n
}

// dialIn opens a TCP connection from inside namespace ns: the socket is
// made on a thread that has entered ns, and stays there.
func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is never unlocked, so it ends with this goroutine
		// and no other goroutine runs in ns.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// clientIn is an HTTP client whose connections start inside ns.
func clientIn(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialIn(ctx, ns, addr) },
	}}
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startIn runs the kiosk binary in ns with args; it is killed at the end.
func startIn(t *testing.T, bin, ns string, out io.Writer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestRelayAcrossNamespaces: kiosk, relay and phones in three network
// namespaces, with routes only phone→relay and kiosk→relay. Phones join
// through the relay, consent and withdraw, and the recorder on the
// laptop sees unlock and lock; a link to the relay that goes dead without
// a word locks the kiosk within 2 s, and everything recovers unaided.
func TestRelayAcrossNamespaces(t *testing.T) {
	n := newNetns(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "consent-kiosk")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const token, admin = "relay-token-for-the-netns-test-0123", "lecturer-token-for-the-netns-test-01"
	relayURL := "http://" + nsRelayAddr + ":8443"
	relayOut, kioskOut := &lockedBuffer{}, &lockedBuffer{}
	startIn(t, bin, n.relay, relayOut, "relay", "-addr", nsRelayAddr+":8443", "-plain-http", "-token", token)
	startIn(t, bin, n.kiosk, kioskOut, "-addr", ":8080", "-data", filepath.Join(dir, "kiosk.db"), "-admin-token", admin,
		"-relay", relayURL, "-relay-token", token)

	lecturer := clientIn(n.kiosk)
	api := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://127.0.0.1:8080"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := lecturer.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	wait := func(within time.Duration, what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v\nkiosk:\n%s\nrelay:\n%s", what, within, kioskOut, relayOut)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	connected := func() bool {
		_, m := api("GET", "/api/state", "")
		r, _ := m["relay"].(map[string]any)
		return r != nil && r["connected"] == true
	}
	unlock := func() (int, string) {
		status, m := api("GET", "/api/unlock", "")
		reason, _ := m["reason"].(string)
		return status, reason
	}
	wait(30*time.Second, "kiosk serves and reaches the relay", connected)
	api("POST", "/api/round", `{"purpose":"Lecture video for enrolled students"}`)
	api("POST", "/api/headcount", `{"headcount":3}`)
	_, j := api("GET", "/api/join", "")
	join, _ := j["url"].(string)
	if !strings.HasPrefix(join, relayURL+"/r/") {
		t.Fatalf("join URL %q is not on the relay", join)
	}
	prefix := join[:strings.LastIndex(join, "/j/")]

	// Phones cannot reach the kiosk; they can reach the relay.
	if c, err := dialIn(context.Background(), n.phone, nsKioskLink+".2:8080"); err == nil {
		c.Close()
		t.Fatal("a phone reached the kiosk directly: the namespaces do not keep them apart")
	}
	phoneHTTP := clientIn(n.phone)
	resp, err := phoneHTTP.Get(join)
	if err != nil {
		t.Fatalf("phone loads its page through the relay: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte("phone.js")) {
		t.Fatalf("phone page through the relay = %d", resp.StatusCode)
	}

	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialIn(ctx, n.phone, addr) }}
	type phone struct {
		conn   *websocket.Conn
		device string
	}
	expect := func(p *phone, typ string) map[string]any {
		t.Helper()
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m map[string]any
			if err := p.conn.ReadJSON(&m); err != nil {
				t.Fatalf("phone waits for %q: %v", typ, err)
			}
			if m["type"] == typ {
				return m
			}
			if m["type"] == "error" {
				t.Fatalf("phone waits for %q, got %v", typ, m)
			}
		}
	}
	connect := func(device, joinToken string) (*phone, error) {
		h := http.Header{}
		h.Set("Origin", relayURL)
		h.Set("User-Agent", "NetnsPhone/1.0")
		c, _, err := dialer.Dial("ws"+strings.TrimPrefix(prefix, "http")+"/ws", h)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		p := &phone{c, device}
		p.conn.WriteJSON(map[string]string{"type": "hello", "join": joinToken, "device": device})
		expect(p, "ack")
		return p, nil
	}
	slip := func(p *phone, choice string) {
		t.Helper()
		p.conn.WriteJSON(map[string]string{"type": "slip", "choice": choice})
		if ack := expect(p, "ack"); ack["choice"] != choice {
			t.Fatalf("ack %v; want %q", ack, choice)
		}
	}
	joinToken := join[strings.LastIndex(join, "/j/")+3:]
	var phones []*phone
	for i := range 3 {
		p, err := connect(strings.Repeat(fmt.Sprint(i), 32), joinToken)
		if err != nil {
			t.Fatalf("phone %d dials through the relay: %v", i, err)
		}
		phones = append(phones, p)
	}
	for _, p := range phones {
		slip(p, "consent")
	}
	if status, _ := unlock(); status != http.StatusOK {
		t.Fatalf("all three consent: /api/unlock = %d; want 200", status)
	}
	slip(phones[1], "none")
	if status, reason := unlock(); status != http.StatusLocked || reason != "waiting" {
		t.Fatalf("after a withdrawal: /api/unlock = %d %q; want 423 waiting", status, reason)
	}
	slip(phones[1], "consent")
	if status, _ := unlock(); status != http.StatusOK {
		t.Fatalf("consent again: /api/unlock = %d; want 200", status)
	}

	// The kiosk's link to the relay goes dead without a word (no FIN, no
	// RST): only the keepalive can notice.
	sh(t, "ip", "-n", n.kiosk, "link", "set", "kr"+n.kiosk[3:], "down")
	took := wait(2*time.Second, "locked unreachable after the link died", func() bool {
		status, reason := unlock()
		return status == http.StatusLocked && reason == "unreachable"
	})
	t.Logf("locked %v after the link went dead", took)
	sh(t, "ip", "-n", n.kiosk, "link", "set", "kr"+n.kiosk[3:], "up")
	sh(t, "ip", "-n", n.kiosk, "route", "replace", nsRelayAddr+"/32", "via", nsKioskLink+".1")
	wait(20*time.Second, "kiosk reaches the relay again", connected)

	// The phones' pages reconnect and resend their slips.
	for _, p := range phones {
		var q *phone
		wait(10*time.Second, "phone reconnects", func() bool {
			var err error
			q, err = connect(p.device, "")
			return err == nil
		})
		slip(q, "consent")
	}
	wait(2*time.Second, "unlocked again", func() bool { status, _ := unlock(); return status == http.StatusOK })

	// Nothing of the phones is in the relay's output.
	logs := relayOut.String()
	for _, secret := range []string{nsPhoneLink + ".2", "NetnsPhone", strings.Repeat("1", 32), "consent"} {
		if strings.Contains(logs, secret) {
			t.Errorf("relay output holds %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "room opened") {
		t.Errorf("relay output %q lacks its room lines: the check above saw nothing", logs)
	}
}
