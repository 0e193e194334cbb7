package kiosk

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scriptStep is one message a phone sends, without the device secret that
// the HTTP fallback adds to every body.
type scriptStep struct {
	name string
	msg  func(join string) map[string]any
}

// phoneScript is the conversation played over both transports: every kind
// of answer a phone can get once it has a transport — refusals, the join,
// slips, a stale round, a bad message, a leave and a rejoin.
var phoneScript = []scriptStep{
	{"hello without a token", func(string) map[string]any { return map[string]any{"type": "hello"} }},
	{"hello with a bad token", func(string) map[string]any { return map[string]any{"type": "hello", "join": "not-a-token"} }},
	{"hello", func(join string) map[string]any { return map[string]any{"type": "hello", "join": join} }},
	{"consent", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "consent", "round": 2} }},
	{"refuse", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "refuse"} }},
	{"a stale round", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "consent", "round": 1} }},
	{"a bad choice", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "maybe"} }},
	{"withdraw", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "none"} }},
	{"hello again", func(string) map[string]any { return map[string]any{"type": "hello"} }},
	{"hello once more", func(string) map[string]any { return map[string]any{"type": "hello"} }},
	{"leave", func(string) map[string]any { return map[string]any{"type": "leave"} }},
	{"slip after leaving", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "consent"} }},
	{"leave again", func(string) map[string]any { return map[string]any{"type": "leave"} }},
	{"hello after leaving", func(string) map[string]any { return map[string]any{"type": "hello"} }},
	{"rejoin", func(join string) map[string]any { return map[string]any{"type": "hello", "join": join} }},
	{"consent again", func(string) map[string]any { return map[string]any{"type": "slip", "choice": "consent"} }},
}

// TestPhoneSessionSameOverBothTransports plays one script over the
// websocket and over the HTTP fallback, in clear and sealed, each against a
// kiosk of its own set up alike, and compares every message the phone
// hears, byte for byte (sealed ones opened). The one difference allowed is
// the websocket's tally: the hub sends it as news, so besides the tally
// that follows a hello the websocket may hear more of them, and those are
// not compared.
func TestPhoneSessionSameOverBothTransports(t *testing.T) {
	for _, sealedRun := range []bool{false, true} {
		t.Run(map[bool]string{false: "in clear", true: "sealed"}[sealedRun], func(t *testing.T) {
			t.Parallel()
			device := strings.Repeat("d", 32)
			kws, khttp := newTestKiosk(t), newTestKiosk(t)
			kws.setHeadcount(2)
			khttp.setHeadcount(2)
			ws := newScriptWS(t, kws, device, sealedRun)
			hp := &scriptHTTP{k: khttp, device: device}
			if sealedRun {
				hp.seal = khttp.openHTTPSeal()
			}
			joinWS, joinHTTP := kws.joinToken(), khttp.joinToken()
			for _, step := range phoneScript {
				want := hp.play(t, step.name, step.msg(joinHTTP))
				got := ws.play(t, step.name, step.msg(joinWS), want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: the websocket heard\n\t%s\nthe HTTP fallback\n\t%s", step.name,
						strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
				}
				ws.quiet(t, step.name)
			}
		})
	}
}

// scriptHTTP is the script's phone on the HTTP fallback.
type scriptHTTP struct {
	k      *testKiosk
	device string
	seal   *httpSeal // nil: in clear
}

// play posts msg and returns the messages answered, sealed ones opened.
func (p *scriptHTTP) play(t *testing.T, step string, msg map[string]any) []string {
	t.Helper()
	msg["device"] = p.device
	b, _ := json.Marshal(msg)
	body := string(b)
	var s sealed
	if p.seal != nil {
		p.seal.seq++
		body, s = p.seal.body(body, p.seal.seq)
	}
	req, _ := http.NewRequest("POST", p.k.http.URL+"/api/phone", strings.NewReader(body))
	req.Header.Set("Origin", p.k.http.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var frames []json.RawMessage
	if err := json.Unmarshal(raw, &frames); err != nil {
		t.Fatalf("%s: answer %q is not a list of messages: %v", step, raw, err)
	}
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = opened(t, step, string(f), s)
	}
	return out
}

// scriptWS is the script's phone on the websocket.
type scriptWS struct {
	conn           *websocket.Conn
	frames         chan string // every frame read, in order; closed when reading fails
	device         string
	key, challenge []byte
	seq            uint32
	sealed         bool
}

func newScriptWS(t *testing.T, k *testKiosk, device string, sealedRun bool) *scriptWS {
	sp := k.newSealedPhone("script") // reads the seal key and challenge
	p := &scriptWS{conn: sp.conn, frames: make(chan string, 64), device: device, key: sp.key, challenge: sp.challenge, sealed: sealedRun}
	go func() {
		defer close(p.frames)
		for {
			_, b, err := p.conn.ReadMessage()
			if err != nil {
				return
			}
			p.frames <- string(b)
		}
	}()
	return p
}

// quiet reads frames until none has come for longer than the hub holds
// back a tally, so that news from the step before cannot stand in for a
// tally the next step must send. It drops tallies, the hub's news; any
// other frame is one the websocket sent besides the answers the HTTP
// fallback gave to the step before, and fails the test.
func (p *scriptWS) quiet(t *testing.T, after string) {
	t.Helper()
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				return
			}
			if messageType([]byte(f)) != msgTally {
				t.Errorf("after %s, the websocket also heard %s", after, f)
			}
		case <-time.After(2 * tallyEvery):
			return
		}
	}
}

// play sends msg and reads what the websocket answers: as many messages,
// other than tallies, as want has, and then, if want ends in a tally, the
// tallies after them until one equal to it. It returns them in order.
func (p *scriptWS) play(t *testing.T, step string, msg map[string]any, want []string) []string {
	t.Helper()
	if msg["type"] == "hello" {
		msg["device"] = p.device
	}
	b, _ := json.Marshal(msg)
	frame := string(b)
	var s sealed
	if p.sealed {
		p.seq++
		frame, s = sealFor(t, p.key, frame, p.challenge, p.seq)
	}
	if err := p.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	var wantTally string
	answers := 0
	for _, w := range want {
		if messageType([]byte(w)) == msgTally {
			wantTally = w
		} else {
			answers++
		}
	}
	var got []string
	lastTally := ""
	deadline := time.After(5 * time.Second)
	for answers > 0 || (wantTally != "" && lastTally != wantTally) {
		var f string
		var ok bool
		select {
		case f, ok = <-p.frames:
		case <-deadline:
		}
		if !ok {
			t.Fatalf("%s: heard %q and then nothing (last tally after them: %q)", step, got, lastTally)
		}
		m := opened(t, step, f, s)
		if messageType([]byte(m)) == msgTally {
			lastTally = m
			continue
		}
		got = append(got, m)
		lastTally = "" // the tally must follow the answers
		answers--
	}
	if wantTally != "" {
		got = append(got, lastTally)
	}
	return got
}

// opened returns frame as the phone reads it: opened with s if sealed.
func opened(t *testing.T, step, frame string, s sealed) string {
	t.Helper()
	if messageType([]byte(frame)) != msgSealed {
		return frame
	}
	text, err := s.openAnswer(t, []byte(frame))
	if err != nil {
		t.Fatalf("%s: sealed answer %s does not open: %v", step, frame, err)
	}
	return strings.TrimRight(text, " ")
}
