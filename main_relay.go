package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/consent-kiosk/kiosk/relay"
)

type relayOptions struct {
	addr      string
	token     string
	tlsCert   string
	tlsKey    string
	acmeHost  string
	acmeCache string
	plainHTTP bool
}

func parseRelayFlags(args []string, stderr io.Writer, getenv func(string) string) (relayOptions, error) {
	var o relayOptions
	fs := flag.NewFlagSet("consent-kiosk relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":443", "listen address `HOST:PORT`")
	fs.StringVar(&o.token, "token", "", "the `TOKEN` kiosks must present to register a room (default: $KIOSK_RELAY_TOKEN)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM, full chain; needs -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private key `FILE` for -tls-cert (PEM)")
	fs.StringVar(&o.acmeHost, "acme-host", "", "get and renew a certificate for this `NAME` automatically (ACME TLS-ALPN on port 443)")
	fs.StringVar(&o.acmeCache, "acme-cache", "", "`DIR` where -acme-host keeps its certificate (default: consent-kiosk-relay in the user's cache directory)")
	fs.BoolVar(&o.plainHTTP, "plain-http", false, "serve plain HTTP on a non-loopback address, only behind a proxy that terminates TLS")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.token == "" {
		o.token = getenv("KIOSK_RELAY_TOKEN")
	}
	// The token is all that keeps strangers from using the relay as a free
	// tunnel; it is sent once per kiosk link, so length costs nothing.
	if len(o.token) < 16 {
		return o, errors.New("relay: -token (or KIOSK_RELAY_TOKEN) of at least 16 characters is required")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("relay: -tls-cert and -tls-key go together")
	}
	if o.tlsCert != "" && o.acmeHost != "" {
		return o, errors.New("relay: -acme-host or -tls-cert, not both")
	}
	if o.tlsCert == "" && o.acmeHost == "" && !o.plainHTTP && !loopbackAddr(o.addr) {
		return o, errors.New("relay: a public relay needs TLS (-tls-cert/-tls-key or -acme-host); plain HTTP only on loopback or with -plain-http behind a TLS proxy")
	}
	return o, nil
}

// loopbackAddr reports whether a listen address takes connections only
// from this machine.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runRelay serves a relay until ctx is done.
func runRelay(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	o, err := parseRelayFlags(args, os.Stderr, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var tlsConfig *tls.Config
	switch {
	case o.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("relay: -tls-cert/-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case o.acmeHost != "":
		if o.acmeCache == "" {
			dir, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("relay: no -acme-cache and no cache directory: %w", err)
			}
			o.acmeCache = dir + string(os.PathSeparator) + "consent-kiosk-relay"
		}
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(o.acmeHost),
			Cache:      autocert.DirCache(o.acmeCache),
		}
		tlsConfig = m.TLSConfig()
		tlsConfig.MinVersion = tls.VersionTLS12
	}

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	rl := relay.New(relay.Config{Token: o.token, Logger: log})
	srv := &http.Server{
		Handler: rl.Handler(),
		// Headers must come quickly (slow-loris). No read or write timeout:
		// they would stay on the connections of phones' websockets, which
		// last the lecture, and long-polls last a minute.
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          relay.ErrorLog(),
	}
	fmt.Fprintf(stdout, "Consent kiosk relay is running at %s://%s\n", scheme, ln.Addr())
	fmt.Fprintf(stdout, "Start kiosks with: -relay %s://HOST:PORT -relay-token TOKEN\n", scheme)

	defer rl.Close()
	// The rooms close first: their tunnels are what requests in flight wait on.
	return serveUntilDone(ctx, log, srv, ln, func(context.Context) { rl.Close() })
}
