// Command consent-kiosk lets a lecturer record a class only while every
// person in the room has consented, anonymously, from their phone.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/consent-kiosk/kiosk/hooks"
	"github.com/consent-kiosk/kiosk/kiosk"
	"github.com/consent-kiosk/kiosk/obs"
	"github.com/consent-kiosk/kiosk/relay"
	"github.com/consent-kiosk/kiosk/tally"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
			return // asked for help or the version, and given it
		}
		fmt.Fprintln(os.Stderr, "consent-kiosk:", err)
		os.Exit(1)
	}
}

type options struct {
	addr       string
	data       string
	adminToken string
	publicURL  string
	maxPhones  int
	retention  time.Duration
	faultRetry time.Duration
	verbose    bool
	lecturerQR bool
	noBrowser  bool
	tlsCert    string
	tlsKey     string
	hooks      hooks.Commands
	obs        obs.Config
	relayURL   string
	relayToken string
}

// retentionFlag reads a retention as days ("180d") or a Go duration
// ("4320h").
type retentionFlag struct{ d *time.Duration }

func (f retentionFlag) String() string {
	if f.d == nil {
		return ""
	}
	if *f.d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", *f.d/(24*time.Hour))
	}
	return f.d.String()
}

func (f retentionFlag) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return fmt.Errorf("%q is not a number of days", s)
		}
		*f.d = time.Duration(n) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither days (180d) nor a duration (4320h)", s)
	}
	*f.d = d
	return nil
}

// errVersion: -version was given and answered; nothing else is to be done.
var errVersion = errors.New("version printed")

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("consent-kiosk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, stderr)
	var showVersion bool
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&o.noBrowser, "no-browser", false, "do not open the console in a browser at start")
	fs.StringVar(&o.addr, "addr", ":8080", "`HOST:PORT` where to listen; :8080 listens on every address of the laptop")
	fs.StringVar(&o.data, "data", "", "SQLite database `PATH` (default: kiosk.db in the user's config directory)")
	fs.StringVar(&o.adminToken, "admin-token", getenv("KIOSK_ADMIN_TOKEN"), "lecturer `TOKEN` (also KIOSK_ADMIN_TOKEN; default: a random one)")
	fs.StringVar(&o.publicURL, "public-url", "", "base `URL` put in the QR code (default: http://LAN-ADDRESS:PORT)")
	fs.IntVar(&o.maxPhones, "max-phones", kiosk.DefaultMaxPhones, "most joined phones at once (websockets, and as many waiting HTTP hellos)")
	o.retention = tally.DefaultRetention
	fs.Var(retentionFlag{&o.retention}, "retention", "`DAYS` how long to keep the record of ended rounds and the series' memory, as days (180d) or a duration (4320h); older ones are deleted at start and daily")
	fs.DurationVar(&o.faultRetry, "fault-retry", tally.DefaultFaultRetry, "`DURATION` how often to try saving again after a write failed (a full disk); the kiosk stays locked until one succeeds")
	fs.StringVar(&o.hooks.OnUnlock, "on-unlock", "", "`COMMAND` run when the kiosk unlocks (interrupted when it locks again)")
	fs.StringVar(&o.hooks.OnLock, "on-lock", "", "`COMMAND` run when the kiosk locks, and at start while locked")
	fs.BoolVar(&o.hooks.Shell, "hook-shell", false, "run -on-unlock and -on-lock through sh -c (cmd /C on Windows) instead of splitting on spaces")
	fs.DurationVar(&o.hooks.Timeout, "hook-timeout", 30*time.Second, "longest a hook may run")
	fs.StringVar(&o.obs.URL, "obs", "", "guard OBS Studio through obs-websocket at `URL` (e.g. ws://127.0.0.1:4455)")
	fs.StringVar(&o.obs.Password, "obs-password", "", "obs-websocket `PASSWORD` (default: $KIOSK_OBS_PASSWORD)")
	fs.BoolVar(&o.obs.Autostart, "obs-autostart", false, "start OBS's recording when the kiosk unlocks (it is always stopped when the kiosk locks)")
	fs.BoolVar(&o.lecturerQR, "lecturer-qr", false, "also print a QR code of each lecturer sign-in link (anyone who sees the terminal, e.g. on a mirrored projector, can scan it)")
	fs.BoolVar(&o.verbose, "v", false, "log every request (method, path, status; never addresses)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM; needs -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private key `FILE` for -tls-cert (PEM)")
	fs.StringVar(&o.relayURL, "relay", "", "reach phones through the relay at `URL` (https://relay.example.no; see docs/RELAY.md)")
	fs.StringVar(&o.relayToken, "relay-token", "", "the relay's `TOKEN` (default: $KIOSK_RELAY_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if showVersion {
		return o, errVersion
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.relayToken == "" {
		o.relayToken = getenv("KIOSK_RELAY_TOKEN")
	}
	if o.relayURL != "" {
		u, err := relay.ParseURL(o.relayURL)
		if err != nil {
			return o, err
		}
		if o.relayToken == "" {
			return o, fmt.Errorf("-relay needs -relay-token (or KIOSK_RELAY_TOKEN)")
		}
		o.relayURL = u
	}
	if o.publicURL != "" {
		u, err := urlBase(o.publicURL)
		if err != nil {
			return o, err
		}
		o.publicURL = u
	}
	// Not the flag's default, so that -h never prints the password.
	if o.obs.Password == "" {
		o.obs.Password = getenv("KIOSK_OBS_PASSWORD")
	}
	if o.hooks.Timeout <= 0 {
		return o, fmt.Errorf("-hook-timeout must be positive")
	}
	if o.maxPhones < 1 {
		return o, fmt.Errorf("-max-phones must be at least 1")
	}
	// Shorter than a day is almost surely a typo ("30m" for 30 months) and
	// would delete the record a lecturer has not yet printed.
	if o.retention < 24*time.Hour {
		return o, fmt.Errorf("-retention must be at least 1d")
	}
	// Shorter, and a full disk gets a failing write with an fsync hundreds
	// of times a second; longer, and a kiosk whose disk has room again
	// stays locked for a good part of the lecture.
	if o.faultRetry < 10*time.Millisecond || o.faultRetry > time.Minute {
		return o, fmt.Errorf("-fault-retry must be from 10ms to 1m")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, fmt.Errorf("-tls-cert and -tls-key go together")
	}
	return o, nil
}

// run starts the kiosk and serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "relay" {
		return runRelay(ctx, args[1:], stdout, getenv)
	}
	o, err := parseFlags(args, os.Stderr, getenv)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, "consent-kiosk", versionString())
	}
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	if o.adminToken == "" {
		o.adminToken = randomToken()
	} else if len(o.adminToken) < 16 {
		log.Warn("the lecturer token is short; anyone on the network who guesses it controls the kiosk", "min_recommended", 16)
	}
	if o.data == "" {
		if o.data, err = defaultDataPath(); err != nil {
			return err
		}
	}

	// Each phone holds one connection, under the caps kiosk.FilesFor adds
	// up; the database, listener and runtime need a few dozen more.
	const filesPerKiosk = 64
	if limit, err := raiseFileLimit(kiosk.FilesFor(o.maxPhones) + filesPerKiosk); limit < kiosk.FilesFor(o.maxPhones)+filesPerKiosk {
		phones := o.maxPhones
		for phones > 1 && kiosk.FilesFor(phones)+filesPerKiosk > limit {
			phones = phones * 9 / 10
		}
		log.Warn("the system's open-file limit caps how many phones can connect", "limit", limit, "phones", phones, "err", err)
		o.maxPhones = max(phones, 1)
	}

	store, err := tally.Open(ctx, o.data, tally.Options{Retention: o.retention, FaultRetry: o.faultRetry, Log: log})
	if err != nil {
		return err
	}
	defer store.Close()

	var guard *obs.Guard
	var recorder kiosk.RecorderGuard // nil, not a nil *obs.Guard, without -obs
	if o.obs.URL != "" {
		if guard, err = obs.NewGuard(o.obs, store, log); err != nil {
			return fmt.Errorf("-obs: %w", err)
		}
		recorder = guard
	}

	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// Listen before anything is printed, so that a busy port fails at once.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	if o.publicURL == "" {
		scheme := "http"
		if tlsConfig != nil {
			scheme = "https"
		}
		o.publicURL = defaultPublicURL(scheme, ln.Addr().(*net.TCPAddr), o.addr)
	}

	var link *relay.Link
	var phoneURL string
	if o.relayURL != "" {
		// The room key comes from the store's key, so the room keeps its
		// address across restarts and phones find the kiosk again.
		link = &relay.Link{URL: o.relayURL, Token: o.relayToken, Key: store.DeriveKey("relay-room"), Logger: log}
		phoneURL = link.RoomURL()
		// Locked until the relay is reached: phones cannot withdraw before.
		store.SetUnreachable(ctx, true)
	}

	var hookStatus *hooks.Status
	if o.hooks.OnUnlock != "" || o.hooks.OnLock != "" {
		hookStatus = new(hooks.Status)
		o.hooks.Status = hookStatus
	}
	srv := kiosk.New(kiosk.Config{
		HookStatus: hookStatus,
		Store:      store,
		AdminToken: o.adminToken,
		PublicURL:  o.publicURL,
		PhoneURL:   phoneURL,
		Hosts:      ownNames(o.addr),
		MaxPhones:  o.maxPhones,
		Recorder:   recorder,
		Logger:     log,
	})
	httpSrv := newHTTPServer(logRequests(log, srv.Handler()), log)
	// Phones' requests through the relay arrive on the streams of its
	// session and are served by the same handler (RelayHandler).
	relaySrv := newHTTPServer(logRequests(log, srv.RelayHandler()), log)

	// Shutdown waits for handlers; long-polls, event streams and websockets
	// end when the kiosk server closes, so close it as shutdown begins.
	httpSrv.RegisterOnShutdown(srv.Close)

	// The hooks and the OBS guard follow the store. They stop after the
	// HTTP server and before the store closes, so that their last word (a
	// lock hook, stopping OBS) still goes out.
	watchCtx, stopWatching := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	defer func() { stopWatching(); watchers.Wait() }()
	if o.hooks.OnUnlock != "" || o.hooks.OnLock != "" {
		o.hooks.Logger = log
		watchers.Go(func() { o.hooks.Run(watchCtx, store) })
	}
	if guard != nil {
		watchers.Go(func() { guard.Run(watchCtx) })
	}
	if link != nil {
		watchers.Go(func() {
			link.Run(watchCtx, relaySrv.Serve, func(connected bool) {
				srv.SetRelayConnected(connected)
				setCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				store.SetUnreachable(setCtx, !connected)
			})
		})
	}
	watchers.Go(func() { printHints(watchCtx, stdout, store, srv) })

	printBanner(stdout, o, srv)
	ignoreBackgroundRead()
	go printLoginLinks(watchCtx, os.Stdin, stdout, o.lecturerQR, srv.LoginLink)
	if !o.noBrowser && interactive(stdout) {
		// A link of its own, so the one printed above still works for
		// another device.
		link, _ := srv.LoginLink()
		if err := openBrowser(link); err != nil {
			log.Info("could not open a browser; open the sign-in link above", "err", err)
		}
	}

	defer srv.Close()
	return serveUntilDone(ctx, log, httpSrv, ln, func(shutdownCtx context.Context) { relaySrv.Shutdown(shutdownCtx) })
}

// ownNames are the names the kiosk answers to besides its public URL's
// host, loopback names and IP addresses: the listen host and this
// machine's name, as a browser on the LAN may write them.
func ownNames(addr string) []string {
	names := []string{addr}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h, h+".local")
	}
	return names
}

// printHints tells the console what the projector page advises, once per
// round and hint.
func printHints(ctx context.Context, w io.Writer, store *tally.Store, srv *kiosk.Server) {
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	said := map[string]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := store.State()
		for _, h := range srv.Hints(st) {
			if said[h] == st.Round.ID {
				continue
			}
			said[h] = st.Round.ID
			if h == kiosk.HintNoPhonesJoined {
				fmt.Fprintf(w, "\nNo phone has joined in two minutes. The network may keep phones from reaching this laptop\n"+
					"(campus Wi-Fi often isolates devices from each other; a laptop hotspot takes only a few devices).\n"+
					"Start the kiosk with -relay URL -relay-token TOKEN, or behind a tunnel with -public-url (docs/RELAY.md).\n\n")
			}
		}
	}
}

// newHTTPServer is the kiosk's http.Server: every limit a hostile client
// could otherwise hold open is bounded here.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Slow clients must not hold connections open (slow-loris): the
		// headers must arrive within 5 seconds, a whole request within 15.
		// The long-poll handler extends its own write deadline; websockets
		// set their own deadlines once hijacked.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		// No real request has more than a few hundred bytes of headers.
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func printBanner(w io.Writer, o options, srv *kiosk.Server) {
	joinURL, _ := srv.JoinURL()
	var b strings.Builder
	fmt.Fprintf(&b, "Consent tally kiosk is running.\n\n")
	fmt.Fprintf(&b, "  Phones join at:            %s\n", joinURL)
	fmt.Fprintf(&b, "                             (the projector page shows a fresh QR code every 30 seconds)\n")
	if o.relayURL != "" {
		fmt.Fprintf(&b, "  Through the relay:         %s (locked as 'unreachable' whenever the relay cannot be reached)\n", o.relayURL)
	}
	fmt.Fprintf(&b, "  Recorders poll:            %s/api/unlock\n", o.publicURL)
	fmt.Fprintf(&b, "  Record (print or save):    %s/record\n", o.publicURL)
	fmt.Fprintf(&b, "  Database:                  %s (records kept %s)\n\n", o.data, retentionFlag{&o.retention})
	writeLoginLink(&b, srv.LoginLink, o.lecturerQR)
	io.WriteString(w, b.String())
}

func randomToken() string {
	b := make([]byte, 16) // 128 bits
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func defaultDataPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no -data given and no config directory: %w", err)
	}
	dir = filepath.Join(dir, "consent-kiosk")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, "kiosk.db"), nil
}

func urlBase(s string) (string, error) {
	s = strings.TrimRight(s, "/")
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "", fmt.Errorf("-public-url must start with http:// or https://")
	}
	return s, nil
}

// defaultPublicURL is the address phones on the same network can reach:
// the listen host if one was given, otherwise the laptop's LAN address.
func defaultPublicURL(scheme string, bound *net.TCPAddr, addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if host == "" || (ip != nil && ip.IsUnspecified()) {
		host = lanAddress()
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(bound.Port))
}

// lanAddress picks the laptop's address on the classroom network without
// sending anything: the first private IPv4 address of an interface that is
// up, else any non-loopback IPv4 address, else localhost.
func lanAddress() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "localhost"
	}
	var fallback string
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok || ipnet.IP.To4() == nil || ipnet.IP.IsLinkLocalUnicast() {
				continue
			}
			if ipnet.IP.IsPrivate() {
				return ipnet.IP.String()
			}
			if fallback == "" {
				fallback = ipnet.IP.String()
			}
		}
	}
	if fallback != "" {
		return fallback
	}
	return "localhost"
}

// logRequests logs each request's method, path and status at debug level.
// It never logs the client's address, user agent or query string (a
// sign-in link carries a secret).
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		path := r.URL.Path
		if strings.HasPrefix(path, "/j/") {
			path = "/j/…"
		}
		log.Debug("request", "method", r.Method, "path", path, "status", rec.status, "took", time.Since(start).Round(time.Microsecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Hijack lets the websocket upgrader take over the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController and the websocket upgrader reach the
// underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// serveUntilDone serves srv on ln until ctx is done, then shuts it down,
// giving requests in flight 5 s and then closing what is left; before runs
// first, with the same deadline, for what must stop before srv does.
func serveUntilDone(ctx context.Context, log *slog.Logger, srv *http.Server, ln net.Listener, before func(context.Context)) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before(shutdownCtx)
	err := srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		err = nil
	}
	return err
}
