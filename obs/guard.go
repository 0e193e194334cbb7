// Package obs makes OBS Studio obey the kiosk: it stops OBS's recording
// whenever the kiosk is locked, and can start it when the kiosk unlocks. It
// talks to OBS through obs-websocket v5, so a withdrawal stops the
// recording even while the lecturer is busy teaching (R2).
//
// The kiosk runs one Guard next to its store:
//
//	g, err := obs.NewGuard(obs.Config{URL: url, Password: pw}, store, logger)
//	if err != nil {
//		return err
//	}
//	go g.Run(ctx) // wait for it to return before exiting: it stops the recording
//
// and shows g.Status() on the projector page, following g.Changed().
package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/andreykaipov/goobs"
	"github.com/andreykaipov/goobs/api/closecodes"
	"github.com/andreykaipov/goobs/api/events"
	"github.com/andreykaipov/goobs/api/events/subscriptions"
	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

const (
	// dialTimeout bounds connecting and authenticating. OBS runs on the same
	// laptop, so an answer that takes longer means OBS is hung, and a hung
	// OBS must show up as a problem, not as a kiosk that waits.
	dialTimeout = 5 * time.Second

	// requestTimeout bounds every request to OBS. A stop that gets no answer
	// is reported and retried over a fresh connection rather than waited for.
	requestTimeout = 3 * time.Second

	// checkEvery is how often the guard also asks OBS whether it records.
	// OBS's RecordStateChanged events are what stop a recording started by
	// hand while the kiosk is locked; this slower question is the safety net
	// for an event that never came (a full event buffer drops the oldest)
	// and notices a connection that died without closing. Two seconds
	// bounds such a miss and costs OBS nothing.
	checkEvery = 2 * time.Second

	// minRetry and maxRetry bound the wait between connection attempts: fast
	// enough that a restarted OBS is guarded again within seconds, slow
	// enough not to spin while OBS is not running at all.
	minRetry = 500 * time.Millisecond
	maxRetry = 5 * time.Second

	// stopAttempts is how often the guard asks OBS to stop before it drops
	// the connection and starts over. A recording that was still starting
	// at the first request has usually started by the second.
	stopAttempts = 3

	// startGrace is how long a started recording may take to show up as
	// active before the guard asks again, and startAttempts how often it
	// asks. OBS silently ignores a start that comes just after a stop
	// (seen with OBS 29), as when a phone flips from refuse to consent.
	startGrace    = 3 * time.Second
	startAttempts = 3

	// DefaultURL is where obs-websocket listens unless told otherwise.
	DefaultURL = "ws://127.0.0.1:4455"
)

// Problems the projector page may show. They are fixed phrases, because
// error text from OBS or the network means nothing to a room of students.
const (
	ProblemUnreachable = "cannot reach OBS"
	ProblemPassword    = "OBS refused the password"
	ProblemStop        = "could not stop the OBS recording"
	ProblemStart       = "could not start the OBS recording"
)

// Config says how to reach OBS and what the guard may do.
type Config struct {
	// URL is obs-websocket's address, like ws://127.0.0.1:4455. A bare
	// host:port is taken as ws://, no port as 4455, and empty as DefaultURL.
	URL string
	// Password is obs-websocket's server password; empty when OBS does not
	// ask for one.
	Password string
	// Autostart makes the guard start the recording each time the kiosk
	// unlocks. Without it the lecturer starts the recording by hand, which
	// is also how the lecturer consents (R1).
	Autostart bool
}

// Source is where the guard learns whether the kiosk is unlocked.
// *tally.Store satisfies it.
type Source interface {
	// Changed returns the current state and a channel that is closed at the
	// next change.
	Changed() (tally.State, <-chan struct{})
}

// Status is what the projector page shows about OBS. Its JSON form is
// {"connected":bool,"recording":bool,"problem":"..."}.
type Status struct {
	// Connected is true while the guard holds a working connection to OBS.
	Connected bool `json:"connected"`
	// Recording is what OBS last reported; false while not connected.
	Recording bool `json:"recording"`
	// Problem is one of the Problem phrases, or empty when all is well. The
	// page should show it loudly: while it is set, a withdrawal may not
	// reach the recorder.
	Problem string `json:"problem"`
}

// Guard keeps OBS's recording in line with the kiosk's verdict. Create it
// with NewGuard and run it with Run.
type Guard struct {
	cfg    Config
	scheme string
	host   string
	src    Source
	log    *slog.Logger
	// checkEvery is the safety-net question's interval: the constant,
	// except in tests that must show events alone stop a recording.
	checkEvery time.Duration

	// Owned by the Run goroutine.
	unlocked  bool      // the verdict last seen
	wantStart bool      // Autostart owes a start for the current unlock
	starts    int       // starts asked for the current unlock
	lastStart time.Time // when the last start was asked for
	recording bool      // what OBS last reported, or was asked to become
	stopping  bool      // a stop was asked for and OBS has not finished yet

	mu      sync.Mutex // guards status and changed
	status  Status
	changed chan struct{}
}

// NewGuard returns a guard for the OBS at cfg.URL that follows src. It
// returns an error, before anything connects, if the URL is not a plain
// ws:// or wss:// host address, so that a typo fails at start.
func NewGuard(cfg Config, src Source, log *slog.Logger) (*Guard, error) {
	scheme, host, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Guard{
		cfg:        cfg,
		scheme:     scheme,
		host:       host,
		src:        src,
		log:        log.With("obs", scheme+"://"+host),
		checkEvery: checkEvery,
		status:     Status{Problem: ProblemUnreachable},
		changed:    make(chan struct{}),
	}, nil
}

// parseURL splits an obs-websocket address into the scheme and host:port
// that goobs wants. It refuses credentials in the URL, so that the password
// only ever travels in Config.Password and never ends up in a log line.
func parseURL(raw string) (scheme, host string, err error) {
	if raw == "" {
		raw = DefaultURL
	}
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("obs url: %w", err)
	}
	switch {
	case u.Scheme != "ws" && u.Scheme != "wss":
		return "", "", fmt.Errorf("obs url %q: scheme must be ws or wss", u.Redacted())
	case u.User != nil:
		return "", "", fmt.Errorf("obs url %q: give the password separately", u.Redacted())
	case u.Hostname() == "":
		return "", "", fmt.Errorf("obs url %q: no host", u.Redacted())
	case u.Path != "" && u.Path != "/", u.RawQuery != "":
		return "", "", fmt.Errorf("obs url %q: obs-websocket has no paths", u.Redacted())
	}
	host = u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "4455")
	}
	return u.Scheme, host, nil
}

// Status returns the current status.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// Changed returns the current status and a channel that is closed at the
// next change.
func (g *Guard) Changed() (Status, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status, g.changed
}

func (g *Guard) setStatus(s Status) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s == g.status {
		return
	}
	g.status = s
	close(g.changed)
	g.changed = make(chan struct{})
}

// Run guards OBS until ctx is done, connecting again whenever the
// connection is lost. When ctx is done it stops a recording that is still
// running, because from then on nobody would stop it on a withdrawal (R2,
// R10). It returns nil once ctx is done; it never gives up earlier.
func (g *Guard) Run(ctx context.Context) error {
	retry := minRetry
	warned := false // that OBS is unreachable, or was lost
	for {
		connected, err := g.session(ctx)
		if ctx.Err() != nil {
			g.setStatus(Status{Problem: ProblemUnreachable})
			return nil
		}
		g.recording = false
		g.setStatus(Status{Problem: problemFor(err)})
		switch {
		case connected:
			retry = minRetry
			warned = true
			g.log.Warn("lost OBS", "err", err)
		case !warned:
			// Once is enough for the terminal; the projector page keeps
			// saying it.
			warned = true
			g.log.Warn("cannot reach OBS; trying again", "err", err)
		default:
			g.log.Debug("cannot reach OBS", "err", err, "retry", retry)
		}
		if err := g.pause(ctx, retry); err != nil {
			g.setStatus(Status{Problem: ProblemUnreachable})
			return nil
		}
		retry = min(2*retry, maxRetry)
	}
}

// errNotStopped means OBS may still be recording after being told to stop.
var errNotStopped = errors.New("OBS did not stop recording")

// problemFor names the problem to show after a session ended with err.
func problemFor(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, errNotStopped):
		return ProblemStop
	case errors.As(err, &ce) && ce.Code == closecodes.AuthenticationFailed:
		return ProblemPassword
	}
	return ProblemUnreachable
}

// pause waits d while still following the kiosk, so that an unlock and
// lock that both happen while OBS is away do not leave a start owed.
func (g *Guard) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	st, changed := g.src.Changed()
	for {
		g.observe(st)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case <-changed:
			st, changed = g.src.Changed()
		}
	}
}

// observe notes the kiosk's verdict. Autostart owes one start per unlock,
// so that a lecturer who stops the recording by hand is not overruled.
func (g *Guard) observe(st tally.State) {
	if st.Unlocked && !g.unlocked {
		g.wantStart = g.cfg.Autostart
		g.starts = 0
	}
	if !st.Unlocked {
		g.wantStart = false
	}
	g.unlocked = st.Unlocked
}

// session connects to OBS and enforces the verdict until the connection
// fails or ctx is done. It reports whether it got connected at all.
func (g *Guard) session(ctx context.Context) (connected bool, err error) {
	c, err := g.dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if ctx.Err() != nil && g.recording {
			g.stopOnExit(c)
		}
		c.Disconnect()
	}()

	rs, err := c.Record.GetRecordStatus()
	if err != nil {
		return false, fmt.Errorf("record status: %w", err)
	}
	g.recording = rs.OutputActive
	g.stopping = false
	if g.recording {
		g.wantStart = false
	}
	g.log.Info("connected to OBS", "recording", g.recording)
	problem := ""

	check := time.NewTicker(g.checkEvery)
	defer check.Stop()
	st, changed := g.src.Changed()
	for {
		g.observe(st)
		if err := g.enforce(c, st); err != nil {
			// The connection is suspect when OBS will not do as asked; a
			// fresh one retries, and the page says so meanwhile.
			return true, err
		}
		switch {
		case !st.Unlocked:
			problem = ""
		case g.wantStart && !g.recording && time.Since(g.lastStart) >= startGrace:
			problem = g.start(c)
		}
		g.setStatus(Status{Connected: true, Recording: g.recording, Problem: problem})

		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-changed:
			st, changed = g.src.Changed()
		case ev, ok := <-c.IncomingEvents:
			// goobs closes the channel when the connection ends.
			if !ok {
				return true, errors.New("connection closed")
			}
			if rs, isRecord := ev.(*events.RecordStateChanged); isRecord && g.noteRecording(rs.OutputActive) {
				problem = ""
			}
		case <-check.C:
			rs, err := c.Record.GetRecordStatus()
			if err != nil {
				return true, fmt.Errorf("record status: %w", err)
			}
			if g.noteRecording(rs.OutputActive) {
				problem = ""
			}
		}
	}
}

// noteRecording takes in what OBS reports about its recording, from an
// event or an answer, and reports whether OBS records now.
func (g *Guard) noteRecording(active bool) bool {
	switch {
	case !active:
		g.stopping = false
	case g.stopping:
		// Still finishing the file; enforce asks again, in case OBS did
		// not take the first stop.
	case !g.recording:
		g.log.Info("OBS started recording")
	}
	g.recording = active
	if active {
		// Whoever started it, nothing more is owed, and a later stop by
		// hand must stand.
		g.wantStart = false
	}
	return active
}

func (g *Guard) dial(ctx context.Context) (*goobs.Client, error) {
	nd := &net.Dialer{Timeout: dialTimeout}
	dialer := &websocket.Dialer{
		HandshakeTimeout: dialTimeout,
		NetDialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		},
	}
	return goobs.New(g.host,
		goobs.WithScheme(g.scheme),
		goobs.WithPassword(g.cfg.Password),
		goobs.WithDialer(dialer),
		goobs.WithResponseTimeoutDuration(requestTimeout),
		// A half-open connection must fail a write rather than hang the
		// guard, so the page shows the problem.
		goobs.WithWriteTimeoutDuration(requestTimeout),
		// Outputs carries RecordStateChanged, the only event the guard
		// needs; the others would only fill the buffer.
		goobs.WithEventSubscriptions(subscriptions.Outputs),
		goobs.WithLogger(debugLogger{g.log}),
	)
}

// enforce stops the recording while the kiosk is locked. It returns an
// error only when OBS may still be recording after being told to stop.
func (g *Guard) enforce(c *goobs.Client, st tally.State) error {
	if st.Unlocked || !g.recording {
		return nil
	}
	if g.stopping {
		g.log.Debug("stopping the OBS recording again", "reason", st.Reason)
	} else {
		g.log.Info("stopping the OBS recording: the kiosk is locked", "reason", st.Reason)
	}
	var err error
	for range stopAttempts {
		if _, err = c.Record.StopRecord(); err == nil {
			// OBS is finishing the file, which takes it a second or two.
			// Should it not stop after all, a later check sees that and
			// stops it again.
			g.recording = false
			g.stopping = true
			return nil
		}
		// OBS refuses to stop a recording that is still starting or has
		// just stopped by itself: ask whether anything records.
		rs, serr := c.Record.GetRecordStatus()
		if serr != nil {
			err = serr
			break
		}
		if !rs.OutputActive {
			// Should it still be starting, a later check sees it running
			// and stops it then.
			g.recording = false
			return nil
		}
	}
	g.log.Error("could not stop the OBS recording", "err", err)
	return fmt.Errorf("%w: %w", errNotStopped, err)
}

// start starts the recording that Autostart owes, and returns the problem
// to show if that failed. It is called only while connected, so the guard
// never starts a recording it could not stop.
func (g *Guard) start(c *goobs.Client) (problem string) {
	// The verdict may have changed since it was read; starting on a stale
	// unlock would record someone who has just withdrawn.
	if st, _ := g.src.Changed(); !st.Unlocked {
		return ""
	}
	if g.starts >= startAttempts {
		g.wantStart = false
		g.log.Error("OBS did not start recording", "attempts", g.starts)
		return ProblemStart
	}
	g.starts++
	g.lastStart = time.Now()
	g.log.Info("starting the OBS recording: the kiosk is unlocked", "attempt", g.starts)
	if _, err := c.Record.StartRecord(); err != nil {
		g.log.Error("could not start the OBS recording", "err", err)
		return ProblemStart
	}
	// Counted as recording at once, so that a lock that comes before OBS
	// reports the recording still stops it.
	g.recording = true
	return ""
}

// stopOnExit stops the recording when the guard is going away.
func (g *Guard) stopOnExit(c *goobs.Client) {
	g.log.Info("stopping the OBS recording: the kiosk is shutting down")
	if _, err := c.Record.StopRecord(); err != nil {
		g.log.Error("could not stop the OBS recording", "err", err)
	}
}

// debugLogger passes goobs's own log lines to slog at debug level; the
// guard logs what matters itself.
type debugLogger struct{ log *slog.Logger }

func (l debugLogger) Printf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)), "from", "goobs")
}
