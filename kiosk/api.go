package kiosk

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/consent-kiosk/kiosk/obs"
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

// waitForStateOr is waitForState that also answers when other is closed.
func (s *Server) waitForStateOr(w http.ResponseWriter, r *http.Request, other <-chan struct{}) (tally.State, error) {
	q := r.URL.Query()
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 || secs != secs {
			return tally.State{}, fmt.Errorf("%w: wait must be a number of seconds", errBadMessage)
		}
		wait = min(time.Duration(secs*float64(time.Second)), maxWait)
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
	if other != nil {
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
// It has no field for the split between consents and refusals (R6, R7).
type stateAnswer struct {
	Headcount  int    `json:"headcount"`
	Received   int    `json:"received"`
	Issued     int    `json:"issued"`
	Unlocked   bool   `json:"unlocked"`
	Reason     string `json:"reason,omitempty"`
	Round      int64  `json:"round"`
	Version    uint64 `json:"version"`
	Purpose    string `json:"purpose"`
	Notice     string `json:"notice"`
	NoticeHash string `json:"notice_hash"`
	Closed     bool   `json:"closed"`
	Fault      bool   `json:"fault"`
	// OBS is the OBS guard's status; absent when the kiosk guards no OBS.
	OBS *obs.Status `json:"obs,omitempty"`
}

func newStateAnswer(st tally.State) stateAnswer {
	return stateAnswer{
		Headcount: st.Headcount, Received: st.Received, Issued: st.Issued,
		Unlocked: st.Unlocked, Reason: string(st.Reason), Round: st.Round.ID, Version: st.Version,
		Purpose: st.Round.Purpose, Notice: st.Round.Notice, NoticeHash: st.Round.NoticeHash,
		Closed: st.Closed, Fault: st.Fault,
	}
}

// handleState answers the projector page, whose long-poll also wakes when
// the recorder guard's status changes.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	var recorderChanged <-chan struct{}
	if s.recorder != nil {
		_, recorderChanged = s.recorder.Changed()
	}
	st, err := s.waitForStateOr(w, r, recorderChanged)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	answer := newStateAnswer(st)
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
	if err := s.store.SetHeadcount(r.Context(), *body.Headcount); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newStateAnswer(s.store.State()))
}

func (s *Server) handleRound(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Purpose *string `json:"purpose"`
		Notice  string  `json:"notice"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if body.Purpose == nil || strings.TrimSpace(*body.Purpose) == "" {
		writeError(w, r, s.log, fmt.Errorf("%w: purpose is required", errBadMessage))
		return
	}
	spec := tally.RoundSpec{Purpose: strings.TrimSpace(*body.Purpose), Notice: strings.TrimSpace(body.Notice)}
	if _, err := s.store.NewRound(r.Context(), spec); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newStateAnswer(s.store.State()))
}

func (s *Server) handleClose(w http.ResponseWriter, r *http.Request) {
	if err := s.store.CloseSession(r.Context()); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, newStateAnswer(s.store.State()))
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
	return s.publicURL + "/j/" + token, expires
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	u, expires := s.JoinURL()
	writeJSON(w, http.StatusOK, joinAnswer{URL: u, ExpiresAt: expires.Format(time.RFC3339),
		Code: s.join.currentCode(), CodeURL: s.publicURL + "/k"})
}

// handleCode takes a typed join code from the form at /k and sends the
// phone on to the phone page of the same period, as the QR code would. A
// wrong code goes back to the form, which says what was wrong.
func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	back := func(err error) {
		http.Redirect(w, r, "/k?error="+classify(err).code, http.StatusSeeOther)
	}
	// The page sends no referrer, so a browser posts its form with
	// "Origin: null"; Sec-Fetch-Site still says where it came from.
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" && !sameOrigin(r, s.publicHost) {
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
	http.Redirect(w, r, "/j/"+token, http.StatusSeeOther)
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

// handleLecturerLogin turns the printed lecturer URL into a cookie and sends
// the browser to the projector page, so the token leaves the address bar
// before the page is projected.
func (s *Server) handleLecturerLogin(w http.ResponseWriter, r *http.Request) {
	if !s.auth.tokenOK(r.URL.Query().Get("token")) {
		writeError(w, r, s.log, errUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     lecturerCookie,
		Value:    s.auth.cookieValue,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	// A page, not a redirect: a browser that came here from another
	// application treats a redirect as cross-site and would withhold the
	// SameSite=Strict cookie from the next request.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, `<!doctype html><html lang="en"><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/"><title>Consent kiosk</title><p><a href="/">Open the projector page</a></p></html>`)
}
