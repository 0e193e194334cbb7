package kiosk

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/gorilla/websocket"
)

// sealedPhone is a phone that seals every frame, as the phone page does.
type sealedPhone struct {
	*testPhone
	key, challenge []byte
	seq            uint32
	open           map[uint32]sealed
	wire           []string // every frame the kiosk sent, as it crossed the wire
	sent           []string // every frame the phone sent
}

func (k *testKiosk) newSealedPhone(name string) *sealedPhone {
	k.t.Helper()
	p := &sealedPhone{testPhone: k.connectPhone(name), open: map[uint32]sealed{}}
	first := p.readRaw()
	var m struct{ Type, Key, Challenge string }
	if err := json.Unmarshal([]byte(first), &m); err != nil || m.Type != "seal" {
		k.t.Fatalf("%s: first message %s; want the seal key and challenge", name, first)
	}
	b64 := base64.RawURLEncoding.Strict()
	var err error
	if p.key, err = b64.DecodeString(m.Key); err != nil || len(p.key) != 32 {
		k.t.Fatalf("%s: seal key %q: %v", name, m.Key, err)
	}
	if p.challenge, err = b64.DecodeString(m.Challenge); err != nil || len(p.challenge) != seal.ChallengeLen {
		k.t.Fatalf("%s: challenge %q: %v", name, m.Challenge, err)
	}
	return p
}

func (p *sealedPhone) readRaw() string {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := p.conn.ReadMessage()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	p.wire = append(p.wire, string(b))
	return string(b)
}

// sendSealed seals msg as the next frame and returns the frame's text.
func (p *sealedPhone) sendSealed(msg string) string {
	p.t.Helper()
	p.seq++
	frame, s := sealFor(p.t, p.key, msg, p.challenge, p.seq)
	p.open[p.seq] = s
	p.sendRaw(frame)
	return frame
}

func (p *sealedPhone) sendRaw(frame string) {
	p.t.Helper()
	p.sent = append(p.sent, frame)
	if err := p.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		p.t.Fatal(err)
	}
}

// answer reads until the kiosk's sealed answer, or an error in clear, and
// returns it opened, with the length of the frame on the wire.
func (p *sealedPhone) answer() (map[string]any, int) {
	p.t.Helper()
	for {
		raw := p.readRaw()
		var head struct {
			Type string `json:"type"`
			Seq  uint32 `json:"seq"`
		}
		json.Unmarshal([]byte(raw), &head)
		switch head.Type {
		case "sealed":
			s, ok := p.open[head.Seq]
			if !ok {
				p.t.Fatalf("sealed answer for seq %d, which was not sent", head.Seq)
			}
			text, err := s.openAnswer(p.t, []byte(raw))
			if err != nil {
				p.t.Fatalf("sealed answer does not open: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(text), &m); err != nil {
				p.t.Fatalf("sealed answer %q is not JSON", text)
			}
			return m, len(raw)
		case "error":
			var m map[string]any
			json.Unmarshal([]byte(raw), &m)
			return m, len(raw)
		}
	}
}

func (p *sealedPhone) helloSealed(join string) map[string]any {
	p.t.Helper()
	p.sendSealed(fmt.Sprintf(`{"type":"hello","join":%q,"device":%q}`, join, p.device))
	m, _ := p.answer()
	return m
}

func (p *sealedPhone) slipSealed(choice string) (map[string]any, int) {
	p.t.Helper()
	p.sendSealed(fmt.Sprintf(`{"type":"slip","choice":%q}`, choice))
	return p.answer()
}

// TestSealedPhone plays a phone that seals through the real websocket: the
// kiosk answers sealed, equal in length for every choice, never in clear,
// and refuses frames played again or sent in clear after sealing.
func TestSealedPhone(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	join := k.joinToken()
	p := k.newSealedPhone("a")
	if ack := p.helloSealed(join); ack["type"] != "ack" || ack["choice"] != "none" {
		t.Fatalf("sealed hello answered %v; want ack none", ack)
	}

	lengths := map[int][]string{}
	var consentFrame string
	for _, choice := range []string{"consent", "refuse", "none", "consent"} {
		frame := p.sendSealed(fmt.Sprintf(`{"type":"slip","choice":%q}`, choice))
		if choice == "consent" {
			consentFrame = frame
		}
		ack, n := p.answer()
		if ack["type"] != "ack" || ack["choice"] != choice {
			t.Fatalf("sealed %s answered %v; want its ack", choice, ack)
		}
		lengths[n] = append(lengths[n], choice)
	}
	if len(lengths) != 1 {
		t.Errorf("sealed acks have lengths %v; want one length for every choice", lengths)
	}
	k.wantUnlock("sealed consent", 200, "")

	// A listener replays the captured consent after a withdrawal.
	if ack, _ := p.slipSealed("refuse"); ack["choice"] != "refuse" {
		t.Fatalf("sealed refuse answered %v", ack)
	}
	p.sendRaw(consentFrame)
	if m, _ := p.answer(); m["type"] != "error" || m["code"] != "seal-broken" {
		t.Errorf("replayed sealed frame answered %v; want error seal-broken", m)
	}
	// On another connection it does not open either.
	other := k.newSealedPhone("b")
	other.sendRaw(consentFrame)
	if m, _ := other.answer(); m["code"] != "seal-broken" {
		t.Errorf("sealed frame moved to another connection answered %v; want seal-broken", m)
	}
	k.wantUnlock("after the replays", 423, "refused")

	// A websocket frame that names a seal session, as the HTTP fallback's
	// do, is not a websocket frame: refused, even with a box that opens.
	p.seq++
	frame, opens := sealFor(t, p.key, `{"type":"slip","choice":"consent"}`, p.challenge, p.seq)
	p.open[p.seq] = opens
	p.sendRaw(strings.Replace(frame, `{"type":"sealed",`, `{"type":"sealed","session":"`+strings.Repeat("A", 22)+`",`, 1))
	if m, _ := p.answer(); m["type"] != "error" || m["code"] != "seal-broken" {
		t.Errorf("sealed frame naming a session answered %v; want error seal-broken", m)
	}
	k.wantUnlock("after a frame naming a session", 423, "refused")

	// Once it seals, the connection takes nothing in clear.
	// (Written past sendRaw: this frame is meant to be in clear.)
	p.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"slip","choice":"consent"}`))
	if m, _ := p.answer(); m["code"] != "sealed-only" {
		t.Errorf("clear slip on a sealing connection answered %v; want sealed-only", m)
	}
	k.wantUnlock("after a clear slip", 423, "refused")

	// Nothing on the wire, either way, names a choice or the device secret.
	for _, f := range append(append([]string(nil), p.wire...), p.sent...) {
		for _, secret := range []string{`"consent"`, `"refuse"`, `"none"`, p.device} {
			if strings.Contains(f, secret) {
				t.Errorf("a frame on the wire shows %s: %s", secret, f)
			}
		}
	}
}

// TestHelloFloodRegistersOnePhone: hellos with fresh device secrets on one
// connection do not register more phones.
func TestHelloFloodRegistersOnePhone(t *testing.T) {
	k := newTestKiosk(t)
	join := k.joinToken()
	p := k.connectPhone("flood")
	p.hello(join)
	p.expect("ack")
	for i := range 15 {
		p.send(map[string]string{"type": "hello", "join": join, "device": fmt.Sprintf("fresh-secret-%020d", i)})
		if m := p.expectError(); m["code"] != "one-phone" {
			t.Fatalf("hello %d with a fresh secret: %v; want one-phone", i, m)
		}
	}
	if st := k.store.State(); st.Issued != 1 {
		t.Errorf("issued = %d after a hello flood on one connection; want 1", st.Issued)
	}
}

// TestNewPhonesAreRateLimited: many connections together cannot register
// phones faster than the join rate once the burst is spent.
func TestNewPhonesAreRateLimited(t *testing.T) {
	k := newTestKiosk(t)
	k.srv.newPhones.SetBurst(3)
	k.srv.newPhones.SetLimit(0) // no refill: the test must not race the clock
	join := k.joinToken()
	for i := range 3 {
		k.newPhone(fmt.Sprintf("p%d", i), join)
	}
	late := k.connectPhone("late")
	late.hello(join)
	if m := late.expectError(); m["code"] != "rate-limited" {
		t.Errorf("fourth new phone: %v; want rate-limited", m)
	}
	// A phone the session knows is never held back by the join rate.
	again := k.connectPhone("p0")
	again.hello(join)
	if ack := again.expect("ack"); ack["choice"] != "none" {
		t.Errorf("known phone rejoining: %v; want its ack", ack)
	}
	if st := k.store.State(); st.Issued != 3 {
		t.Errorf("issued = %d; want 3", st.Issued)
	}
}

// helloFrames says a sealed hello and returns what the kiosk sends up to
// the tally after it: each frame's type as a listener sees it, with its
// length on the wire, and the types of the sealed ones once opened.
func (p *sealedPhone) helloFrames(join string) (wire, opened []string) {
	p.t.Helper()
	seq := p.seq + 1
	p.sendSealed(fmt.Sprintf(`{"type":"hello","join":%q,"device":%q}`, join, p.device))
	for {
		raw := p.readRaw()
		var head struct{ Type string }
		json.Unmarshal([]byte(raw), &head)
		wire = append(wire, fmt.Sprintf("%s/%d", head.Type, len(raw)))
		switch head.Type {
		case "tally":
			return wire, opened
		case "sealed":
			text, err := p.open[seq].openAnswer(p.t, []byte(raw))
			if err != nil {
				p.t.Fatalf("sealed answer to hello does not open: %v", err)
			}
			var m struct{ Type string }
			json.Unmarshal([]byte(text), &m)
			opened = append(opened, m.Type)
		}
	}
}

// TestHelloFramesTellNothingOfASeries: in a round of a series, a phone that
// consented earlier and a new one hear after hello the same frames, of the
// same lengths, a series message among them; in a round outside any series
// no phone hears one, as there is nothing to offer.
func TestHelloFramesTellNothingOfASeries(t *testing.T) {
	k := newTestKiosk(t)
	round := `{"purpose":"Lecture video for INF100","series":"INF100"}`
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(1)
	k.newPhone("earlier", k.joinToken()).slip("consent")
	k.wantUnlock("session 1", 200, "")
	k.lecturer("POST", "/api/close", `{}`)

	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(2)
	join := k.joinToken()
	earlierWire, earlierOpened := k.newSealedPhone("earlier").helloFrames(join)
	newWire, newOpened := k.newSealedPhone("new").helloFrames(join)
	if fmt.Sprint(earlierWire) != fmt.Sprint(newWire) {
		t.Errorf("after hello a listener sees %v from the phone that consented earlier, %v from a new one; want the same", earlierWire, newWire)
	}
	if fmt.Sprint(earlierOpened) != "[ack series]" || fmt.Sprint(newOpened) != "[ack series]" {
		t.Errorf("sealed answers to hello in a series: %v and %v; want [ack series] for both", earlierOpened, newOpened)
	}

	k.lecturer("POST", "/api/close", `{}`)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for enrolled students"}`)
	k.setHeadcount(1)
	if _, opened := k.newSealedPhone("outside").helloFrames(k.joinToken()); fmt.Sprint(opened) != "[ack]" {
		t.Errorf("sealed answers to hello outside a series: %v; want [ack] alone", opened)
	}
}
