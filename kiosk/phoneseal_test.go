package kiosk

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

// httpSeal is a phone's seal session on the HTTP fallback.
type httpSeal struct {
	k         *testKiosk
	id        string
	key       []byte
	challenge []byte
	seq       uint32
}

func (k *testKiosk) openHTTPSeal() *httpSeal {
	k.t.Helper()
	status, msgs := k.postPhone(`{"type":"seal"}`, k.http.URL)
	m := find(msgs, "seal")
	if status != http.StatusOK || m == nil {
		k.t.Fatalf(`POST /api/phone {"type":"seal"} = %d %v; want 200 and a seal session`, status, msgs)
	}
	b64 := base64.RawURLEncoding.Strict()
	key, err1 := b64.DecodeString(m["key"].(string))
	challenge, err2 := b64.DecodeString(m["challenge"].(string))
	id, _ := m["session"].(string)
	if err1 != nil || err2 != nil || len(key) != 32 || len(challenge) != seal.ChallengeLen || len(id) < 22 {
		k.t.Fatalf("seal session %v: want a 32-byte key, a %d-byte challenge and a random id", m, seal.ChallengeLen)
	}
	return &httpSeal{k: k, id: id, key: key, challenge: challenge}
}

// body seals msg as request seq of the session and returns the request
// body and what opens the answer.
func (h *httpSeal) body(msg string, seq uint32) (string, sealed) {
	h.k.t.Helper()
	frame, s := sealFor(h.k.t, h.key, msg, h.challenge, seq)
	return strings.Replace(frame, `{"type":"sealed",`, `{"type":"sealed","session":"`+h.id+`",`, 1), s
}

// send posts body and returns the status and the answers, the sealed ones
// opened with s.
func (h *httpSeal) send(body string, s sealed) (int, []map[string]any) {
	h.k.t.Helper()
	status, msgs := h.k.postPhone(body, h.k.http.URL)
	for i, m := range msgs {
		if m["type"] != "sealed" {
			continue
		}
		raw, _ := json.Marshal(m)
		text, err := s.openAnswer(h.k.t, raw)
		if err != nil {
			h.k.t.Fatalf("the kiosk's sealed answer %s does not open: %v", raw, err)
		}
		var inner map[string]any
		if err := json.Unmarshal([]byte(text), &inner); err != nil {
			h.k.t.Fatalf("sealed answer %q is not JSON: %v", text, err)
		}
		msgs[i] = inner
	}
	return status, msgs
}

// post seals msg as the session's next request and sends it.
func (h *httpSeal) post(msg string) (int, []map[string]any, string) {
	h.k.t.Helper()
	h.seq++
	body, s := h.body(msg, h.seq)
	status, msgs := h.send(body, s)
	return status, msgs, body
}

// TestPhoneOverHTTPSealedReplay: someone on the Wi-Fi captures a phone's
// sealed consent over the HTTP fallback; the student then refuses. Playing
// the captured body again, in its session or in a new one, must change
// nothing and be refused.
func TestPhoneOverHTTPSealedReplay(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	device := strings.Repeat("s", 43)
	h := k.openHTTPSeal()

	status, msgs, hello := h.post(`{"type":"hello","join":"` + k.joinToken() + `","device":"` + device + `"}`)
	if ack := find(msgs, "ack"); status != 200 || ack == nil || ack["choice"] != "none" {
		t.Fatalf("sealed hello over HTTP = %d %v; want 200 and an ack", status, msgs)
	}
	status, msgs, consent := h.post(`{"type":"slip","choice":"consent","device":"` + device + `"}`)
	if ack := find(msgs, "ack"); status != 200 || ack == nil || ack["choice"] != "consent" {
		t.Fatalf("sealed consent over HTTP = %d %v; want 200 and an ack of consent", status, msgs)
	}
	k.wantUnlock("after the sealed consent", 200, "")
	for _, b := range []string{hello, consent} {
		if strings.Contains(b, device) || strings.Contains(b, "consent") {
			t.Errorf("a sealed body shows the secret or the choice: %s", b)
		}
	}
	status, msgs, _ = h.post(`{"type":"slip","choice":"refuse","device":"` + device + `"}`)
	if ack := find(msgs, "ack"); status != 200 || ack == nil || ack["choice"] != "refuse" {
		t.Fatalf("sealed refusal over HTTP = %d %v; want 200 and an ack of refuse", status, msgs)
	}
	k.wantUnlock("after the refusal", 423, "refused")
	before := k.store.State()

	refused := func(what, body string) {
		t.Helper()
		status, msgs := k.postPhone(body, k.http.URL)
		if status < 400 || find(msgs, "error") == nil || find(msgs, "ack") != nil {
			t.Errorf("%s: = %d %v; want it refused with an error", what, status, msgs)
		}
		if find(msgs, "sealed") != nil {
			t.Errorf("%s: the kiosk answered a replay with a sealed answer %v", what, msgs)
		}
		k.wantUnlock(what, 423, "refused")
		if after := k.store.State(); after.Version != before.Version {
			t.Errorf("%s changed the tally: %+v -> %+v", what, before, after)
		}
	}
	refused("the captured consent, same session and seq", consent)
	refused("the captured hello, same session and seq", hello)

	// In a session of its own the captured box does not open: the
	// challenge bound into it is the old session's.
	h2 := k.openHTTPSeal()
	refused("the captured consent in a new session", strings.Replace(consent, h.id, h2.id, 1))
	refused("the captured consent in a session that does not exist", strings.Replace(consent, h.id, strings.Repeat("A", 22), 1))

	// The same seq twice is refused even with a fresh box, and a request
	// in flight may arrive late, once, within the window.
	body, _ := h.body(`{"type":"slip","choice":"consent","device":"`+device+`"}`, h.seq)
	refused("a fresh box under a seq already used", body)
	h.seq += 10
	if status, msgs, _ := h.post(`{"type":"hello","device":"` + device + `"}`); status != 200 {
		t.Fatalf("hello at seq %d = %d %v; want 200", h.seq, status, msgs)
	}
	late, s := h.body(`{"type":"hello","device":"`+device+`"}`, h.seq-4)
	if status, msgs := h.send(late, s); status != 200 || find(msgs, "ack") == nil {
		t.Errorf("a late request within the window = %d %v; want 200 and an ack", status, msgs)
	}
	refused("the late request again", late)
	h.seq += 100
	if status, msgs, _ := h.post(`{"type":"hello","device":"` + device + `"}`); status != 200 {
		t.Fatalf("hello at seq %d = %d %v; want 200", h.seq, status, msgs)
	}
	old, _ := h.body(`{"type":"hello","device":"`+device+`"}`, h.seq-64)
	refused("a request older than the window", old)
	edge, s := h.body(`{"type":"hello","device":"`+device+`"}`, h.seq-sealWindow)
	if status, msgs := h.send(edge, s); status != 200 || find(msgs, "ack") == nil {
		t.Errorf("a late request at the window's edge = %d %v; want 200 and an ack", status, msgs)
	}

	// One session speaks for one phone.
	body, _ = h.body(`{"type":"hello","join":"`+k.joinToken()+`","device":"`+strings.Repeat("o", 43)+`"}`, h.seq+1)
	refused("another phone in the session", body)

	// A request that names no session is told to open one, in clear.
	h.seq++
	frame, _ := sealFor(t, h.key, `{"type":"slip","choice":"consent","device":"`+device+`"}`, h.challenge, h.seq)
	status, msgs = k.postPhone(frame, k.http.URL)
	if e := find(msgs, "error"); status != http.StatusGone || e == nil || e["code"] != "seal-expired" {
		t.Errorf("a sealed request naming no session = %d %v; want 410 seal-expired", status, msgs)
	}
	if st := k.store.State(); st.Version != before.Version {
		t.Errorf("a sealed request naming no session changed the tally: %+v -> %+v", before, st)
	}

	// An expired session says so, and the phone opens a new one.
	k.clock.Advance(httpSealIdle + time.Second)
	h.seq++
	body, _ = h.body(`{"type":"slip","choice":"consent","device":"`+device+`"}`, h.seq)
	status, msgs = k.postPhone(body, k.http.URL)
	if e := find(msgs, "error"); status != http.StatusGone || e == nil || e["code"] != "seal-expired" {
		t.Errorf("a request in an expired session = %d %v; want 410 seal-expired", status, msgs)
	}
	h3 := k.openHTTPSeal()
	if status, msgs, _ := h3.post(`{"type":"hello","device":"` + device + `"}`); status != 200 || find(msgs, "ack")["choice"] != "refuse" {
		t.Errorf("hello in a new session = %d %v; want 200 and the refusal", status, msgs)
	}
	if st := k.store.State(); st.Reason != tally.ReasonRefused {
		t.Errorf("after all replays the state is %+v; want refused", st)
	}
}

// TestHTTPSealsBounded: seal sessions are few; an expired one makes room,
// and nothing else does.
func TestHTTPSealsBounded(t *testing.T) {
	h := newHTTPSeals(3)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ids := map[string]bool{}
	for range 3 {
		id, c, err := h.open(now)
		if err != nil || len(c) != seal.ChallengeLen || ids[id] {
			t.Fatalf("open = %q, %x, %v; want a new session", id, c, err)
		}
		ids[id] = true
	}
	if _, _, err := h.open(now.Add(httpSealIdle - time.Second)); !errors.Is(err, errSealsFull) {
		t.Errorf("a fourth session while three live: %v; want errSealsFull", err)
	} else if e := classify(err); e.status != http.StatusServiceUnavailable || e.code != "full" {
		t.Errorf("a phone told of no seal session left hears %d %q; want 503 full, as when seats run out", e.status, e.code)
	}
	if _, _, err := h.open(now.Add(httpSealIdle)); err != nil {
		t.Errorf("a session once the others expired: %v; want one", err)
	}
	for id := range ids {
		if _, err := h.challenge(id, now.Add(httpSealIdle)); !errors.Is(err, errSealExpired) {
			t.Errorf("an expired session's challenge: %v; want errSealExpired", err)
		}
	}
	// However busy, a session ends at httpSealLife.
	id, _, _ := h.open(now)
	for at, seq := now, uint32(1); at.Sub(now) < httpSealLife; at, seq = at.Add(time.Minute), seq+1 {
		if err := h.take(id, seq, "d", at); err != nil {
			t.Fatalf("take at %v: %v", at.Sub(now), err)
		}
	}
	if err := h.take(id, 1000, "d", now.Add(httpSealLife)); !errors.Is(err, errSealExpired) {
		t.Errorf("a session past its life: %v; want errSealExpired", err)
	}
	// Found expired, it is gone at once, not kept until the table fills.
	if _, kept := h.m[id]; kept {
		t.Errorf("a session found past its life is still held")
	}
}
