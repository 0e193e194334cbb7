package kiosk

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/consent-kiosk/kiosk/seal"
	"golang.org/x/time/rate"
)

// The HTTP fallback seals as the websocket does. HTTP has no connection to
// hold a challenge, so a phone first asks for a seal session,
// POST /api/phone {"type":"seal"}, and gets the kiosk's key, a random
// session id and the session's own 16-byte challenge. Every request after
// that is {"type":"sealed","session":"…","seq":N,"epk","nonce","box"},
// opened with the same Sealer and padding as a websocket frame, and
// answered with sealed acks and errors. Sessions live in memory only, are
// few, and die when unused for httpSealIdle or at httpSealLife.

// httpSealIdle: a seal session on the HTTP fallback unused for this long is
// gone; the page's long-poll uses it every 25 s or so.
const httpSealIdle = 2 * time.Minute

// httpSealLife bounds a seal session however busy it is.
const httpSealLife = 15 * time.Minute

// sealWindow is how far below the highest seq seen a request may still
// arrive, once, so that requests in flight together may land out of order.
const sealWindow = 63

var (
	errSealExpired = errors.New("seal session expired or unknown")
	// A phone hears the same "full" whether seats or seal sessions ran out.
	errSealsFull = fmt.Errorf("too many seal sessions: %w", errFull)
)

type httpSeals struct {
	max     int
	limiter *rate.Limiter // new sessions, for all phones together

	mu sync.Mutex
	m  map[string]*httpSealSession
}

type httpSealSession struct {
	challenge     []byte
	created, used time.Time
	device        string // the one phone the session speaks for, once known
	top           uint32 // the highest seq taken
	below         uint64 // bit i set: seq top-1-i was taken
}

func newHTTPSeals(max int) *httpSeals {
	return &httpSeals{max: max, limiter: rate.NewLimiter(joinRate, max), m: map[string]*httpSealSession{}}
}

func (s *httpSealSession) expired(now time.Time) bool {
	return now.Sub(s.used) >= httpSealIdle || now.Sub(s.created) >= httpSealLife
}

// open starts a session and returns its id and challenge.
func (h *httpSeals) open(now time.Time) (string, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) >= h.max {
		for id, s := range h.m {
			if s.expired(now) {
				delete(h.m, id)
			}
		}
		if len(h.m) >= h.max {
			return "", nil, errSealsFull
		}
	}
	if !h.limiter.AllowN(now, 1) {
		return "", nil, errRateLimited
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	id := base64.RawURLEncoding.EncodeToString(idb)
	c := make([]byte, seal.ChallengeLen)
	rand.Read(c)
	h.m[id] = &httpSealSession{challenge: c, created: now, used: now}
	return id, bytes.Clone(c), nil
}

// live returns session id, or errSealExpired if there is none or it has
// expired, in which case it is gone. h.mu must be held.
func (h *httpSeals) live(id string, now time.Time) (*httpSealSession, error) {
	s, ok := h.m[id]
	if !ok || s.expired(now) {
		delete(h.m, id)
		return nil, errSealExpired
	}
	return s, nil
}

// challenge returns the challenge of a live session.
func (h *httpSeals) challenge(id string, now time.Time) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := h.live(id, now)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(s.challenge), nil
}

// take records that the request seq of session id, from the phone with
// this device secret, is acted on. Each seq is taken at most once; a seq
// more than sealWindow below the highest is refused.
func (h *httpSeals) take(id string, seq uint32, device string, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := h.live(id, now)
	if err != nil {
		return err
	}
	if s.device != "" && s.device != device {
		return errOnePhone
	}
	switch {
	case seq == 0:
		return fmt.Errorf("%w: seq 0", seal.ErrBroken)
	case seq > s.top:
		shift := uint64(seq - s.top)
		if shift > sealWindow {
			s.below = 0
		} else {
			s.below = (s.below<<1 | 1) << (shift - 1) & (1<<sealWindow - 1)
		}
		if s.top == 0 {
			s.below = 0 // there was no seq 0 to remember
		}
		s.top = seq
	default:
		d := uint64(s.top - seq)
		if d == 0 || d > sealWindow || s.below&(1<<(d-1)) != 0 {
			return fmt.Errorf("%w: seq %d already taken or too old", seal.ErrBroken, seq)
		}
		s.below |= 1 << (d - 1)
	}
	s.device = device
	s.used = now
	return nil
}

// messageType returns the "type" of a JSON object, or "".
func messageType(data []byte) string {
	var head struct {
		Type string `json:"type"`
	}
	json.Unmarshal(data, &head)
	return head.Type
}

// decodePhoneBody decodes the body of POST /api/phone: a message in clear,
// as plain clients send, or a sealed one. For a sealed message it returns
// what seals the answer; an error with inClear is answered in clear
// (a replay, or a session the kiosk does not know, gets nothing sealed).
func (s *Server) decodePhoneBody(data []byte) (phoneMessage, replySeal, error) {
	if messageType(data) != msgSealed {
		m, err := decodePhoneRequest(data)
		return m, inClear, err
	}
	f, err := seal.ParseSessionFrame(data)
	if errors.Is(err, seal.ErrNoSession) {
		err = errSealExpired
	}
	if err != nil {
		return phoneMessage{}, inClear, err
	}
	now := s.now()
	challenge, err := s.httpSeals.challenge(f.Session, now)
	if err != nil {
		return phoneMessage{}, inClear, err
	}
	o, err := s.sealer.OpenParsed(f, challenge)
	if err != nil {
		return phoneMessage{}, inClear, err
	}
	m, err := decodePhoneRequest(o.Msg)
	if err != nil {
		return m, sealedBy(o), err
	}
	if err := s.httpSeals.take(f.Session, o.Seq, m.Device, now); err != nil {
		return phoneMessage{}, inClear, err
	}
	return m, sealedBy(o), nil
}

// openPhoneSeal answers {"type":"seal"}: a new seal session.
func (s *Server) openPhoneSeal(write func(int, ...[]byte)) {
	id, c, err := s.httpSeals.open(s.now())
	if err != nil {
		write(classify(err).status, errorFrame(err))
		return
	}
	b64 := base64.RawURLEncoding.EncodeToString
	write(200, fmt.Appendf(nil, `{"type":%q,"key":%q,"challenge":%q,"session":%q,"expires_in":%d}`,
		msgSeal, s.sealer.PublicKeyString(), b64(c), id, int(httpSealIdle/time.Second)))
}

// sealAnswers seals the answers to a sealed request: acks, errors and
// series offers, which would tell a listener what the phone chose. Rounds
// and tallies are the same for every phone and stay in clear, as on the
// websocket (a round's notice may not fit a sealed answer).
func sealAnswers(how replySeal, frames [][]byte) ([][]byte, error) {
	if !how.sealed() {
		return frames, nil
	}
	out := make([][]byte, len(frames))
	for i, f := range frames {
		switch messageType(f) {
		case msgRound, msgTally:
			out[i] = f
			continue
		}
		b, err := how.seal(f)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// A replySeal says how the answers to one phone message are sent: sealed
// with the keys that message came with, or inClear, for a message that
// came in clear or did not open.
type replySeal struct{ opened *seal.Opened }

// inClear answers in clear.
var inClear = replySeal{}

// sealedBy answers sealed with o's keys.
func sealedBy(o seal.Opened) replySeal { return replySeal{&o} }

// seal returns msg as it is sent.
func (r replySeal) seal(msg []byte) ([]byte, error) {
	if r.opened == nil {
		return msg, nil
	}
	return r.opened.SealReply(msg)
}

func (r replySeal) sealed() bool { return r.opened != nil }
