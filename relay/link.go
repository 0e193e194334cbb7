package relay

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

const (
	// The kiosk must lock within 2 s of losing the relay (phones could no
	// longer withdraw). A closed connection is noticed at once; a link cut
	// without a word only by a ping that goes unanswered. The kiosk pings
	// every pingEvery and locks when an answer is lockAfter late: at most
	// 0.25 s + 1.25 s after the link died. A late answer unlocks again; the
	// session is dropped only when no answer comes within dropAfter, so a
	// kiosk busy with a full hall locks for a moment rather than losing
	// every phone.
	pingEvery = 250 * time.Millisecond
	lockAfter = 1250 * time.Millisecond
	dropAfter = 10 * time.Second
	// minBackoff and maxBackoff bound the wait between tries to reach the
	// relay: soon enough that phones hardly notice a relay restart, rare
	// enough that a hall of kiosks does not hammer a relay that is down.
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// ErrToken means the relay refused the kiosk's relay token.
var ErrToken = errors.New("the relay refused the relay token")

// Link is the kiosk's end of a relay: it keeps one session open to the
// relay, and serves the phones' requests that arrive on it.
type Link struct {
	// URL is the relay's base URL, http(s)://host[:port], without a slash
	// at the end.
	URL   string
	Token string
	// Key is the room key (at least RoomKeyLen bytes). Keeping it across
	// restarts keeps the room's address, so phones find the kiosk again.
	Key    []byte
	Logger *slog.Logger
}

// ParseURL checks a relay URL and returns it without a trailing slash.
func ParseURL(s string) (string, error) {
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
		return "", fmt.Errorf("-relay must be a base URL like https://relay.example.no")
	}
	return s, nil
}

// RoomURL is the base URL phones reach the kiosk at through the relay.
func (l *Link) RoomURL() string { return l.URL + "/r/" + RoomID(l.Key) }

// Host is the relay's host as phones name it.
func (l *Link) Host() string {
	u, _ := url.Parse(l.URL)
	return u.Host
}

// Dial registers the room and returns the session the relay opens phones'
// streams on. Its Accept is a net.Listener's.
func (l *Link) Dial(ctx context.Context) (*yamux.Session, error) {
	u := "ws" + strings.TrimPrefix(l.URL, "http") + "/register/" + RoomID(l.Key)
	h := http.Header{}
	h.Set("Authorization", "Bearer "+l.Token)
	h.Set(HeaderRoomKey, base64.RawURLEncoding.EncodeToString(l.Key))
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	ws, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, ErrToken
		}
		if resp != nil {
			return nil, fmt.Errorf("%w: %s", errRefused, resp.Status)
		}
		return nil, err
	}
	cfg := MuxConfig(dropAfter, dropAfter)
	cfg.EnableKeepAlive = false // watch pings instead, see pingEvery
	sess, err := yamux.Server(newWSConn(ws), cfg)
	if err != nil {
		ws.Close()
		return nil, err
	}
	return sess, nil
}

// Run keeps the link up until ctx is done: it dials, serves the session
// with serve (an http.Server's Serve), and dials again with backoff when
// the session ends. report is told each change of connected, first false.
func (l *Link) Run(ctx context.Context, serve func(net.Listener) error, report func(connected bool)) {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	report(false)
	backoff := minBackoff
	for ctx.Err() == nil {
		sess, err := l.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("cannot reach the relay; phones cannot join or withdraw, so the kiosk stays locked", "relay", l.URL, "err", err, "retry_in", backoff.Round(time.Millisecond))
			select {
			case <-time.After(jitter(backoff)):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		up := time.Now()
		report(true)
		log.Info("relay connected", "relay", l.URL)
		served := make(chan struct{})
		go func() { serve(sess); close(served) }()
		watchCtx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() { watch(watchCtx, sess, report, log); close(watched) }()
		select {
		case <-sess.CloseChan():
		case <-ctx.Done():
			sess.Close()
		}
		stopWatch()
		<-watched
		report(false)
		<-served
		if ctx.Err() != nil {
			return
		}
		log.Warn("lost the relay; the kiosk is locked until it is back", "relay", l.URL)
		if time.Since(up) > maxBackoff {
			backoff = minBackoff
		}
	}
}

// watch pings the relay every pingEvery until ctx is done, reporting the
// link down while an answer is lockAfter late and up again when it comes.
// A ping unanswered within dropAfter (yamux's timeout) closes the session.
func watch(ctx context.Context, sess *yamux.Session, report func(bool), log *slog.Logger) {
	up := true
	for {
		pong := make(chan error, 1)
		go func() { _, err := sess.Ping(); pong <- err }()
		late := time.NewTimer(lockAfter)
		var err error
		select {
		case err = <-pong:
		case <-late.C:
			if up {
				up = false
				report(false)
				log.Warn("the relay answers late; locked until it answers", "after", lockAfter)
			}
			select {
			case err = <-pong:
			case <-ctx.Done():
				late.Stop()
				return
			}
		case <-ctx.Done():
			late.Stop()
			return
		}
		late.Stop()
		if err != nil {
			sess.Close()
			return
		}
		if !up {
			up = true
			report(true)
		}
		select {
		case <-time.After(pingEvery):
		case <-ctx.Done():
			return
		}
	}
}

// jitter spreads reconnections of many kiosks after a relay restart.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
