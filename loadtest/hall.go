package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// target is a running server the hall is played against: the kiosk or the
// floor.
type target struct {
	name  string
	base  string // http://127.0.0.1:PORT
	token string // lecturer token
	pid   int    // the server's process, or 0 if it runs inside the harness
}

// hallConfig says how a hall is played.
type hallConfig struct {
	Phones int
	// Ramp spreads the phones' connections evenly over this long, as a hall
	// scanning a QR code does not arrive all in one millisecond.
	Ramp time.Duration
	// AckWait is how long a phone waits for its ack after sending its slip
	// before it counts as failed.
	AckWait time.Duration
	// SeeWait is how long the recorder may take to see unlocked (or locked)
	// before the harness counts it as never.
	SeeWait time.Duration
	// Settle is how long goroutines and open files may take to return to
	// their starting level after every phone has left.
	Settle time.Duration
	// AtOnce connects every phone and says hello first (Ramp is then
	// ignored), and only when all have done so do they all send their slip
	// together: the worst burst a hall can make, and the one that shows
	// whether commits are grouped.
	AtOnce bool
	// JoinSettle is how long an at-once hall waits after the last hello
	// before the slips go, so that the server has taken every hello in and
	// the slips meet no backlog of joins.
	JoinSettle time.Duration
}

const (
	// atOnceDials bounds the handshakes in flight while an at-once hall
	// connects, so that the listen backlog does not overflow into SYN
	// retries, which would measure the kernel's retry timer instead.
	atOnceDials = 128
)

// result is what one hall measured on one target.
type result struct {
	Target   string         `json:"target"`
	Phones   int            `json:"phones"`
	Acked    int            `json:"acked"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures,omitempty"` // reason → phones
	FirstErr string         `json:"first_error,omitempty"`

	AckP50      ms `json:"ack_p50_ms"`
	AckP99      ms `json:"ack_p99_ms"`
	AckMax      ms `json:"ack_max_ms"`
	WithdrawAck ms `json:"withdraw_ack_ms"`

	// UnlockAfterLastAck is from the last phone's ack to the recorder seeing
	// unlocked; negative when the recorder heard before the last phone did.
	UnlockSeen         bool `json:"unlock_seen"`
	UnlockAfterLastAck ms   `json:"unlock_after_last_ack_ms"`
	LockSeen           bool `json:"lock_seen"`
	LockAfterWithdraw  ms   `json:"lock_after_withdraw_ms"`
	RecorderErrors     int  `json:"recorder_errors"`

	PeakRSS    int64 `json:"peak_rss_bytes"` // 0 when unknown
	Goroutines gauge `json:"goroutines"`
	OpenFiles  gauge `json:"open_files"`
	// Returned says goroutines and open files came back to their starting
	// level within Settle after every phone disconnected.
	Returned bool `json:"returned"`

	// FramesToPhones counts every frame the phones received, which shows
	// whether tally fan-out grows with N² or is coalesced.
	FramesToPhones int64 `json:"frames_to_phones"`
	// FramesByType splits FramesToPhones by message type ("sealed" for
	// sealed answers), to show which messages a change would save.
	FramesByType map[string]int64 `json:"frames_by_type"`
	Elapsed      ms               `json:"elapsed_ms"`
}

// gauge is a count read before the phones came, with all phones in, and
// after they left. -1 means unknown.
type gauge struct {
	Start int `json:"start"`
	Peak  int `json:"peak"`
	End   int `json:"end"`
}

// ms is a duration that reads as milliseconds in JSON.
type ms time.Duration

func (d ms) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))), nil
}

func (d ms) String() string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// newClient returns the harness's HTTP client. Keep-alives are off so that
// no idle connection of the harness's own is counted among the server's
// goroutines and files when it checks they returned to their start.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// call makes one lecturer request and decodes a JSON answer into out (if not
// nil). It returns the status code.
func call(ctx context.Context, c *http.Client, t target, method, p string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+p, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, p, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, p, err)
		}
	}
	return resp.StatusCode, nil
}

// runtimeFigures reads the server's goroutines and open files from
// /api/runtime. If the server does not offer it, goroutines are -1 and open
// files come from /proc.
func runtimeFigures(ctx context.Context, c *http.Client, t target) (goroutines, files int) {
	var rt struct {
		Goroutines int `json:"goroutines"`
		OpenFiles  int `json:"open_files"`
	}
	if _, err := call(ctx, c, t, "GET", "/api/runtime", nil, &rt); err != nil {
		if t.pid == 0 {
			return -1, -1
		}
		return -1, countFDs(t.pid)
	}
	return rt.Goroutines, rt.OpenFiles
}

// playHall plays one hall against t: headcount, join, cfg.Phones phones
// consenting while a recorder long-polls, one withdrawal, everyone leaving.
// It returns an error only when the hall could not be played at all; a
// phone or recorder that fails is counted in the result.
func playHall(ctx context.Context, t target, cfg hallConfig) (*result, error) {
	begin := time.Now()
	c := newClient()
	res := &result{Target: t.name, Phones: cfg.Phones, Failures: map[string]int{}}

	var mem *memSampler
	if t.pid > 0 {
		mem = startMemSampler(t.pid)
		defer mem.stop()
	}

	// Slips need a round with a purpose.
	if _, err := call(ctx, c, t, "POST", "/api/round", map[string]string{"purpose": "Load test"}, nil); err != nil {
		return nil, err
	}
	if _, err := call(ctx, c, t, "POST", "/api/headcount", map[string]int{"headcount": cfg.Phones}, nil); err != nil {
		return nil, err
	}
	var join struct {
		URL string `json:"url"`
	}
	if _, err := call(ctx, c, t, "GET", "/api/join", nil, &join); err != nil {
		return nil, err
	}
	ju, err := url.Parse(join.URL)
	if err != nil || !strings.Contains(ju.Path, "/j/") {
		return nil, fmt.Errorf("join url %q: want <prefix>/j/<token>", join.URL)
	}
	joinToken := path.Base(ju.Path)
	// Phones connect where the join URL says: <prefix>/ws, with the
	// prefix's origin (the kiosk, or its room on a relay).
	phoneBase := join.URL[:strings.LastIndex(join.URL, "/j/")]
	origin := ju.Scheme + "://" + ju.Host
	if err := waitRelay(ctx, c, t, cfg.SeeWait); err != nil {
		return nil, err
	}

	rec := newRecorder()
	recCtx, stopRec := context.WithCancel(ctx)
	defer stopRec()
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		rec.run(recCtx, c, t.base)
	}()
	// The first answer gives the recorder a version to wait on.
	if _, ok := rec.waitFor(ctx, cfg.SeeWait, func(observation) bool { return true }); !ok {
		return nil, errors.New("recorder got no answer from /api/unlock")
	}

	res.Goroutines.Start, res.OpenFiles.Start = runtimeFigures(ctx, c, t)

	// The phones.
	frames := newFrameCounter()
	phones := make([]*phone, cfg.Phones)
	outcomes := make([]outcome, cfg.Phones)
	wsURL := "ws" + strings.TrimPrefix(phoneBase, "http") + "/ws"
	start := time.Now()
	var wg sync.WaitGroup
	if cfg.AtOnce {
		// Everyone in and joined first, then every slip at once.
		dials := make(chan struct{}, atOnceDials)
		var joined sync.WaitGroup
		slipsGo := make(chan struct{})
		for i := range cfg.Phones {
			wg.Add(1)
			joined.Add(1)
			go func() {
				defer wg.Done()
				dials <- struct{}{}
				p, err := dialPhone(ctx, wsURL, origin, frames)
				if err == nil {
					err = p.hello(joinToken)
				}
				<-dials
				joined.Done()
				if err != nil {
					outcomes[i] = outcome{fail: "dial", err: err}
					return
				}
				phones[i] = p
				select {
				case <-slipsGo:
				case <-ctx.Done():
					outcomes[i] = outcome{fail: "cancelled"}
					return
				}
				outcomes[i] = p.send(ctx, "consent", cfg.AckWait)
			}()
		}
		joined.Wait()
		sleepUntil(ctx, time.Now().Add(cfg.JoinSettle))
		close(slipsGo)
	} else {
		for i := range cfg.Phones {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := start.Add(cfg.Ramp * time.Duration(i) / time.Duration(cfg.Phones))
				if !sleepUntil(ctx, at) {
					outcomes[i] = outcome{fail: "cancelled"}
					return
				}
				p, err := dialPhone(ctx, wsURL, origin, frames)
				if err != nil {
					outcomes[i] = outcome{fail: "dial", err: err}
					return
				}
				phones[i] = p
				outcomes[i] = p.consent(ctx, joinToken, cfg.AckWait)
			}()
		}
	}
	wg.Wait()

	var lats []time.Duration
	var lastAck time.Time
	first := -1
	for i, o := range outcomes {
		if o.fail != "" {
			res.Failed++
			res.Failures[o.fail]++
			if res.FirstErr == "" && o.err != nil {
				res.FirstErr = o.err.Error()
			}
			continue
		}
		res.Acked++
		lats = append(lats, o.latency)
		if o.ackAt.After(lastAck) {
			lastAck = o.ackAt
		}
		if first < 0 {
			first = i
		}
	}
	slices.Sort(lats)
	res.AckP50 = ms(percentile(lats, 0.50))
	res.AckP99 = ms(percentile(lats, 0.99))
	if len(lats) > 0 {
		res.AckMax = ms(lats[len(lats)-1])
	}

	// The recorder should now see unlocked; only if every phone got its ack
	// is there anything to wait for.
	if res.Failed == 0 {
		if o, ok := rec.waitFor(ctx, cfg.SeeWait, func(o observation) bool { return o.unlocked }); ok {
			res.UnlockSeen = true
			res.UnlockAfterLastAck = ms(o.at.Sub(lastAck))
		}
	}
	res.Goroutines.Peak, res.OpenFiles.Peak = runtimeFigures(ctx, c, t)

	// One phone withdraws. The recorder stops after it sees locked, so
	// that no long-poll is left open when the harness counts what the
	// server still holds.
	if first >= 0 {
		// The withdrawal is measured on a quiet hall: sent while the
		// unlock's frames are still reaching a thousand phones, its ack
		// would time the harness's own phones reading them as much as the
		// server.
		waitQuiet(ctx, frames, quietFor, cfg.SeeWait)
		rec.stopWhenLocked.Store(true)
		sent := time.Now()
		o := phones[first].send(ctx, "refuse", cfg.AckWait)
		if o.fail == "" {
			res.WithdrawAck = ms(o.latency)
		} else {
			res.Failures["withdraw "+o.fail]++
		}
		if ob, ok := rec.waitFor(ctx, cfg.SeeWait, func(ob observation) bool { return !ob.unlocked && ob.at.After(sent) }); ok {
			res.LockSeen = true
			res.LockAfterWithdraw = ms(ob.at.Sub(sent))
		}
	}

	// Everyone leaves.
	for _, p := range phones {
		if p != nil {
			p.close()
		}
	}
	stopRec()
	<-recDone
	res.RecorderErrors = rec.errors()
	res.FramesToPhones = frames.Load()
	res.FramesByType = frames.byType()

	// Wait, bounded, for the server to let go of what the phones held.
	settle := time.NewTimer(cfg.Settle)
	defer settle.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		res.Goroutines.End, res.OpenFiles.End = runtimeFigures(ctx, c, t)
		if backToStart(res.Goroutines) && backToStart(res.OpenFiles) {
			res.Returned = true
			break
		}
		select {
		case <-tick.C:
			continue
		case <-settle.C:
		case <-ctx.Done():
		}
		break
	}

	if mem != nil {
		res.PeakRSS = mem.stop()
		if p := mem.peakFDs(); p > res.OpenFiles.Peak {
			res.OpenFiles.Peak = p
		}
	}
	res.Elapsed = ms(time.Since(begin))
	return res, nil
}

// quietFor is how long no frame may reach any phone before the hall counts
// as quiet.
const quietFor = 100 * time.Millisecond

// waitQuiet waits, at most max, until frames has not grown for quiet.
func waitQuiet(ctx context.Context, frames *frameCounter, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last, since := frames.Load(), time.Now()
	for time.Now().Before(deadline) && time.Since(since) < quiet {
		if !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
			return
		}
		if n := frames.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

// waitRelay waits, bounded, until a kiosk that runs through a relay has
// reached it; a kiosk without one passes at once.
func waitRelay(ctx context.Context, c *http.Client, t target, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var st struct {
			Relay *struct {
				Connected bool `json:"connected"`
			} `json:"relay"`
		}
		if _, err := call(ctx, c, t, "GET", "/api/state", nil, &st); err != nil {
			return nil // the floor has no state: it has no relay either
		}
		if st.Relay == nil || st.Relay.Connected {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reach its relay within %v", t.name, wait)
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// backToStart says whether g ended at or below where it started. A figure
// unknown from the start (-1) cannot be judged and does not count against;
// one that became unknown does, since a server that stopped answering has
// not shown that it let go.
func backToStart(g gauge) bool {
	if g.Start < 0 {
		return true
	}
	return g.End >= 0 && g.End <= g.Start
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// sleepUntil waits until at; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// outcome is what one slip got.
type outcome struct {
	fail    string // "" when acknowledged; otherwise why not
	err     error
	latency time.Duration // slip sent → ack received
	ackAt   time.Time
}

// phone is one simulated phone: a websocket and a reader goroutine that
// passes acks and errors on and counts everything else.
type phone struct {
	conn  *websocket.Conn
	inbox chan frame    // acks and errors
	done  chan struct{} // closed when the reader stops
}

type frame struct {
	at     time.Time
	Type   string `json:"type"`
	Choice string `json:"choice"`
	Code   string `json:"code"`
}

const (
	// phoneBuffer sizes the phone's socket buffers: the harness runs
	// thousands of phones and every frame it sends or expects is small.
	phoneBuffer = 1024
	// phoneWriteWait bounds a phone's write, so a stalled server cannot
	// hang the harness.
	phoneWriteWait = 10 * time.Second
	// phoneHandshake bounds the websocket handshake; a server too busy to
	// answer within it counts as refusing the phone.
	phoneHandshake = 15 * time.Second
)

func dialPhone(ctx context.Context, wsURL, origin string, frames *frameCounter) (*phone, error) {
	d := websocket.Dialer{
		HandshakeTimeout: phoneHandshake,
		ReadBufferSize:   phoneBuffer,
		WriteBufferSize:  phoneBuffer,
	}
	// The kiosk only accepts websockets from its own pages.
	h := http.Header{"Origin": {origin}}
	conn, resp, err := d.DialContext(ctx, wsURL, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %s", resp.Status)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	p := &phone{conn: conn, inbox: make(chan frame, 16), done: make(chan struct{})}
	go p.read(frames)
	return p, nil
}

// frameTypes are the kiosk → phone messages counted by type; any other
// counts as "other".
var frameTypes = []string{"seal", "round", "ack", "series", "tally", "sealed", "error"}

// frameCounter counts the frames every phone receives, in all and by type.
type frameCounter struct {
	all    atomic.Int64
	byKind []atomic.Int64 // frameTypes, then other
}

func newFrameCounter() *frameCounter {
	return &frameCounter{byKind: make([]atomic.Int64, len(frameTypes)+1)}
}

func (f *frameCounter) add(msg []byte) {
	f.all.Add(1)
	for i, t := range frameTypes {
		if bytes.Contains(msg, []byte(`"type":"`+t+`"`)) {
			f.byKind[i].Add(1)
			return
		}
	}
	f.byKind[len(frameTypes)].Add(1)
}

func (f *frameCounter) Load() int64 { return f.all.Load() }

func (f *frameCounter) byType() map[string]int64 {
	m := map[string]int64{}
	for i := range f.byKind {
		name := "other"
		if i < len(frameTypes) {
			name = frameTypes[i]
		}
		if n := f.byKind[i].Load(); n > 0 {
			m[name] = n
		}
	}
	return m
}

func (p *phone) read(frames *frameCounter) {
	defer close(p.done)
	for {
		_, msg, err := p.conn.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		frames.add(msg)
		// Most frames are tallies; decode only the ones the phone waits for.
		if !bytes.Contains(msg, []byte(`"ack"`)) && !bytes.Contains(msg, []byte(`"error"`)) {
			continue
		}
		f := frame{at: at}
		if json.Unmarshal(msg, &f) != nil || (f.Type != "ack" && f.Type != "error") {
			continue
		}
		// The phone waits for one answer at a time, so a full inbox only
		// holds answers nobody waits for; dropping keeps the reader moving.
		select {
		case p.inbox <- f:
		default:
		}
	}
}

func (p *phone) write(v any) error {
	p.conn.SetWriteDeadline(time.Now().Add(phoneWriteWait))
	return p.conn.WriteJSON(v)
}

// consent says hello with a fresh device secret and hands in a consent slip.
func (p *phone) consent(ctx context.Context, joinToken string, wait time.Duration) outcome {
	if err := p.hello(joinToken); err != nil {
		return outcome{fail: "write", err: err}
	}
	return p.send(ctx, "consent", wait)
}

// hello joins with a fresh device secret. It does not wait for an answer:
// the floor gives none, and a slip sent after it is read after it.
func (p *phone) hello(joinToken string) error {
	var dev [32]byte
	rand.Read(dev[:])
	return p.write(map[string]string{"type": "hello", "join": joinToken, "device": base64.RawURLEncoding.EncodeToString(dev[:])})
}

// send hands in a slip and waits for its ack.
func (p *phone) send(ctx context.Context, choice string, wait time.Duration) outcome {
	sent := time.Now()
	if err := p.write(map[string]string{"type": "slip", "choice": choice}); err != nil {
		return outcome{fail: "write", err: err}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case f := <-p.inbox:
			switch {
			case f.Type == "error":
				return outcome{fail: "error " + f.Code, err: fmt.Errorf("kiosk error %q", f.Code)}
			case f.Choice == choice:
				return outcome{latency: f.at.Sub(sent), ackAt: f.at}
			}
			// An ack for something else (the hello, say) is not the slip's.
		case <-p.done:
			return outcome{fail: "closed", err: errors.New("server closed the websocket before the ack")}
		case <-timer.C:
			return outcome{fail: "no ack", err: fmt.Errorf("no ack within %v", wait)}
		case <-ctx.Done():
			return outcome{fail: "cancelled", err: ctx.Err()}
		}
	}
}

// close leaves the room: a close frame, then the socket, then the reader.
func (p *phone) close() {
	p.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	p.conn.Close()
	<-p.done
}

// observation is one answer the recorder got.
type observation struct {
	at       time.Time
	unlocked bool
}

// recorder is recording software long-polling /api/unlock.
type recorder struct {
	mu      sync.Mutex
	obs     []observation
	errs    int
	changed chan struct{} // closed and replaced on every observation

	// stopWhenLocked makes the recorder stop after its next locked answer
	// rather than poll again.
	stopWhenLocked atomic.Bool
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// recorderWait is the long-poll the recorder asks for: the contract's
// example, and long enough that every change in a hall arrives as an early
// answer rather than a timeout.
const recorderWait = 30

func (r *recorder) run(ctx context.Context, c *http.Client, base string) {
	seen := ""
	for ctx.Err() == nil {
		u := base + "/api/unlock"
		if seen != "" {
			u += fmt.Sprintf("?wait=%d&seen=%s", recorderWait, url.QueryEscape(seen))
		}
		ob, version, err := r.poll(ctx, c, u)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.errs++
			r.mu.Unlock()
			// Back off a little so a server that is down is not hammered.
			if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
				return
			}
			continue
		}
		seen = version
		r.mu.Lock()
		r.obs = append(r.obs, ob)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if !ob.unlocked && r.stopWhenLocked.Load() {
			return
		}
	}
}

func (r *recorder) poll(ctx context.Context, c *http.Client, u string) (observation, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return observation{}, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return observation{}, "", err
	}
	defer resp.Body.Close()
	at := time.Now()
	var body struct {
		Unlocked bool            `json:"unlocked"`
		Version  json.RawMessage `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return observation{}, "", fmt.Errorf("unlock: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusLocked {
		return observation{}, "", fmt.Errorf("unlock: %s", resp.Status)
	}
	// The contract: unlocked only with 200 and "unlocked":true.
	ob := observation{at: at, unlocked: resp.StatusCode == http.StatusOK && body.Unlocked}
	return ob, strings.Trim(string(body.Version), `"`), nil
}

// waitFor returns the first observation for which ok holds, waiting at most
// d for one to arrive.
func (r *recorder) waitFor(ctx context.Context, d time.Duration, ok func(observation) bool) (observation, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		for _, o := range r.obs {
			if ok(o) {
				r.mu.Unlock()
				return o, true
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return observation{}, false
		case <-ctx.Done():
			return observation{}, false
		}
	}
}

func (r *recorder) errors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}

// memSampler follows a process's resident memory and open files until
// stopped, because VmHWM alone misses nothing but says nothing about fds.
type memSampler struct {
	pid    int
	quit   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	rss    int64
	fds    int
	result int64
	once   sync.Once
}

// memSampleEvery is often enough to catch a peak that lasts as long as a
// hall's ramp, and cheap next to thousands of sockets.
const memSampleEvery = 50 * time.Millisecond

func startMemSampler(pid int) *memSampler {
	m := &memSampler{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(memSampleEvery)
		defer tick.Stop()
		for {
			m.sample()
			select {
			case <-tick.C:
			case <-m.quit:
				return
			}
		}
	}()
	return m
}

func (m *memSampler) sample() {
	rss, hwm, err := memStatus(m.pid)
	fds := countFDs(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.rss = max(m.rss, rss, hwm)
	}
	m.fds = max(m.fds, fds)
}

// stop ends sampling and returns the peak resident set in bytes, taking the
// kernel's own high-water mark into account.
func (m *memSampler) stop() int64 {
	m.once.Do(func() {
		close(m.quit)
		<-m.done
		m.sample()
		m.result = m.rss
	})
	return m.result
}

func (m *memSampler) peakFDs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fds
}
