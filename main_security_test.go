package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSlowLorisIsCutOff sends half a request header and nothing more to
// the kiosk's real http.Server configuration: the server must hang up
// within its header timeout, not wait for ever.
func TestSlowLorisIsCutOff(t *testing.T) {
	t.Parallel()
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: kiosk\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// The test's own bound is twice the server's, so a server that never
	// hangs up fails the test instead of hanging it.
	conn.SetReadDeadline(time.Now().Add(2 * srv.ReadHeaderTimeout))
	_, err = io.ReadAll(conn)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("server still holds a half-sent request after %v; want it closed within %v", took, srv.ReadHeaderTimeout)
	}
	if took < srv.ReadHeaderTimeout/2 {
		t.Errorf("server hung up after %v; want it to wait about %v for headers", took, srv.ReadHeaderTimeout)
	}
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout, "WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		if d <= 0 || d > time.Minute {
			t.Errorf("%s = %v; want a bound of at most a minute", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d; want a small bound", srv.MaxHeaderBytes)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kiosk test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS runs the kiosk with -tls-cert and -tls-key: it serves HTTPS only,
// prints https URLs, and marks the lecturer cookie Secure.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	const token = "a-token-for-the-tls-test-012345"
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", filepath.Join(t.TempDir(), "k.db"),
			"-admin-token", token, "-tls-cert", certFile, "-tls-key", keyFile}, &out, func(string) string { return "" })
	}()
	base := waitBanner(t, &out, done)
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("recorder URL base %q; want https://127.0.0.1:…", base)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(loginLinkIn(t, out.String()))
	if err != nil {
		t.Fatalf("GET /lecturer over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Errorf("lecturer login over TLS = %d, cookies %v; want 200 and one Secure cookie", resp.StatusCode, resp.Cookies())
	}
	// Plain HTTP on the TLS port gets no kiosk answer.
	if resp, err := http.Get(strings.Replace(base, "https", "http", 1) + "/api/unlock"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "unlocked") {
			t.Errorf("plain HTTP on the TLS port answered %s", body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v; want nil after cancel", err)
	}
}

func TestTLSFlagsGoTogether(t *testing.T) {
	for _, args := range [][]string{{"-tls-cert", "c.pem"}, {"-tls-key", "k.pem"}} {
		if _, err := parseFlags(args, io.Discard, func(string) string { return "" }); err == nil {
			t.Errorf("parseFlags(%q) = nil error; want one", args)
		}
	}
}

// TestRandomTokenIs128Bits: the token made when none is given carries at
// least 128 bits and differs each time.
func TestRandomTokenIs128Bits(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := randomToken()
		if len(tok)*6 < 128 || !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(tok) {
			t.Fatalf("randomToken() = %q; want at least 128 bits of base64url", tok)
		}
		if seen[tok] {
			t.Fatalf("randomToken() repeated %q", tok)
		}
		seen[tok] = true
	}
}

// waitBanner waits for run's banner and returns the base URL it prints.
func waitBanner(t *testing.T, out *syncBuffer, done <-chan error) string {
	t.Helper()
	recorder := regexp.MustCompile(`Recorders poll: +(https?://\S+)/api/unlock`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := recorder.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner after 10s; output so far:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
