package kiosk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/consent-kiosk/kiosk/obs"
	"github.com/consent-kiosk/kiosk/static"
	"github.com/consent-kiosk/kiosk/tally"
)

// unlockAnswer is the body of GET /api/unlock.
type unlockAnswer struct {
	Unlocked  bool   `json:"unlocked"`
	Reason    string `json:"reason,omitempty"`
	Version   uint64 `json:"version"`
	Round     int64  `json:"round"`
	Headcount int    `json:"headcount"`
	Received  int    `json:"received"`
	Mode      string `json:"mode"`
}

// unlockStatus is 200 only while the rule unlocks; 423 for every locked
// state the rule names, and 503 when the kiosk cannot vouch for the tally.
func unlockStatus(st tally.State) int {
	switch {
	case st.Unlocked:
		return http.StatusOK
	case st.Reason == tally.ReasonFault:
		return http.StatusServiceUnavailable
	}
	return http.StatusLocked
}

func (s *Server) handleUnlock(w http.ResponseWriter, r *http.Request) {
	st, err := s.waitForState(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, unlockStatus(st), newUnlockAnswer(st))
}

// waitForState answers a possible long-poll: with ?wait=SECONDS&seen=VERSION
// it returns as soon as the version differs from seen, or after the wait.
func (s *Server) waitForState(w http.ResponseWriter, r *http.Request) (tally.State, error) {
	return s.waitForStateOr(w, r, nil)
}

// parseWait reads a long-poll's ?wait=SECONDS ("" is no wait). Not finite
// or negative is refused; anything longer than maxWait is maxWait,
// compared before converting, since a float beyond time.Duration's range
// converts to nonsense.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(secs, 0) || math.IsNaN(secs) || secs < 0 {
		return 0, fmt.Errorf("%w: wait must be a finite, non-negative number of seconds", errBadMessage)
	}
	if secs >= maxWait.Seconds() {
		return maxWait, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// waitForStateOr is waitForState that also answers when one of others is
// closed.
func (s *Server) waitForStateOr(w http.ResponseWriter, r *http.Request, others ...<-chan struct{}) (tally.State, error) {
	q := r.URL.Query()
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		return tally.State{}, err
	}
	v := q.Get("seen")
	if v == "" || wait == 0 {
		if v != "" {
			if _, err := strconv.ParseUint(v, 10, 64); err != nil {
				return tally.State{}, fmt.Errorf("%w: seen must be a version number", errBadMessage)
			}
		}
		return s.store.State(), nil
	}
	seen, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return tally.State{}, fmt.Errorf("%w: seen must be a version number", errBadMessage)
	}
	// The server's write timeout is shorter than a long-poll may be.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	// A long-poll ends when the kiosk stops, or Shutdown would wait for it.
	defer context.AfterFunc(s.ctx, cancel)()
	for _, other := range others {
		if other == nil {
			continue
		}
		go func() {
			select {
			case <-other:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return s.store.Wait(ctx, seen), nil
}

// stateAnswer is the body of GET /api/state and of the lecturer's changes.
// It has no field for the split between consents and refusals (R6, R7);
// paper is the total of paper slips, already included in received.
type stateAnswer struct {
	Headcount int    `json:"headcount"`
	Received  int    `json:"received"`
	Issued    int    `json:"issued"`
	Paper     int    `json:"paper"`
	Unlocked  bool   `json:"unlocked"`
	Reason    string `json:"reason,omitempty"`
	Round     int64  `json:"round"`
	Version   uint64 `json:"version"`
	roundFields
	Fault bool `json:"fault"`
	// Missing is the phones that held a slip before a restart and have not
	// sent it again; PaperMissing the paper slips to enter again since.
	// While either is above 0 the kiosk is locked, restarted.
	Missing      int `json:"missing"`
	PaperMissing int `json:"paper_missing"`
	// OBS is the OBS guard's status; absent when the kiosk guards no OBS.
	OBS *obs.Status `json:"obs,omitempty"`
	// LecturerDevices is how many lecturer browsers are signed in.
	LecturerDevices int `json:"lecturer_devices"`
	// Relay is the relay phones connect through; absent without one.
	Relay *relayAnswer `json:"relay,omitempty"`
	// Hints are codes of advice the pages explain in plain words.
	Hints []string `json:"hints"`
	// JoinLimit is how many phones may join the session; JoinLimitHit
	// whether one was refused for it and the session is still at it.
	JoinLimit    int  `json:"join_limit"`
	JoinLimitHit bool `json:"join_limit_hit"`
	// HookProblem is why the lock hook did not start, while it is being
	// tried again; absent while the hooks start, or without hooks.
	HookProblem string `json:"hook_problem,omitempty"`
}

type relayAnswer struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
}

func newStateAnswer(st tally.State) stateAnswer {
	return stateAnswer{
		Headcount: st.Headcount, Received: st.Received, Issued: st.Issued, Paper: st.Paper,
		Unlocked: st.Unlocked, Reason: string(st.Reason), Round: st.Round.ID, Version: st.Version,
		roundFields: newRoundFields(st), Fault: st.Fault,
		Missing: st.Missing, PaperMissing: st.PaperMissing,
	}
}

// stateAnswer is newStateAnswer with what the server adds: signed-in
// lecturer devices, hints and the relay's link.
func (s *Server) stateAnswer(st tally.State) stateAnswer {
	a := newStateAnswer(st)
	a.LecturerDevices, _ = s.auth.devices()
	a.Hints = s.Hints(st)
	a.JoinLimit = joinLimit(st.Headcount)
	a.JoinLimitHit = s.joins.hit(st.Issued, a.JoinLimit)
	if s.hookStatus != nil {
		a.HookProblem, _ = s.hookStatus.Problem()
	}
	if s.relayHost != "" {
		a.Relay = &relayAnswer{URL: s.phoneURL, Connected: s.relayUp.Load()}
	}
	return a
}

// noticeJSON is a round's canonical notice as it goes on the wire: a JSON
// string, or an object of notice fields.
func noticeJSON(r tally.Round) json.RawMessage {
	if r.Notice == "" {
		return json.RawMessage(`""`)
	}
	return json.RawMessage(r.Notice)
}

// handleState answers the projector page, whose long-poll also wakes when
// the recorder guard's status changes.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	var recorderChanged <-chan struct{}
	if s.recorder != nil {
		_, recorderChanged = s.recorder.Changed()
	}
	_, devicesChanged := s.auth.devices()
	var hooksChanged <-chan struct{}
	if s.hookStatus != nil {
		_, hooksChanged = s.hookStatus.Problem()
	}
	st, err := s.waitForStateOr(w, r, recorderChanged, devicesChanged, s.joins.wake.changed(), hooksChanged)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	answer := s.stateAnswer(st)
	if s.recorder != nil {
		status, _ := s.recorder.Changed()
		answer.OBS = &status
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) handleHeadcount(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Headcount *int `json:"headcount"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if body.Headcount == nil {
		writeError(w, r, s.log, fmt.Errorf("%w: headcount is required", errBadMessage))
		return
	}
	s.answerChange(w, r, s.store.SetHeadcount(r.Context(), *body.Headcount))
}

// handleRound starts a round. The notice is either a text or an object of
// notice fields (tally.NoticeFields); anything else is a 400.
func (s *Server) handleRound(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Purpose  *string         `json:"purpose"`
		Notice   json.RawMessage `json:"notice"`
		Template string          `json:"template"`
		Series   string          `json:"series"`
		Mode     string          `json:"mode"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if body.Purpose == nil || strings.TrimSpace(*body.Purpose) == "" {
		writeError(w, r, s.log, fmt.Errorf("%w: purpose is required", errBadMessage))
		return
	}
	spec := tally.RoundSpec{Purpose: *body.Purpose, Template: body.Template, Series: body.Series, Mode: tally.Mode(body.Mode)}
	switch n := bytes.TrimSpace(body.Notice); {
	case len(n) == 0 || string(n) == "null":
	case n[0] == '"':
		if err := json.Unmarshal(n, &spec.Notice); err != nil {
			writeError(w, r, s.log, fmt.Errorf("%w: notice is not a valid string", errBadMessage))
			return
		}
	case n[0] == '{':
		if err := json.Unmarshal(n, &spec.Fields); err != nil {
			writeError(w, r, s.log, fmt.Errorf("%w: every notice field must be a string", errBadMessage))
			return
		}
		if spec.Fields == nil {
			spec.Fields = map[string]string{}
		}
	default:
		writeError(w, r, s.log, fmt.Errorf("%w: notice must be a text or an object of notice fields", errBadMessage))
		return
	}
	_, err := s.store.NewRound(r.Context(), spec)
	s.answerChange(w, r, err)
}

// handlePaper sets the current round's paper slips. Both counts are
// required, so that a request that forgot one cannot zero it.
func (s *Server) handlePaper(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Consents *int `json:"consents"`
		Refusals *int `json:"refusals"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if body.Consents == nil || body.Refusals == nil {
		writeError(w, r, s.log, fmt.Errorf("%w: consents and refusals are both required", errBadMessage))
		return
	}
	s.answerChange(w, r, s.store.SetPaper(r.Context(), *body.Consents, *body.Refusals))
}

// recordAnswer is the body of GET /api/record.
type recordAnswer struct {
	GeneratedAt   string        `json:"generated_at"`
	RetentionDays float64       `json:"retention_days"`
	Rounds        []recordRound `json:"rounds"`
}

// recordRound is one round of the record on the wire (tally.RoundRecord).
type recordRound struct {
	Round      int64             `json:"round"`
	Purpose    string            `json:"purpose"`
	Notice     json.RawMessage   `json:"notice"` // a string or an object
	NoticeHash string            `json:"notice_hash"`
	Template   string            `json:"template,omitempty"`
	Series     string            `json:"series,omitempty"`
	Mode       tally.Mode        `json:"mode"`
	OpenedAt   time.Time         `json:"opened_at"`
	ClosedAt   *time.Time        `json:"closed_at"`
	Headcount  int               `json:"headcount"`
	Received   *int              `json:"received"`
	Paper      int               `json:"paper"`
	Outcome    string            `json:"outcome"`
	Current    bool              `json:"current"`
	Intervals  []recordInterval  `json:"intervals"`
	Headcounts []headcountChange `json:"headcount_changes"`
}

type recordInterval struct {
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end"`
	Why   string     `json:"ended_by"`
}

type headcountChange struct {
	At        time.Time `json:"at"`
	Headcount int       `json:"headcount"`
}

func newRecordRound(r tally.RoundRecord) recordRound {
	out := recordRound{Round: r.Round, Purpose: r.Purpose, Notice: r.Notice, NoticeHash: r.NoticeHash, Template: r.Template,
		Series: r.Series, Mode: r.Mode, OpenedAt: r.OpenedAt, ClosedAt: r.ClosedAt, Headcount: r.Headcount,
		Received: r.Received, Paper: r.Paper, Outcome: r.Outcome, Current: r.Current,
		Intervals: []recordInterval{}, Headcounts: []headcountChange{}}
	for _, iv := range r.Intervals {
		out.Intervals = append(out.Intervals, recordInterval(iv))
	}
	for _, h := range r.Headcounts {
		out.Headcounts = append(out.Headcounts, headcountChange(h))
	}
	return out
}

// seriesEntry is one series on the wire (tally.SeriesInfo).
type seriesEntry struct {
	Name       string `json:"series"`
	Purpose    string `json:"purpose"`
	NoticeHash string `json:"notice_hash"`
	StartedOn  string `json:"started_on"`
	LastOn     string `json:"last_on"`
}

func (s *Server) handleRecord(w http.ResponseWriter, r *http.Request) {
	var round int64
	if v := r.URL.Query().Get("round"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, r, s.log, fmt.Errorf("%w: round must be a positive integer", errBadMessage))
			return
		}
		round = n
	}
	recs, err := s.store.Record(r.Context(), round)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	rounds := []recordRound{}
	for _, rec := range recs {
		rounds = append(rounds, newRecordRound(rec))
	}
	writeJSON(w, http.StatusOK, recordAnswer{
		GeneratedAt:   s.now().UTC().Format(time.RFC3339),
		RetentionDays: s.store.Retention().Hours() / 24,
		Rounds:        rounds,
	})
}

func (s *Server) handleSeriesList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.Series(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out := []seriesEntry{}
	for _, si := range list {
		out = append(out, seriesEntry(si))
	}
	writeJSON(w, http.StatusOK, map[string]any{"series": out})
}

func (s *Server) handleSeriesEnd(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Series *string `json:"series"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if body.Series == nil || strings.TrimSpace(*body.Series) == "" {
		writeError(w, r, s.log, fmt.Errorf("%w: series is required", errBadMessage))
		return
	}
	if err := s.store.EndSeries(r.Context(), strings.TrimSpace(*body.Series)); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.handleSeriesList(w, r)
}

// handleTemplates answers every notice template the kiosk ships, so that the
// projector page can offer them without knowing which languages exist.
func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request) {
	names, err := fs.Glob(static.Files, "templates/*.json")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	list := make([]json.RawMessage, 0, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(static.Files, name)
		if err != nil || !json.Valid(b) {
			writeError(w, r, s.log, fmt.Errorf("template %s: %v", name, err))
			return
		}
		list = append(list, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"fields": tally.NoticeFields(), "templates": list})
}

// handleRestartRelease lets go the phones that have not sent their slip
// again since a restart (and the paper slips not entered again): their
// slips are removed and the room is asked again.
func (s *Server) handleRestartRelease(w http.ResponseWriter, r *http.Request) {
	s.answerChange(w, r, s.store.ReleaseMissing(r.Context()))
}

// handleClose closes the session and signs out every lecturer browser:
// the next lecture starts from a new login link.
func (s *Server) handleClose(w http.ResponseWriter, r *http.Request) {
	err := s.store.CloseSession(r.Context())
	if err == nil {
		err = s.auth.endAll(r.Context())
	}
	s.answerChange(w, r, err)
}

// answerChange answers a lecturer's change: the error, or the state the
// change left.
func (s *Server) answerChange(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, s.stateAnswer(s.store.State()))
}

// joinAnswer is the body of GET /api/join.
type joinAnswer struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
	// Code is the typed join code of the same period, for phones that
	// cannot scan; CodeURL is the short address where it is typed.
	Code    string `json:"code"`
	CodeURL string `json:"code_url"`
}

// JoinURL returns the URL phones join at now, and when it stops working.
func (s *Server) JoinURL() (string, time.Time) {
	token, expires := s.join.current()
	return s.phoneURL + "/j/" + token, expires
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	u, expires := s.JoinURL()
	writeJSON(w, http.StatusOK, joinAnswer{URL: u, ExpiresAt: expires.Format(time.RFC3339),
		Code: s.join.currentCode(), CodeURL: s.phoneURL + "/k"})
}

// handleCode takes a typed join code from the form at /k and sends the
// phone on to the phone page of the same period, as the QR code would. A
// wrong code goes back to the form, which says what was wrong.
func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	back := func(err error) {
		http.Redirect(w, r, s.prefix(r)+"/k?error="+classify(err).code, http.StatusSeeOther)
	}
	// The page sends no referrer, so a browser posts its form with
	// "Origin: null"; Sec-Fetch-Site still says where it came from.
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" && !sameOrigin(r, s.originHost(r)) {
		writeError(w, r, s.log, errForbidden)
		return
	}
	if !s.codeLimit.Allow() {
		back(errRateLimited)
		return
	}
	// A code is six characters; a form's worth of bytes is plenty.
	r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	if err := r.ParseForm(); err != nil {
		back(fmt.Errorf("%w: not a form", errBadMessage))
		return
	}
	token, err := s.join.verifyCode(r.PostForm.Get("code"))
	if err != nil {
		back(err)
		return
	}
	http.Redirect(w, r, s.prefix(r)+"/j/"+token, http.StatusSeeOther)
}

func (s *Server) handleQR(w http.ResponseWriter, r *http.Request) {
	u, _ := s.JoinURL()
	png, err := s.qrPNG(u)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(png)
}

// handleRuntime reports the kiosk's own resource use, for the load harness
// and for a lecturer wondering whether the laptop copes.
func (s *Server) handleRuntime(w http.ResponseWriter, r *http.Request) {
	files := -1
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		files = len(entries)
	}
	writeJSON(w, http.StatusOK, map[string]int64{
		"goroutines": int64(runtime.NumGoroutine()),
		"open_files": int64(files),
		"phones":     s.hub.connected.Load(),
	})
}
