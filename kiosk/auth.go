package kiosk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// lecturerCookie names the cookie of a signed-in lecturer browser. Its value
// is a random secret of its own, new at each sign-in; the kiosk keeps only
// its SHA-256, so neither the token nor the database can produce one.
const lecturerCookie = "kiosk_lecturer"

const (
	// loginLinkLife: long enough to open the link on the laptop, or to
	// copy it onto a tablet by hand; short enough that a link left unused
	// in the terminal's scrollback, or photographed off a mirrored
	// projector, is dead before the lecture is under way. A link also dies
	// at its first use.
	loginLinkLife = 10 * time.Minute
	// sessionLife: a teaching day, so the lecturer signs in once a day,
	// and a browser left signed in (a lab machine, a lost tablet) stops
	// working by the next morning. Closing the session ends it sooner.
	sessionLife = 12 * time.Hour
	// maxLoginLinks bounds the unused links held in memory: a script that
	// asks for links in a loop cannot grow the kiosk, and the oldest link
	// gives way to the newest.
	maxLoginLinks = 16
	// maxLecturerSessions bounds signed-in lecturer browsers; far more
	// than the few devices a lecturer uses, so hitting it means something
	// is wrong, and signing out the others is the answer.
	maxLecturerSessions = 64
	// secretLen: 256 random bits for links and cookies, beyond guessing.
	secretLen = 32
)

var (
	errLinkUsed      = fmt.Errorf("%w: this sign-in link was used already or has expired", errUnauthorized)
	errTooManyLogins = fmt.Errorf("%w: too many signed-in lecturer devices; sign out the others first", errBadMessage)
	errNoSession     = fmt.Errorf("%w: this request is not from a signed-in browser; a bearer token has no session to end", errBadMessage)
)

// lecturerAuth checks the lecturer: a bearer token (scripts, recorders) or
// the cookie of a browser signed in through a single-use login link.
// Sessions are kept in memory for the check and in the store so that a
// restart of the kiosk does not sign the lecturer's console out.
type lecturerAuth struct {
	tokenHash [sha256.Size]byte
	store     *tally.Store
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	links    map[[sha256.Size]byte]loginLink // unused login links
	linkSeq  uint64                          // orders links, oldest first
	sessions map[[sha256.Size]byte]time.Time // session cookies → expiry
	changed  chan struct{}                   // closed when sessions change
}

// loginLink is an unused login link: when it expires, and its place in
// the order links were made.
type loginLink struct {
	expires time.Time
	seq     uint64
}

// newLecturerAuth loads the stored sessions. If they cannot be read, no
// browser is signed in: the lecturer signs in again, which is safe.
func newLecturerAuth(token string, store *tally.Store, now func() time.Time, log *slog.Logger) *lecturerAuth {
	a := &lecturerAuth{
		tokenHash: sha256.Sum256([]byte(token)),
		store:     store,
		now:       now,
		log:       log,
		links:     map[[sha256.Size]byte]loginLink{},
		sessions:  map[[sha256.Size]byte]time.Time{},
		changed:   make(chan struct{}),
	}
	stored, err := store.LecturerSessions(context.Background(), now())
	if err != nil {
		log.Error("lecturer sessions could not be read; every lecturer browser must sign in again", "err", err)
	}
	for _, ls := range stored {
		a.sessions[ls.Hash] = ls.Expires
	}
	return a
}

// tokenOK compares in constant time; hashing first hides the token's length.
func (a *lecturerAuth) tokenOK(token string) bool {
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1
}

// bearer reports whether r carries the lecturer token as a bearer token.
func (a *lecturerAuth) bearer(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && a.tokenOK(strings.TrimSpace(token))
}

// session returns the hash of r's session cookie, if it names a session
// that has not ended. The map is keyed by a hash of the secret, so the
// lookup does not reveal the secret through timing.
func (a *lecturerAuth) session(r *http.Request) ([sha256.Size]byte, bool) {
	c, err := r.Cookie(lecturerCookie)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	h := sha256.Sum256([]byte(c.Value))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[h]
	if !ok {
		return h, false
	}
	if !a.now().Before(exp) {
		// The row goes at the next start; the check here is what counts.
		delete(a.sessions, h)
		a.changedLocked()
		return h, false
	}
	return h, true
}

// authorized reports whether r is the lecturer's. A request that gives an
// Authorization header is judged by it alone.
func (a *lecturerAuth) authorized(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return a.bearer(r)
	}
	_, ok := a.session(r)
	return ok
}

// newLink returns a new single-use login secret and when it expires.
func (a *lecturerAuth) newLink() (string, time.Time) {
	secret := randomSecret()
	now := a.now()
	exp := now.Add(loginLinkLife)
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, l := range a.links {
		if !now.Before(l.expires) {
			delete(a.links, h)
		}
	}
	for len(a.links) >= maxLoginLinks {
		var oldest [sha256.Size]byte
		seq := ^uint64(0)
		for h, l := range a.links {
			if l.seq < seq {
				oldest, seq = h, l.seq
			}
		}
		delete(a.links, oldest)
	}
	a.linkSeq++
	a.links[sha256.Sum256([]byte(secret))] = loginLink{expires: exp, seq: a.linkSeq}
	return secret, exp
}

// login spends the login secret and starts a session: it returns the new
// cookie's value and expiry. The link is spent even if the session cannot
// be stored, so that no link ever works twice.
func (a *lecturerAuth) login(ctx context.Context, secret string) (string, time.Time, error) {
	h := sha256.Sum256([]byte(secret))
	now := a.now()
	a.mu.Lock()
	link, ok := a.links[h]
	delete(a.links, h)
	for s, e := range a.sessions {
		if !now.Before(e) {
			delete(a.sessions, s)
		}
	}
	full := len(a.sessions) >= maxLecturerSessions
	a.mu.Unlock()
	if !ok || !now.Before(link.expires) {
		return "", time.Time{}, errLinkUsed
	}
	if full {
		return "", time.Time{}, errTooManyLogins
	}
	cookie := randomSecret()
	ls := tally.LecturerSession{Hash: sha256.Sum256([]byte(cookie)), Expires: now.Add(sessionLife)}
	if err := a.store.AddLecturerSession(ctx, ls); err != nil {
		return "", time.Time{}, err
	}
	a.mu.Lock()
	a.sessions[ls.Hash] = ls.Expires
	a.changedLocked()
	a.mu.Unlock()
	return cookie, ls.Expires, nil
}

// end ends the sessions chosen: only keep's others (keep non-nil and all
// false), keep's own (all false, keep's session), or every one (all).
// Memory goes first, so the sessions stop working even if the disk then
// fails; unused login links go too when others are signed out, since one
// may have been seen where the others were.
func (a *lecturerAuth) end(ctx context.Context, h [sha256.Size]byte, others bool) error {
	a.mu.Lock()
	if others {
		for s := range a.sessions {
			if s != h {
				delete(a.sessions, s)
			}
		}
		clear(a.links)
	} else {
		delete(a.sessions, h)
	}
	a.changedLocked()
	a.mu.Unlock()
	if others {
		return a.store.EndLecturerSessions(ctx, &h)
	}
	return a.store.EndLecturerSession(ctx, h)
}

// endAll ends every lecturer session and every unused login link.
func (a *lecturerAuth) endAll(ctx context.Context) error {
	a.mu.Lock()
	clear(a.sessions)
	clear(a.links)
	a.changedLocked()
	a.mu.Unlock()
	return a.store.EndLecturerSessions(ctx, nil)
}

// devices returns how many lecturer browsers are signed in, and a channel
// closed when that may have changed.
func (a *lecturerAuth) devices() (int, <-chan struct{}) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.sessions {
		if now.Before(e) {
			n++
		}
	}
	return n, a.changed
}

func (a *lecturerAuth) changedLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func randomSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LoginLink returns a new single-use link that signs a browser in as the
// lecturer, and when it expires. This is what the terminal prints.
func (s *Server) LoginLink() (string, time.Time) {
	secret, exp := s.auth.newLink()
	return s.publicURL + "/lecturer?login=" + secret, exp
}

// loginLinkAnswer is the body of GET /api/login-link.
type loginLinkAnswer struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

// handleLoginLink gives a script holding the bearer token a fresh login
// link, for a browser it opens. A signed-in browser cannot mint links: a
// session that was signed out must not have left itself a way back in.
func (s *Server) handleLoginLink(w http.ResponseWriter, r *http.Request) {
	if !s.auth.bearer(r) {
		writeError(w, r, s.log, errUnauthorized)
		return
	}
	u, exp := s.LoginLink()
	writeJSON(w, http.StatusOK, loginLinkAnswer{URL: u, ExpiresAt: exp.UTC().Format(time.RFC3339)})
}

// handleLecturerLogin spends a login link: the browser gets a session cookie
// of its own and goes on to the projector page, so the link leaves the
// address bar before the page is projected.
func (s *Server) handleLecturerLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		// A link preview looking before the lecturer does must not spend it.
		return
	}
	cookie, exp, err := s.auth.login(r.Context(), r.URL.Query().Get("login"))
	if err != nil {
		e := classify(err)
		if e.status == http.StatusInternalServerError {
			s.log.Error("lecturer sign-in failed", "err", err)
		}
		why := "This sign-in link does not work: each link works once, for 10 minutes. Press Enter in the kiosk's terminal for a new one."
		switch {
		case errors.Is(err, errTooManyLogins):
			why = "Too many devices are signed in. Sign out every other device from one of them, then use a new link."
		case e.status >= 500:
			why = "The kiosk could not save the sign-in. Press Enter in the kiosk's terminal for a new link and try again in a moment."
		}
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `<!doctype html><html lang="en"><meta charset="utf-8"><title>Consent kiosk</title><p>%s</p></html>`, why)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     lecturerCookie,
		Value:    cookie,
		Path:     "/",
		MaxAge:   int(exp.Sub(s.now()) / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	// A page, not a redirect: a browser that came here from another
	// application treats a redirect as cross-site and would withhold the
	// SameSite=Strict cookie from the next request.
	fmt.Fprint(w, `<!doctype html><html lang="en"><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console"><title>Consent kiosk</title><p><a href="/console">Open the console</a></p></html>`)
}

// logoutAnswer is the body of POST /api/logout and /api/logout/others.
type logoutAnswer struct {
	LecturerDevices int `json:"lecturer_devices"`
}

// handleLogout ends the session of the browser that asks.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	h, ok := s.auth.session(r)
	if !ok {
		writeError(w, r, s.log, errNoSession)
		return
	}
	err := s.auth.end(r.Context(), h, false)
	s.answerLogout(w, r, true, err)
}

// handleLogoutOthers ends every lecturer session but the asking browser's;
// with the bearer token, every browser's.
func (s *Server) handleLogoutOthers(w http.ResponseWriter, r *http.Request) {
	var err error
	if h, ok := s.auth.session(r); ok && r.Header.Get("Authorization") == "" {
		err = s.auth.end(r.Context(), h, true)
	} else {
		err = s.auth.endAll(r.Context())
	}
	s.answerLogout(w, r, false, err)
}

// answerLogout answers a sign-out. The sessions ended in memory whatever
// err says; err only means the disk may still list them until they expire.
func (s *Server) answerLogout(w http.ResponseWriter, r *http.Request, clearCookie bool, err error) {
	if clearCookie {
		http.SetCookie(w, &http.Cookie{Name: lecturerCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	n, _ := s.auth.devices()
	writeJSON(w, http.StatusOK, logoutAnswer{LecturerDevices: n})
}

// sameOrigin reports whether a browser request comes from one of the
// kiosk's own pages. Requests without an Origin header (curl, recorders)
// carry no ambient credentials worth forging, so they pass; a bearer token
// is still required of them.
func sameOrigin(r *http.Request, publicHost string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || (publicHost != "" && strings.EqualFold(u.Host, publicHost))
}
