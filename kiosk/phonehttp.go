package kiosk

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/consent-kiosk/kiosk/tally"
)

// phoneWait is how long a long-polling hello over HTTP waits for a change:
// well under the 60 s after which proxies and phones give up on a request,
// and long enough that a hall of idle phones costs little.
const phoneWait = 25 * time.Second

// phoneLimitIdle: a phone's rate limiter that has not been used for this
// long is full again anyway, and is forgotten.
const phoneLimitIdle = time.Minute

// phoneLimits gives each phone on the HTTP fallback the same message rate
// as a websocket connection. Phones are told apart by a keyed hash of their
// device secret that lives only in memory, under a key made at start: the
// secret itself is never kept.
type phoneLimits struct {
	key   []byte
	max   int // most phones tracked; beyond that, idle ones are forgotten
	rate  rate.Limit
	burst int

	mu sync.Mutex
	m  map[[32]byte]*phoneLimit
}

type phoneLimit struct {
	lim  *rate.Limiter
	used time.Time
}

func newPhoneLimits(max int, lim connLimits) *phoneLimits {
	key := make([]byte, 32)
	rand.Read(key)
	return &phoneLimits{key: key, max: max, rate: lim.msgRate, burst: lim.msgBurst, m: map[[32]byte]*phoneLimit{}}
}

func (p *phoneLimits) id(secret string) [32]byte {
	h := hmac.New(sha256.New, p.key)
	h.Write([]byte(secret))
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// allow reports whether the phone with this secret may send a message now.
// Only phones the session knows are tracked (track, after their hello
// passed the checks), so made-up secrets cannot fill the table; a message
// from one the table does not hold is let through to the store, which
// refuses a stranger without writing anything.
func (p *phoneLimits) allow(secret string, now time.Time) bool {
	id := p.id(secret)
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.m[id]
	if !ok {
		return true
	}
	l.used = now
	return l.lim.AllowN(now, 1)
}

// track starts limiting a phone that has joined. When the table is full of
// phones active within phoneLimitIdle, the phone goes untracked.
func (p *phoneLimits) track(secret string, now time.Time) {
	id := p.id(secret)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[id]; ok {
		return
	}
	if len(p.m) >= p.max {
		for k, v := range p.m {
			if now.Sub(v.used) > phoneLimitIdle {
				delete(p.m, k)
			}
		}
		if len(p.m) >= p.max {
			return
		}
	}
	p.m[id] = &phoneLimit{lim: rate.NewLimiter(p.rate, p.burst), used: now}
}

// pollSeat checks a long-polling hello before it waits, and takes its seat.
func (s *Server) pollSeat(ctx context.Context, m phoneMessage, evict func()) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, storeWait)
	defer cancel()
	slip, err := s.joinPhone(ctx, m)
	if err != nil {
		return nil, err
	}
	release, ok := s.seats.take(seatPoll, m.Device, slip.Choice != tally.ChoiceNone, s.maxPhones, evict)
	if !ok {
		return nil, errFull
	}
	return release, nil
}

// handlePhone is the phones' fallback for networks that block websockets:
// one phone → kiosk message per POST, answered with the kiosk → phone
// messages the websocket would have sent, under the same checks and limits.
// A hello with "seen" waits, like /api/unlock, until the tally changes.
func (s *Server) handlePhone(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r, s.originHost(r)) {
		s.phoneError(w, inClear, errForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFrameSize)
	data, err := io.ReadAll(r.Body)
	if err != nil {
		s.phoneError(w, inClear, err)
		return
	}
	if messageType(data) == msgSeal {
		s.openPhoneSeal(func(status int, frames ...[]byte) { s.writePhone(w, inClear, status, frames...) })
		return
	}
	m, how, err := s.decodePhoneBody(data)
	if err != nil {
		s.phoneError(w, how, err)
		return
	}
	if !s.phoneLimits.allow(m.Device, time.Now()) {
		s.phoneError(w, inClear, errRateLimited) // in clear, as the websocket answers it before opening anything
		return
	}
	if m.Type == msgHello && m.HasSeen {
		// Before anything waits: the phone must be one the session knows
		// or bring a valid token, and then takes a long-poll seat of its
		// own (caps.go), so strangers hold nothing open.
		// Ending the seat (its device took a newer one) answers at once.
		ctx, evict := context.WithCancel(r.Context())
		defer evict()
		r = r.WithContext(ctx)
		release, err := s.pollSeat(ctx, m, evict)
		if err != nil {
			s.phoneError(w, how, err)
			return
		}
		defer release()
	}
	s.hub.connected.Add(1) // for /api/runtime
	defer s.hub.connected.Add(-1)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // the kiosk is stopping
	defer stop()

	if m.Type == msgHello && m.HasSeen {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(phoneWait + 10*time.Second))
		wctx, wcancel := context.WithTimeout(ctx, phoneWait)
		s.store.Wait(wctx, m.Seen)
		wcancel()
	}
	// Each request names its phone: the store refuses a slip or a leave
	// from one that has not joined, or has left.
	p := phoneSession{srv: s, device: m.Device}
	p.answer(ctx, m, func(r phoneReply) { s.deliverPhone(w, how, r) })
}

func (s *Server) phoneError(w http.ResponseWriter, how replySeal, err error) {
	s.deliverPhone(w, how, s.failed(err))
}

// deliverPhone answers with a reply, the tally last: 200 when the message
// went through, the error's status when not.
func (s *Server) deliverPhone(w http.ResponseWriter, how replySeal, reply phoneReply) {
	if reply.tally {
		t, _ := json.Marshal(newTallyMessage(s.store.State()))
		reply.frames = append(reply.frames, t)
	}
	status := http.StatusOK
	if reply.err != nil {
		status = classify(reply.err).status
	}
	s.writePhone(w, how, status, reply.frames...)
}

// writePhone answers with a JSON array of kiosk → phone messages, each
// exactly as the websocket would send it (an ack keeps its padding), and
// sealed as the websocket would seal it when the request was sealed.
func (s *Server) writePhone(w http.ResponseWriter, how replySeal, status int, frames ...[]byte) {
	frames, err := sealAnswers(how, frames)
	if err != nil {
		s.log.Error("seal answer", "err", err)
		status, frames = http.StatusInternalServerError, [][]byte{errorFrame(err)}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b := []byte{'['}
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, "]\n"...)
	w.Write(b)
}
