// Package kiosk is the kiosk's face to the room: the HTTP API for the
// lecturer and recorders, the websocket for phones, the QR code, and the
// embedded pages. The rules themselves live in package tally.
package kiosk

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/consent-kiosk/kiosk/hooks"
	"github.com/consent-kiosk/kiosk/obs"
	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

const (
	// maxBody: no lecturer request is near this; larger bodies are refused
	// before they are read (contract).
	maxBody = 64 << 10
	// maxWait caps a long-poll, so that proxies and the server's own write
	// timeout never cut an answer off.
	maxWait = 60 * time.Second
	// codeRate and codeBurst limit typed join codes for the whole kiosk
	// (addresses are not kept, so there is no per-phone count): a hall of
	// 1,000 typing within a minute needs about 17 a second, and a guesser
	// gets no further than that either.
	codeRate  = 20
	codeBurst = 100
	// DefaultMaxPhones is the default cap on phone connections: five times
	// the largest hall, still well within one laptop's file descriptors.
	DefaultMaxPhones = 5000
)

// Config is what a Server needs.
type Config struct {
	Store      *tally.Store
	AdminToken string
	// PublicURL is the base URL phones reach the kiosk at; it goes into the
	// QR code. No trailing slash.
	PublicURL string
	// PhoneURL is the base URL phones join at, when that is not PublicURL:
	// the room's address on a relay (RELAY.md). Requests served by
	// RelayHandler must name its host.
	PhoneURL string
	// Hosts are more names the kiosk answers to besides PublicURL's host,
	// loopback names and IP addresses: its listen address and host names.
	Hosts []string
	// MaxPhones caps concurrent phone connections; 0 means DefaultMaxPhones.
	MaxPhones int
	// Recorder, when set, is a guard keeping recording software in line;
	// the projector page shows its status.
	Recorder RecorderGuard
	// HookStatus, when set, is the -on-lock and -on-unlock hooks' status;
	// /api/state shows its problem.
	HookStatus *hooks.Status
	Now        func() time.Time
	Logger     *slog.Logger
}

// RecorderGuard is a guard that keeps recording software in line with the
// kiosk, such as *obs.Guard.
type RecorderGuard interface {
	Changed() (obs.Status, <-chan struct{})
}

// Server serves the kiosk. Create it with New, serve Handler, and call Close
// after the HTTP server has shut down.
type Server struct {
	store      *tally.Store
	recorder   RecorderGuard // nil without a guard
	log        *slog.Logger
	auth       *lecturerAuth
	join       joinTokens
	hub        *hub
	publicURL  string
	publicHost string
	hosts      hostNames
	// phoneURL is where phones join; with a relay, relayHost is its
	// hostname, relayHostPort its host as phones write it, phonePath the
	// room's path on it, and relayUp whether the link is up.
	phoneURL      string
	phonePath     string
	relayHost     string
	relayHostPort string
	relayUp       atomic.Bool
	maxPhones     int
	lobbyMax      int // unjoined websockets at once (caps.go)
	lobby         lobby
	seats         *seats
	streams       atomic.Int64 // open event streams, at most streamMax
	limits        connLimits
	sealer        *seal.Sealer
	newPhones     *rate.Limiter // registrations of phones new to the session
	joins         joinGate      // the join limit
	hookStatus    *hooks.Status // nil without hooks
	upgrader      websocket.Upgrader
	codeLimit     *rate.Limiter
	// phoneLimits rate-limits phones on the HTTP fallback.
	phoneLimits *phoneLimits
	// httpSeals are the HTTP fallback's seal sessions (phoneseal.go).
	httpSeals *httpSeals
	handler   http.Handler
	now       func() time.Time

	ctx    context.Context // ends at Close; bounds work started by phones
	cancel context.CancelFunc

	assets assets // the embedded files, prepared to serve

	qrMu    sync.Mutex
	qrFor   string
	qrImage []byte
}

// sealSeed returns a new secret for the seal's key pair. It lives in this
// process's memory only and is new at each start: nothing on disk opens a
// sealed frame captured on the room's network, now or later. A phone page
// that was open across a restart gets the new public key with the seal
// message of its next connection.
func sealSeed() []byte {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		panic("kiosk: no randomness for the seal's key: " + err.Error())
	}
	return seed
}

// New returns a Server and starts its websocket hub.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPhones == 0 {
		cfg.MaxPhones = DefaultMaxPhones
	}
	s := &Server{
		store:      cfg.Store,
		recorder:   cfg.Recorder,
		hookStatus: cfg.HookStatus,
		log:        cfg.Logger,
		auth:       newLecturerAuth(cfg.AdminToken, cfg.Store, cfg.Now, cfg.Logger),
		join:       joinTokens{key: cfg.Store.DeriveKey("join-token"), now: cfg.Now},
		hub:        newHub(cfg.Store, cfg.Logger),
		publicURL:  strings.TrimRight(cfg.PublicURL, "/"),
		maxPhones:  cfg.MaxPhones,
		lobbyMax:   max(cfg.MaxPhones/2, 64),
		seats:      newSeats(),
		codeLimit:  rate.NewLimiter(codeRate, codeBurst),
		now:        cfg.Now,
		limits:     defaultLimits,
		sealer:     seal.NewSealer(sealSeed()), // new at each start: see sealSeed
		newPhones:  rate.NewLimiter(joinRate, cfg.MaxPhones),
	}
	s.phoneLimits = newPhoneLimits(2*cfg.MaxPhones, s.limits)
	s.httpSeals = newHTTPSeals(2 * cfg.MaxPhones)
	if u, err := url.Parse(s.publicURL); err == nil {
		s.publicHost = u.Host
	}
	s.phoneURL = s.publicURL
	if cfg.PhoneURL != "" {
		s.phoneURL = strings.TrimRight(cfg.PhoneURL, "/")
		if u, err := url.Parse(s.phoneURL); err == nil {
			s.relayHost, s.relayHostPort, s.phonePath = hostname(u.Host), u.Host, u.Path
		}
	}
	s.hosts = newHostNames(append([]string{s.publicURL}, cfg.Hosts...)...)
	s.upgrader = websocket.Upgrader{
		// Phone messages are tiny; small buffers keep a full hall's memory
		// low, and a shared pool means idle phones hold no write buffer.
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      func(r *http.Request) bool { return sameOrigin(r, s.originHost(r)) },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeJSON(w, status, map[string]string{"error": "websocket", "message": reason.Error()})
		},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.handler = s.routes()
	go s.hub.run()
	return s
}

// Handler returns the kiosk's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close tells every phone the kiosk is stopping and closes their
// connections. http.Server.Shutdown does not close hijacked connections, so
// call Close after it.
func (s *Server) Close() {
	s.cancel()
	s.hub.stop()
}

// routes lists every route the kiosk serves.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.assets = loadAssets()
	lecturerPage := []string{"common.", "proj.", "con."}
	// The projector view gets only the strings the room may read, so
	// that not even its source holds the console's words.
	projectorPage := []string{"common.", "proj.title", "proj.locked", "proj.ready", "proj.reason.", "proj.warn.", "proj.hint.",
		"proj.obs_", "proj.scan", "proj.qr_alt", "proj.no_camera", "proj.count", "proj.slips", "proj.issued", "proj.purpose",
		"proj.no_purpose", "proj.auth", "proj.lecturer_only_note", "proj.closed_note", "proj.questions"}

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })

	// Recorders: no token needed; the answer says nothing a phone could not see.
	mux.HandleFunc("GET /api/unlock", s.handleUnlock)
	mux.HandleFunc("GET /api/unlock/events", s.handleUnlockEvents)

	// Lecturer.
	mux.HandleFunc("GET /lecturer", s.handleLecturerLogin)
	mux.HandleFunc("GET /api/login-link", s.handleLoginLink)
	mux.Handle("POST /api/logout", s.lecturer(s.handleLogout))
	mux.Handle("POST /api/logout/others", s.lecturer(s.handleLogoutOthers))
	mux.Handle("GET /api/state", s.lecturer(s.handleState))
	mux.Handle("POST /api/headcount", s.lecturer(s.handleHeadcount))
	mux.Handle("POST /api/round", s.lecturer(s.handleRound))
	mux.Handle("POST /api/close", s.lecturer(s.handleClose))
	mux.Handle("POST /api/restart/release", s.lecturer(s.handleRestartRelease))
	mux.Handle("POST /api/paper", s.lecturer(s.handlePaper))
	mux.Handle("GET /api/record", s.lecturer(s.handleRecord))
	mux.Handle("GET /api/series", s.lecturer(s.handleSeriesList))
	mux.Handle("POST /api/series/end", s.lecturer(s.handleSeriesEnd))
	mux.Handle("GET /api/templates", s.lecturer(s.handleTemplates))
	mux.Handle("GET /api/join", s.lecturer(s.handleJoin))
	mux.Handle("GET /api/runtime", s.lecturer(s.handleRuntime))
	mux.Handle("GET /qr.png", s.lecturer(s.handleQR))

	// Pages and phones.
	mux.HandleFunc("GET /{$}", s.servePage(pageSpec{name: "projector.html", prefixes: projectorPage}))
	mux.HandleFunc("GET /console", s.servePage(pageSpec{name: "console.html", prefixes: lecturerPage}))
	mux.HandleFunc("GET /j/{token}", s.servePage(pageSpec{name: "phone.html", prefixes: []string{"common.", "phone."}, notices: true, round: true}))
	mux.HandleFunc("GET /k", s.servePage(pageSpec{name: "join.html", prefixes: []string{"common.", "join."}}))
	mux.HandleFunc("POST /k", s.handleCode)
	mux.HandleFunc("GET /record", s.servePage(pageSpec{name: "record.html", prefixes: []string{"common.", "rec.", "phone.all_must", "phone.anonymous", "phone.withdraw", "phone.no_consequence"}, notices: true}))
	mux.HandleFunc("GET /static/", s.assets.handleStatic)
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("POST /api/phone", s.handlePhone)

	return s.checkHost(s.securityHeaders(mux))
}

// lecturer wraps a handler that needs the lecturer token. Requests that
// change state must also come from the kiosk's own pages (CSRF).
func (s *Server) lecturer(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.authorized(r) {
			err := errUnauthorized
			if s.store.State().Closed {
				err = errSignedOutAtClose
			}
			writeError(w, r, s.log, err)
			return
		}
		if r.Method != http.MethodGet && !sameOrigin(r, s.originHost(r)) {
			writeError(w, r, s.log, errForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	})
}

// securityHeaders sets the headers every answer carries: the pages load
// nothing from anywhere but the kiosk, cannot be framed, and leak no
// referrer (a sign-in link carries a secret).
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; connect-src 'self' ws://"+r.Host+" wss://"+r.Host+
			"; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// handleWS takes every websocket into the lobby, which makes room by
// closing the oldest that has not said hello (caps.go): a phone's seat is
// taken only once its hello passed the checks.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.hub.connected.Add(1)
	c := &client{
		hub:       s.hub,
		srv:       s,
		conn:      conn,
		send:      make(chan []byte, sendQueue),
		replies:   make(chan []byte, sendQueue),
		tallyWake: make(chan struct{}, 1),
		done:      make(chan struct{}),
		wrote:     make(chan struct{}),
		limiter:   rate.NewLimiter(s.limits.msgRate, s.limits.msgBurst),
		challenge: make([]byte, seal.ChallengeLen),
	}
	rand.Read(c.challenge)
	c.phone = phoneSession{srv: s, takeSeat: c.takeSeat}
	// The first message tells the phone how to seal: the key, and the
	// challenge that binds its frames to this connection.
	b64 := base64.RawURLEncoding.EncodeToString
	c.send <- fmt.Appendf(nil, `{"type":%q,"key":%q,"challenge":%q}`, msgSeal, s.sealer.PublicKeyString(), b64(c.challenge))
	select {
	case s.hub.register <- c:
	case <-s.hub.stopping:
		s.hub.connected.Add(-1)
		conn.Close()
		return
	}
	s.enterLobby(c)
	go c.writeLoop()
	go c.readLoop(s.ctx)
}
