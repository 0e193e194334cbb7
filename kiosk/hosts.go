package kiosk

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/consent-kiosk/kiosk/relay"
	"github.com/consent-kiosk/kiosk/tally"
)

// hostNames is the set of names the kiosk answers to. A DNS-rebinding page
// makes a name of its own resolve to the kiosk; the browser then sends that
// name as Host and as its Origin, which therefore proves nothing by itself.
// Refusing every request whose Host is not one of the kiosk's names closes
// that door for every path, the phones' included.
type hostNames map[string]bool

// newHostNames returns the allowed names among urls and hosts (each a URL,
// a host:port or a bare host).
func newHostNames(names ...string) hostNames {
	h := hostNames{}
	for _, n := range names {
		if strings.Contains(n, "://") {
			u, err := url.Parse(n)
			if err != nil {
				continue
			}
			n = u.Host
		}
		if n = hostname(n); n != "" {
			h[n] = true
		}
	}
	return h
}

// hostname is a Host header's name without port, brackets, case or
// trailing dot.
func hostname(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.ToLower(h)
}

// allows reports whether a direct (not relayed) request may name host.
// Loopback names are always the kiosk's. So is an address written as an IP:
// rebinding needs a name the attacker controls, and a page can only have
// an IP as its origin if the user went to that address.
func (h hostNames) allows(host string) bool {
	n := hostname(host)
	switch {
	case n == "":
		return false
	case net.ParseIP(n) != nil:
		return true
	case n == "localhost" || strings.HasSuffix(n, ".localhost"):
		return true
	}
	return h[n]
}

type relayedKey struct{}

// isRelayed reports whether r came through the kiosk's relay.
func isRelayed(r *http.Request) bool { return r.Context().Value(relayedKey{}) != nil }

// RelayHandler serves the phones' requests that arrive through the relay
// (on the streams of its session). They must name the relay's host and
// nothing else, and only phone paths are served: the relay refuses the
// rest already, and the kiosk does not rely on it.
func (s *Server) RelayHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !relay.PhonePath(r.Method, r.URL.Path) {
			writeError(w, r, s.log, errNotRelayed)
			return
		}
		s.handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), relayedKey{}, true)))
	})
}

// checkHost refuses requests that do not name the kiosk (see hostNames).
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := s.hosts.allows(r.Host)
		if isRelayed(r) {
			ok = s.relayHost != "" && hostname(r.Host) == s.relayHost
		}
		if !ok {
			writeError(w, r, s.log, errBadHost)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// originHost is the host the kiosk's own pages are served from for r: the
// relay's for a relayed request, the public URL's otherwise.
func (s *Server) originHost(r *http.Request) string {
	if isRelayed(r) {
		return s.relayHostPort
	}
	return s.publicHost
}

// prefix is what comes before a phone path in the address phones used:
// the room's path on the relay, or nothing.
func (s *Server) prefix(r *http.Request) string {
	if isRelayed(r) {
		return s.phonePath
	}
	return ""
}

// SetRelayConnected records whether the relay link is up, for /api/state.
func (s *Server) SetRelayConnected(connected bool) { s.relayUp.Store(connected) }

// noPhonesAfter is how long a round may run without a single phone before
// the kiosk suspects that phones cannot reach it: a hall scans the QR code
// within a minute of being asked.
const noPhonesAfter = 2 * time.Minute

// HintNoPhonesJoined: no phone has joined although the round has been open
// for a while, which on a LAN most often means the network keeps phones
// from reaching the laptop (client isolation, a hotspot's device limit).
const HintNoPhonesJoined = "no-phones-joined"

// Hints returns the codes of advice for st that the pages explain.
func (s *Server) Hints(st tally.State) []string {
	hints := []string{}
	if s.relayHost == "" && st.Round.Purpose != "" && st.Round.Mode != tally.ModeLecturerOnly &&
		!st.Closed && st.Issued == 0 && !st.Round.OpenedAt.IsZero() && s.now().Sub(st.Round.OpenedAt) >= noPhonesAfter {
		hints = append(hints, HintNoPhonesJoined)
	}
	return hints
}
