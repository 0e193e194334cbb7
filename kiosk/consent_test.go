package kiosk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// collect reads messages until one of type typ arrives and returns every
// message read, that one last. It fails on an error message.
func (p *testPhone) collect(typ string) []map[string]any {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen []map[string]any
	for {
		var m map[string]any
		if err := p.conn.ReadJSON(&m); err != nil {
			p.t.Fatalf("waiting for %q: %v", typ, err)
		}
		seen = append(seen, m)
		if m["type"] == typ {
			return seen
		}
		if m["type"] == "error" {
			p.t.Fatalf("waiting for %q, got error %v", typ, m)
		}
	}
}

// seriesOffered reports whether msgs hold a series message naming a day:
// in a round of a series every phone hears one after hello, "none" for
// those without an offer.
func seriesOffered(msgs []map[string]any) bool {
	return slices.ContainsFunc(msgs, func(m map[string]any) bool { return m["type"] == "series" && m["consented_on"] != "none" })
}

func hasType(msgs []map[string]any, typ string) bool {
	return slices.ContainsFunc(msgs, func(m map[string]any) bool { return m["type"] == typ })
}

// noSplit fails if any key of m could tell consents from refusals.
func noSplit(t *testing.T, what string, m map[string]any) {
	t.Helper()
	for key := range m {
		if strings.Contains(key, "consent") || strings.Contains(key, "refus") {
			t.Errorf("%s has field %q", what, key)
		}
	}
}

const structuredRound = `{"purpose":"Lecture video for INF100","template":"nb",
 "notice":{"course":"INF100, 23.11.2026","camera":"Kameraet filmer kateteret.","questions":"Send spørsmål på e-post."}}`

func TestStructuredNoticeRound(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())

	st := k.lecturer("POST", "/api/round", structuredRound)
	notice, ok := st["notice"].(map[string]any)
	if !ok || notice["camera"] != "Kameraet filmer kateteret." || st["template"] != "nb" || st["mode"] != "room" {
		t.Fatalf("state after a structured round = %v; want the notice fields, template nb, mode room", st)
	}
	want := tally.NoticeHash(tally.RoundSpec{Purpose: "Lecture video for INF100", Fields: map[string]string{
		"course": "INF100, 23.11.2026", "camera": "Kameraet filmer kateteret.", "questions": "Send spørsmål på e-post."}})
	if st["notice_hash"] != want {
		t.Errorf("notice_hash = %v; want %s", st["notice_hash"], want)
	}
	// The phone is told the new round with the notice fields, and asked again.
	r := p.expect("round")
	if n, _ := r["notice"].(map[string]any); n["course"] != "INF100, 23.11.2026" || r["template"] != "nb" {
		t.Errorf("round message = %v; want the structured notice and its template", r)
	}
	p.send(map[string]any{"type": "slip", "choice": "consent", "round": r["round"]})
	p.expect("ack")
	k.wantUnlock("consent to the structured notice", 200, "")

	// Changing only the notice is a new round: the slip stops counting and
	// the phone is asked again.
	changed := strings.Replace(structuredRound, "kateteret", "hele rommet", 1)
	k.lecturer("POST", "/api/round", changed)
	k.wantUnlock("the notice changed", 423, "waiting")
	r2 := p.expect("round")
	if r2["round"] == r["round"] {
		t.Fatalf("round after a notice change = %v; want a new round", r2["round"])
	}
	p.send(map[string]any{"type": "slip", "choice": "consent", "round": r["round"]})
	if m := p.expectError(); m["code"] != "stale-round" {
		t.Errorf("slip for the old notice: %v; want stale-round", m)
	}
	k.wantUnlock("a slip for the old notice", 423, "waiting")

	// The plain text form still works.
	st = k.lecturer("POST", "/api/round", `{"purpose":"Lecture video","notice":"Voice and slides."}`)
	if st["notice"] != "Voice and slides." {
		t.Errorf("notice given as text = %v; want it back as text", st["notice"])
	}
}

func TestBadRoundBodiesChangeNothing(t *testing.T) {
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", structuredRound)
	before := k.store.State()
	for _, body := range []string{
		`{"purpose":"p","notice":{"colour":"red"}}`,
		`{"purpose":"p","notice":{"course":3}}`,
		`{"purpose":"p","notice":{"course":{"x":"y"}}}`,
		`{"purpose":"p","notice":["a"]}`,
		`{"purpose":"p","notice":12}`,
		`{"purpose":"p","mode":"everyone"}`,
		`{"purpose":"p","mode":"lecturer-only","series":"INF100"}`,
		`{"purpose":"p","template":"../x"}`,
		`{"purpose":"p","series":"` + strings.Repeat("x", 101) + `"}`,
		`{"purpose":"p","notice":{"course":"` + strings.Repeat("x", 20001) + `"}}`,
	} {
		if status, m := k.do("POST", "/api/round", testToken, body); status != http.StatusBadRequest {
			t.Errorf("POST /api/round %.70s = %d %v; want 400", body, status, m)
		}
	}
	if after := k.store.State(); after != before {
		t.Errorf("bad rounds changed the state: %+v -> %+v", before, after)
	}
}

func TestPaperSlips(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(3)
	a := k.newPhone("a", k.joinToken())
	a.slip("consent")
	k.lecturer("POST", "/api/paper", `{"consents":1,"refusals":0}`)
	k.wantUnlock("1 phone and 1 paper slip of 3", 423, "waiting")
	st := k.lecturer("POST", "/api/paper", `{"consents":2,"refusals":0}`)
	k.wantUnlock("1 phone and 2 paper consents", 200, "")
	if st["received"] != 3.0 || st["paper"] != 2.0 {
		t.Errorf("state = %v; want 3 received, 2 of them paper", st)
	}
	noSplit(t, "state", st)
	k.lecturer("POST", "/api/paper", `{"consents":2,"refusals":0}`) // a retry changes nothing
	k.wantUnlock("the same paper counts again", 200, "")
	k.lecturer("POST", "/api/paper", `{"consents":1,"refusals":1}`)
	k.wantUnlock("a paper refusal", 423, "refused")

	before := k.store.State()
	for _, body := range []string{`{"consents":1}`, `{"refusals":1}`, `{"consents":-1,"refusals":0}`, `{"consents":1.5,"refusals":0}`, `{"consents":1,"refusals":0,"x":1}`} {
		if status, _ := k.do("POST", "/api/paper", testToken, body); status != http.StatusBadRequest {
			t.Errorf("POST /api/paper %s = %d; want 400", body, status)
		}
	}
	if after := k.store.State(); after != before {
		t.Errorf("bad paper bodies changed the state: %+v -> %+v", before, after)
	}
}

func TestLecturerOnlyMode(t *testing.T) {
	k := newTestKiosk(t)
	p := k.newPhone("a", k.joinToken())
	st := k.lecturer("POST", "/api/round", `{"purpose":"Slides and my voice only","mode":"lecturer-only","notice":{"questions":"Ask in the break or by e-mail."}}`)
	if st["mode"] != "lecturer-only" || st["unlocked"] != true {
		t.Errorf("state = %v; want lecturer-only, unlocked", st)
	}
	status, m := k.do("GET", "/api/unlock", "", "")
	if status != 200 || m["unlocked"] != true || m["mode"] != "lecturer-only" {
		t.Errorf("/api/unlock = %d %v; want 200 unlocked, mode lecturer-only", status, m)
	}
	if r := p.expect("round"); r["mode"] != "lecturer-only" {
		t.Errorf("round message = %v; want mode lecturer-only", r)
	}
	p.send(map[string]string{"type": "slip", "choice": "refuse"})
	if e := p.expectError(); e["code"] != "invalid" {
		t.Errorf("a slip in a lecturer-only round: %v; want invalid", e)
	}
	k.wantUnlock("after a refused slip", 200, "")
	k.lecturer("POST", "/api/close", `{}`)
	k.wantUnlock("closed", 423, "closed")
}

// TestSeriesConsentOverTheWire: a phone that consented in an earlier
// session of a series is offered to confirm it, and must still be counted.
func TestSeriesConsentOverTheWire(t *testing.T) {
	k := newTestKiosk(t)
	round := `{"purpose":"Lecture video for INF100","series":"INF100","notice":{"course":"INF100","camera":"Front rows."}}`
	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(1)
	a := k.newPhone("a", k.joinToken())
	a.slip("consent")
	k.wantUnlock("session 1", 200, "")
	k.lecturer("POST", "/api/close", `{}`)

	k.lecturer("POST", "/api/round", round)
	k.setHeadcount(2)
	join := k.joinToken()
	again := k.connectPhone("a")
	again.hello(join)
	msgs := again.collect("series")
	s := msgs[len(msgs)-1]
	if s["consented_on"] != time.Now().Format("2006-01-02") {
		t.Errorf("series message = %v; want the day of session 1", s)
	}
	if st := k.lecturer("GET", "/api/state", ""); st["received"] != 0.0 {
		t.Errorf("received = %v before the phone confirmed; want 0: earlier consent does not count by itself", st["received"])
	}
	again.slip("consent") // the one tap
	newcomer := k.connectPhone("b")
	newcomer.hello(join)
	if msgs := newcomer.collect("ack"); seriesOffered(msgs) {
		t.Errorf("a phone new to the series was offered a series consent: %v", msgs)
	}
	newcomer.send(map[string]string{"type": "slip", "choice": "consent"})
	if msgs := newcomer.collect("ack"); seriesOffered(msgs) {
		t.Errorf("a phone new to the series was offered a series consent: %v", msgs)
	}
	k.wantUnlock("both counted in the room", 200, "")

	list := k.lecturer("GET", "/api/series", "")
	if b, _ := json.Marshal(list); !strings.Contains(string(b), `"series":"INF100"`) {
		t.Errorf("GET /api/series = %s; want INF100", b)
	}
	if status, m := k.do("POST", "/api/round", testToken, `{"purpose":"Another purpose","series":"INF100"}`); status != http.StatusConflict || m["error"] != "series-mismatch" {
		t.Errorf("a round with another purpose in the series = %d %v; want 409 series-mismatch", status, m)
	}
	k.lecturer("POST", "/api/series/end", `{"series":"INF100"}`)
	if status, m := k.do("POST", "/api/series/end", testToken, `{"series":"INF100"}`); status != http.StatusNotFound {
		t.Errorf("ending a series twice = %d %v; want 404", status, m)
	}
}

func TestRecordAPIAndPage(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(2)
	join := k.joinToken()
	a, b := k.newPhone("a", join), k.newPhone("b", join)
	a.slip("consent")
	b.slip("consent")
	k.clock.Advance(time.Minute)
	b.slip("refuse")
	k.lecturer("POST", "/api/paper", `{"consents":0,"refusals":0}`)
	k.lecturer("POST", "/api/close", `{}`)

	m := k.lecturer("GET", "/api/record", "")
	rounds, _ := m["rounds"].([]any)
	if len(rounds) != 1 {
		t.Fatalf("record = %v; want one round", m)
	}
	r := rounds[0].(map[string]any)
	noSplit(t, "record", r)
	ivs, _ := r["intervals"].([]any)
	if r["outcome"] != "refused" || r["received"] != 2.0 || len(ivs) != 1 || ivs[0].(map[string]any)["ended_by"] != "slip-changed" {
		t.Errorf("record = %v; want refused, 2 received, one interval ended by slip-changed", r)
	}
	id := fmt.Sprint(r["round"])
	if status, one := k.do("GET", "/api/record?round="+id, testToken, ""); status != 200 || len(one["rounds"].([]any)) != 1 {
		t.Errorf("GET /api/record?round=%s = %d %v", id, status, one)
	}
	for q, want := range map[string]int{"round=x": 400, "round=0": 400, "round=999": 404} {
		if status, _ := k.do("GET", "/api/record?"+q, testToken, ""); status != want {
			t.Errorf("GET /api/record?%s = %d; want %d", q, status, want)
		}
	}

	// The page itself holds nothing: it says in words what to do when
	// opened without the lecturer's session, instead of a JSON error.
	if status, _ := k.do("GET", "/api/record", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /api/record without the lecturer = %d; want 401", status)
	}
	if resp, err := http.Get(k.http.URL + "/record"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), "Lecture video") {
			t.Errorf("GET /record without the lecturer = %d; want the empty page, which loads the record only with the session", resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", k.http.URL+"/record", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "record.js") {
		t.Errorf("GET /record = %d %s; want the record page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestTemplatesMatchTheNoticeFields keeps the shipped templates and the
// fields the kiosk accepts in step.
func TestTemplatesMatchTheNoticeFields(t *testing.T) {
	k := newTestKiosk(t)
	m := k.lecturer("GET", "/api/templates", "")
	list, _ := m["templates"].([]any)
	langs := map[string]bool{}
	for _, x := range list {
		tpl := x.(map[string]any)
		lang, _ := tpl["lang"].(string)
		langs[lang] = true
		for _, part := range []string{"labels", "hints", "fields"} {
			got, _ := tpl[part].(map[string]any)
			var keys []string
			for key := range got {
				keys = append(keys, key)
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(tally.NoticeFields()))
			if !slices.Equal(keys, want) {
				t.Errorf("template %s %s = %v; want %v", lang, part, keys, want)
			}
		}
		// A template's own text must be a notice the kiosk accepts.
		fields := map[string]string{}
		for key, v := range tpl["fields"].(map[string]any) {
			fields[key] = v.(string)
		}
		body, _ := json.Marshal(map[string]any{"purpose": "x", "template": lang, "notice": fields})
		if status, e := k.do("POST", "/api/round", testToken, string(body)); status != 200 {
			t.Errorf("a round with the %s template = %d %v; want 200", lang, status, e)
		}
	}
	for _, lang := range []string{"en", "nb", "nn", "sv"} {
		if !langs[lang] {
			t.Errorf("no %s template", lang)
		}
	}
}

// TestAckComesBeforeTheLockOrUnlockItCauses: the phone whose slip unlocks
// or locks the kiosk hears its ack before the tally that says so, on the
// websocket, so that its page never shows "unlocked" beside an answer
// still being sent. Many turns (as many as the message burst allows), as
// the order is a race between the phone's session and the hub's fan-out.
func TestAckComesBeforeTheLockOrUnlockItCauses(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.expect("tally")
	for i := range defaultLimits.msgBurst - 2 { // the hello took one
		choice := []string{"consent", "refuse"}[i%2]
		p.send(map[string]string{"type": "slip", "choice": choice})
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m map[string]any
			if err := p.conn.ReadJSON(&m); err != nil {
				t.Fatal(err)
			}
			if m["type"] == "tally" && m["unlocked"] == (choice == "consent") {
				t.Fatalf("turn %d: the tally that the %s caused (unlocked %v) came before its ack", i, choice, m["unlocked"])
			}
			if m["type"] == "error" {
				t.Fatalf("turn %d: %v", i, m)
			}
			if m["type"] == "ack" {
				break
			}
		}
	}
}
