// Package relay lets phones reach a kiosk they cannot reach directly. A
// kiosk dials out one websocket to a relay on a public server and registers
// a room; the relay forwards phones' requests for that room to the kiosk as
// streams of a yamux session carried by the websocket, and the kiosk serves
// them with its own HTTP handler. The relay implements none of the kiosk's
// endpoints: it is a reverse proxy that knows which paths are phones'.
//
// The relay stores nothing and logs no client address, user agent or
// request path: a room lives only as long as its kiosk's connection.
package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
	"golang.org/x/time/rate"
)

const (
	// HeaderRoomKey carries the kiosk's room key on registration: the room's
	// id is a hash of it, so only the kiosk that holds the key can claim the
	// room again after a dropped link, although the id is on every phone.
	HeaderRoomKey = "Relay-Room-Key"
	// RoomKeyLen is the least length of a room key, in bytes.
	RoomKeyLen = 32

	// maxBody: phones send a few hundred bytes; the kiosk refuses more than
	// 64 KiB itself, and the relay need not carry it that far.
	maxBody = 64 << 10
	// DefaultRoomRate and DefaultRoomBurst bound the requests a room gets
	// through the relay. A hall of 1,000 phones arriving at once loads the
	// page and its few files, about 8 requests each; after that a phone
	// holds one websocket and sends nothing over HTTP.
	DefaultRoomRate  = 300
	DefaultRoomBurst = 8000
	// DefaultMaxRooms bounds the rooms one relay holds: far above a campus's
	// lecture halls, well below what its memory could take.
	DefaultMaxRooms = 5000
	// registerRate bounds registrations, so that the token cannot be guessed
	// by trying (it is also long).
	registerRate  = 5
	registerBurst = 50
)

// Config is what a Relay needs.
type Config struct {
	// Token is what kiosks must present to register a room.
	Token string
	// RoomRate and RoomBurst limit the requests per room; zero means the
	// defaults.
	RoomRate  rate.Limit
	RoomBurst int
	// MaxRooms caps the rooms held at once; zero means DefaultMaxRooms.
	MaxRooms int
	Logger   *slog.Logger
}

// Relay forwards phones' requests to the kiosks registered with it. Create
// it with New, serve Handler, and Close it when done.
type Relay struct {
	cfg      Config
	log      *slog.Logger
	regLimit *rate.Limiter
	upgrader websocket.Upgrader
	mu       sync.Mutex
	rooms    map[string]*room
	closed   bool
	handler  http.Handler
}

// room is one registered kiosk.
type room struct {
	sess      *yamux.Session
	limit     *rate.Limiter
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// New returns a Relay.
func New(cfg Config) *Relay {
	if cfg.RoomRate == 0 {
		cfg.RoomRate = DefaultRoomRate
	}
	if cfg.RoomBurst == 0 {
		cfg.RoomBurst = DefaultRoomBurst
	}
	if cfg.MaxRooms == 0 {
		cfg.MaxRooms = DefaultMaxRooms
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rl := &Relay{
		cfg:      cfg,
		log:      cfg.Logger,
		regLimit: rate.NewLimiter(registerRate, registerBurst),
		rooms:    make(map[string]*room),
	}
	rl.upgrader = websocket.Upgrader{
		ReadBufferSize:   32 << 10,
		WriteBufferSize:  32 << 10,
		HandshakeTimeout: 10 * time.Second,
		// Kiosks are programs, not pages: a browser (which sends Origin)
		// has no business registering.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /register/{room}", rl.handleRegister)
	mux.HandleFunc("/r/{room}/{rest...}", rl.handleRoom)
	rl.handler = mux
	return rl
}

// Handler returns the relay's HTTP handler.
func (rl *Relay) Handler() http.Handler { return rl.handler }

// Rooms returns how many rooms are registered now.
func (rl *Relay) Rooms() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.rooms)
}

// Close ends every room's session and refuses new ones.
func (rl *Relay) Close() {
	rl.mu.Lock()
	rooms := rl.rooms
	rl.rooms, rl.closed = map[string]*room{}, true
	rl.mu.Unlock()
	for _, rm := range rooms {
		rm.close()
	}
}

// RoomID is the id of the room a key claims: 128 bits of a hash of the
// key, so that it cannot be guessed and does not give the key away.
func RoomID(key []byte) string {
	h := sha256.Sum256(append([]byte("consent-kiosk relay room\x00"), key...))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// MuxConfig is the yamux configuration of both ends. keepAlive is how
// often an end pings; a link whose ping is not answered within writeTimeout
// is dropped.
func MuxConfig(keepAlive, writeTimeout time.Duration) *yamux.Config {
	c := yamux.DefaultConfig()
	c.KeepAliveInterval = keepAlive
	c.ConnectionWriteTimeout = writeTimeout
	// A full hall opens its websockets within a second or two.
	c.AcceptBacklog = 2048
	// yamux's own log lines carry no addresses, but say nothing an operator
	// needs either.
	c.LogOutput = io.Discard
	return c
}

func (rl *Relay) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !rl.regLimit.Allow() {
		writeJSON(w, http.StatusTooManyRequests, "rate-limited", "too many registrations; wait a moment")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(rl.cfg.Token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, "unauthorized", "this relay needs its token")
		return
	}
	key, err := base64.RawURLEncoding.DecodeString(r.Header.Get(HeaderRoomKey))
	if err != nil || len(key) < RoomKeyLen {
		writeJSON(w, http.StatusBadRequest, "invalid", "a room key of at least 32 bytes, base64url, is required")
		return
	}
	id := r.PathValue("room")
	if subtle.ConstantTimeCompare([]byte(RoomID(key)), []byte(id)) != 1 {
		writeJSON(w, http.StatusForbidden, "forbidden", "the room key does not claim this room")
		return
	}
	rl.mu.Lock()
	full := len(rl.rooms) >= rl.cfg.MaxRooms && rl.rooms[id] == nil
	closed := rl.closed
	rl.mu.Unlock()
	if full || closed {
		writeJSON(w, http.StatusServiceUnavailable, "full", "this relay holds as many rooms as it can")
		return
	}
	ws, err := rl.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	// The relay pings every 5 s, which keeps the link open through
	// middleboxes and frees a dead kiosk's room; the kiosk pings faster
	// because it must lock within 2 s of losing the relay.
	sess, err := yamux.Client(newWSConn(ws), MuxConfig(5*time.Second, 10*time.Second))
	if err != nil {
		ws.Close()
		return
	}
	rm := rl.newRoom(sess)
	rl.mu.Lock()
	if rl.closed {
		rl.mu.Unlock()
		rm.close()
		return
	}
	old := rl.rooms[id]
	rl.rooms[id] = rm
	n := len(rl.rooms)
	rl.mu.Unlock()
	if old != nil {
		old.close() // the kiosk came back on a new link; the old one is dead
	}
	rl.log.Info("room opened", "rooms", n)
	go func() {
		<-sess.CloseChan()
		rl.mu.Lock()
		if rl.rooms[id] == rm {
			delete(rl.rooms, id)
		}
		n := len(rl.rooms)
		rl.mu.Unlock()
		rm.close()
		rl.log.Info("room closed", "rooms", n)
	}()
}

func (rl *Relay) newRoom(sess *yamux.Session) *room {
	rm := &room{sess: sess, limit: rate.NewLimiter(rl.cfg.RoomRate, rl.cfg.RoomBurst)}
	rm.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return sess.Open() },
		// Every phone request is a stream of its own or reuses an idle one;
		// a hall loading its pages at once needs many.
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     30 * time.Second,
	}
	rm.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "kiosk"
			pr.Out.URL.Path = "/" + pr.In.PathValue("rest")
			pr.Out.URL.RawPath = ""
			// The kiosk accepts relayed requests only for the relay's own
			// name (DNS rebinding), which is what the phone asked for.
			pr.Out.Host = pr.In.Host
			// Rewrite sends no X-Forwarded-For; neither does it need the
			// phone's user agent.
			pr.Out.Header.Set("User-Agent", "")
		},
		Transport:  rm.transport,
		BufferPool: bufferPool{},
		ModifyResponse: func(res *http.Response) error {
			if rwc, ok := res.Body.(io.ReadWriteCloser); ok && res.StatusCode == http.StatusSwitchingProtocols {
				res.Body = upgraded{rwc}
			}
			return nil
		},
		ErrorLog: ErrorLog(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSON(w, http.StatusBadGateway, "kiosk-unreachable", "the kiosk does not answer; try again in a moment")
		},
	}
	return rm
}

// copyBuf is the buffer of each direction of a phone's websocket through
// the relay. Phones' frames are well under 1 KiB; io.Copy's 32 KiB, twice
// per phone, would be most of the relay's memory.
const copyBuf = 4 << 10

// upgraded is the kiosk's end of a phone's websocket through the relay.
// httputil.ReverseProxy copies an upgraded connection with io.Copy both
// ways, which would take a 32 KiB buffer for each; io.Copy uses these
// methods instead (directly, or through net.TCPConn's own).
type upgraded struct{ io.ReadWriteCloser }

func (u upgraded) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{u.ReadWriteCloser}, struct{ io.Reader }{r}, make([]byte, copyBuf))
}

func (u upgraded) WriteTo(w io.Writer) (int64, error) {
	// Both sides hidden, or CopyBuffer would hand over to the other's
	// ReadFrom and its own buffer.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{u.ReadWriteCloser}, make([]byte, copyBuf))
}

// bufferPool lends the proxy its buffers for ordinary responses (the
// page's files), so that a hall loading them at once allocates few.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return make([]byte, 32<<10) }}

func (bufferPool) Get() []byte { return buffers.Get().([]byte) }

// Put boxes a slice header, a few bytes next to the 32 KiB it lends.
func (bufferPool) Put(b []byte) { buffers.Put(b) }

func (rm *room) close() {
	rm.sess.Close()
	rm.transport.CloseIdleConnections()
}

// PhonePath reports whether a request is one of the few a phone (or a
// remote recorder) makes; everything else, the lecturer's console and API
// above all, stays on the laptop.
func PhonePath(method, path string) bool {
	switch {
	case method == http.MethodGet && (path == "/ws" || path == "/k" || path == "/api/unlock"):
		return true
	case method == http.MethodPost && (path == "/k" || path == "/api/phone"):
		return true
	case method == http.MethodGet && strings.HasPrefix(path, "/j/") && len(path) > 3 && !strings.Contains(path[3:], "/"):
		return true
	case method == http.MethodGet && strings.HasPrefix(path, "/static/") && !strings.Contains(path, ".."):
		return true
	}
	return false
}

func (rl *Relay) handleRoom(w http.ResponseWriter, r *http.Request) {
	rl.mu.Lock()
	rm := rl.rooms[r.PathValue("room")]
	rl.mu.Unlock()
	if rm == nil {
		writeJSON(w, http.StatusNotFound, "unknown-room", "no kiosk is connected for this address; scan the QR code shown in the room")
		return
	}
	if !PhonePath(r.Method, "/"+r.PathValue("rest")) {
		writeJSON(w, http.StatusNotFound, "not-found", "only the phone pages are reachable through the relay")
		return
	}
	if !rm.limit.Allow() {
		writeJSON(w, http.StatusTooManyRequests, "rate-limited", "too many requests for this room; wait a moment")
		return
	}
	if r.ContentLength > maxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, "too-large", "request body over 64 KiB")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	rm.proxy.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}

// ErrorLog is a logger for the relay's http.Server that drops what it is
// told: net/http's own lines name client addresses ("TLS handshake error
// from 192.0.2.1:5000"), which the relay never logs.
func ErrorLog() *log.Logger { return log.New(io.Discard, "", 0) }

// errRefused: the relay answered a registration with something other than
// a websocket (a 403 for a room key that does not claim the room, a 503
// when it is full).
var errRefused = errors.New("relay refused")
