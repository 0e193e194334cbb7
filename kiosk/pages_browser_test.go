package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// regexpISO matches an ISO 8601 time with seconds and a UTC offset.
var regexpISO = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d`)

// longRound is a round as a real lecturer fills it in from a template: long
// texts in every field that phones show before the buttons.
func longRound(t *testing.T, lang string) string {
	t.Helper()
	long := strings.Repeat("The camera films the lectern and the first two rows; sit further back to stay out of it. ", 6)
	b, _ := json.Marshal(map[string]any{
		"purpose":  "Lecture video for INF100 Introduction to programming, shown only to the students enrolled in the course this semester and deleted after the exam",
		"template": lang,
		"notice": map[string]string{
			"course": "INF100", "purpose": long, "recorded": long, "camera": long, "storage": long,
			"questions": "Send questions to the lecturer by e-mail instead of asking aloud.",
		},
	})
	return string(b)
}

// layoutShiftProbe records every layout shift the page makes without input
// (the CLS entries), from before its first script runs.
const layoutShiftProbe = `window.__shifts = [];
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) { if (!e.hadRecentInput) { window.__shifts.push({t: e.startTime, v: e.value}); } });
  }).observe({type: 'layout-shift', buffered: true});
} catch (e) { window.__shifts = null; }`

// TestBrowserPhoneFirstScreen: on the smallest phones, in every language,
// the question, the purpose, the key facts, the way to the full notice and
// both answers are on screen one, the buttons are of equal size, and
// nothing moves once the buttons are shown.
func TestBrowserPhoneFirstScreen(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", longRound(t, "nb"))
	k.setHeadcount(30)
	join := k.joinToken()
	for _, size := range [][2]int64{{320, 568}, {360, 640}} {
		for _, l := range languages {
			name := fmt.Sprintf("phone %s %dx%d", l, size[0], size[1])
			p := newTab(t, browser, name, axe, tabOptions{lang: l, width: size[0], height: size[1], mobile: true, setup: layoutShiftProbe})
			p.navigate(k.http.URL + "/j/" + join)
			p.waitFor("the buttons", buttonsShown+` && document.getElementById('tally-count').textContent !== ''`)
			cat := catalogue(t, l)
			if got := p.text("consent"); got != cat["phone.consent"] {
				t.Errorf("%s: consent button says %q; want %q", name, got, cat["phone.consent"])
			}
			type box struct{ Top, Bottom, Left, Right, Width, Height float64 }
			rects := eval[map[string]box](p, `(function () {
				var out = {};
				['consent', 'refuse', 'purpose', 'facts', 'notice-short'].forEach(function (id) {
					var r = document.getElementById(id).getBoundingClientRect();
					out[id] = {Top: r.top, Bottom: r.bottom, Left: r.left, Right: r.right, Width: r.width, Height: r.height};
				});
				var s = document.querySelector('#notice-details summary').getBoundingClientRect();
				out.summary = {Top: s.top, Bottom: s.bottom, Left: s.left, Right: s.right, Width: s.width, Height: s.height};
				var h = document.querySelector('h1').getBoundingClientRect();
				out.h1 = {Top: h.top, Bottom: h.bottom, Left: h.left, Right: h.right, Width: h.width, Height: h.height};
				return out;
			})()`)
			for _, id := range []string{"h1", "purpose", "notice-short", "facts", "consent", "refuse"} {
				r := rects[id]
				if r.Height == 0 || r.Top < 0 || r.Bottom > float64(size[1]) || r.Left < 0 || r.Right > float64(size[0]) {
					t.Errorf("%s: #%s at %+v; want it whole inside the first %dx%d screen", name, id, r, size[0], size[1])
				}
			}
			if r := rects["summary"]; r.Top >= float64(size[1]) {
				t.Logf("%s: the full notice's summary starts at %.0f px, below screen one", name, r.Top)
			}
			if c, r := rects["consent"], rects["refuse"]; c.Width != r.Width || c.Height != r.Height {
				t.Errorf("%s: consent %.0fx%.0f, refuse %.0fx%.0f; want the same size", name, c.Width, c.Height, r.Width, r.Height)
			}
			// Nothing moves after the buttons are shown: no layout shift at
			// all, and the buttons where they were after the tally and a
			// reconnect's worth of messages.
			before := rects["consent"]
			k.lecturer("POST", "/api/headcount", `{"headcount":31}`)
			p.waitFor("the new tally", `document.getElementById('tally-count').textContent.indexOf('31') >= 0`)
			after := eval[box](p, `(function () { var r = document.getElementById('consent').getBoundingClientRect(); return {Top: r.top, Bottom: r.bottom, Left: r.left, Right: r.right, Width: r.width, Height: r.height}; })()`)
			if after != before {
				t.Errorf("%s: the consent button moved from %+v to %+v", name, before, after)
			}
			if shifts := eval[[]map[string]float64](p, `window.__shifts || [{t: -1, v: -1}]`); len(shifts) > 0 {
				t.Errorf("%s: layout shifts %v; want none", name, shifts)
			}
			p.checkReflow("screen one")
			p.checkClean(k.http.URL)
		}
	}
}

// TestBrowserPhonePageWeight: the phone page, everything it loads before a
// student can answer, is at most 40 KB over the wire, compressed, with the
// catalogue inlined (no catalogue or template fetched) and nothing fetched
// twice; a second visit loads the scripts from the cache.
func TestBrowserPhonePageWeight(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", longRound(t, "en"))
	k.setHeadcount(3)
	var mu sync.Mutex
	bytes := map[network.RequestID]float64{}
	urls := map[network.RequestID]string{}
	cached := map[string]bool{}
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls[ev.RequestID] = ev.Request.URL
		case *network.EventLoadingFinished:
			bytes[ev.RequestID] = ev.EncodedDataLength
		case *network.EventRequestServedFromCache:
			cached[urls[ev.RequestID]] = true
		case *network.EventResponseReceived:
			if ev.Response.FromDiskCache {
				cached[ev.Response.URL] = true
			}
		}
	}
	p := newTab(t, browser, "phone", "", tabOptions{lang: "nb", width: 360, height: 640, mobile: true, events: listen})
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("the buttons", buttonsShown)
	p.waitFor("everything loaded", `document.readyState === 'complete'`)
	mu.Lock()
	var total float64
	seen := map[string]int{}
	for id, n := range bytes {
		total += n
		u, _ := url.Parse(urls[id])
		seen[u.Path]++
		if strings.HasPrefix(u.Path, "/static/i18n/") || strings.HasPrefix(u.Path, "/static/templates/") {
			t.Errorf("the phone page fetched %s; its catalogue and labels come inlined", u.Path)
		}
	}
	mu.Unlock()
	for path, n := range seen {
		if n > 1 {
			t.Errorf("the phone page fetched %s %d times; want once", path, n)
		}
	}
	t.Logf("phone page: %.0f bytes over the wire in %d requests", total, len(bytes))
	if total > 40<<10 {
		t.Errorf("the phone page took %.0f bytes over the wire; want at most 40 KB", total)
	}
	if total < 2000 {
		t.Errorf("the phone page took only %.0f bytes; the measurement is not working", total)
	}

	// A second visit: the versioned scripts and style come from the cache.
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("the buttons again", buttonsShown)
	mu.Lock()
	defer mu.Unlock()
	for _, f := range []string{"phone.js", "seal.js", "common.js", "kiosk.css"} {
		hit := false
		for u := range cached {
			hit = hit || strings.Contains(u, "/static/"+f)
		}
		if !hit {
			t.Errorf("second visit: /static/%s was not served from the browser's cache", f)
		}
	}
}

// TestBrowserConsoleApart: what the lecturer types in the console never
// reaches the projector view, each control answers beside itself in plain
// words, paper counts are not left on screen, and P shows only the
// projector view.
func TestBrowserConsoleApart(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(4)

	con := newTab(t, browser, "console", axe, tabOptions{lang: "nb", width: 1280, height: 800})
	con.navigate(k.loginLink())
	con.waitFor("the console", `location.pathname === '/console' && document.getElementById('count-line').textContent !== ''`)
	nb := catalogue(t, "nb")

	// A second window on the same browser shows the projector view, as on
	// a lecturer's second screen.
	projCtx, cancel := chromedp.NewContext(con.ctx)
	t.Cleanup(cancel)
	proj := &tab{t: t, name: "projector", ctx: projCtx, axe: axe}
	proj.do(chromedp.EmulateViewport(1280, 800))
	proj.navigate(k.http.URL + "/?lang=nb")
	proj.waitFor("the projector view", `document.getElementById('count').textContent === '0 av 4'`)

	// Typed, not yet sent: distinctive values.
	con.do(
		chromedp.SendKeys(chromedp.ID("paper-refusals"), "73197"),
		chromedp.SendKeys(chromedp.ID("paper-consents"), "61043"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('purpose-input').value = ''`),
		chromedp.SendKeys(chromedp.ID("purpose-input"), "ZEBRA draft purpose"),
		chromedp.SendKeys(chromedp.ID("series-input"), "QUOKKA-series"),
	)
	html := eval[string](proj, `document.documentElement.outerHTML`)
	for _, typed := range []string{"73197", "61043", "ZEBRA", "QUOKKA"} {
		if strings.Contains(html, typed) {
			t.Errorf("the projector view contains %q, typed in the console and not sent", typed)
		}
	}
	for _, key := range []string{"proj.headcount_label", "proj.paper_legend", "proj.close", "con.title", "proj.round_start"} {
		if s := nb[key]; strings.Contains(html, s) {
			t.Errorf("the projector view contains the console's %q", s)
		}
	}
	if n := eval[int](proj, `document.querySelectorAll('input, textarea, select, button, form').length`); n != 0 {
		t.Errorf("the projector view has %d controls; want none", n)
	}
	// Paper counts are never in large type, even while typed.
	if px := eval[float64](con, `parseFloat(getComputedStyle(document.getElementById('paper-refusals')).fontSize)`); px > 20 {
		t.Errorf("the paper count is typed at %.0f px; want ordinary text size", px)
	}

	// Bad input is answered beside its control, in words, in the
	// lecturer's language, and sends nothing.
	con.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('headcount-input').value = '0'`), chromedp.Click(chromedp.CSS(`#headcount-form button`)))
	con.waitFor("the headcount problem", fmt.Sprintf(`document.getElementById('headcount-msg').textContent === %q`, nb["con.err.headcount"]))
	if st := k.store.State(); st.Headcount != 4 {
		t.Errorf("headcount = %d after a refused 0; want 4", st.Headcount)
	}
	con.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('headcount-input').value = '6'`), chromedp.Click(chromedp.CSS(`#headcount-form button`)))
	con.waitFor("the headcount saved", fmt.Sprintf(`document.getElementById('headcount-msg').textContent === %q`, nb["con.headcount_saved"]))
	proj.waitFor("the new count on the projector", `document.getElementById('count').textContent === '0 av 6'`)

	// Paper slips: saved, and the split is cleared from the console.
	con.do(chromedp.Click(chromedp.CSS(`#paper-form button`)))
	con.waitFor("the paper saved", fmt.Sprintf(`document.getElementById('paper-msg').textContent === %q && document.getElementById('paper-refusals').value === ''`, nb["con.paper_saved"]))
	if st := k.store.State(); st.Paper != 73197+61043 {
		t.Errorf("paper = %d; want %d", st.Paper, 73197+61043)
	}
	html = eval[string](proj, `document.documentElement.outerHTML`)
	if strings.Contains(html, "73197") || strings.Contains(html, "61043") {
		t.Error("the projector view shows a paper count's split after it was sent")
	}

	// P: this window shows only the projector view; Escape comes back.
	con.do(chromedp.Click(chromedp.ID("state-heading")), chromedp.KeyEvent("p"))
	// Escape is heard once the projector's script has set its key handler.
	con.waitFor("the projector view", `location.pathname === '/' && document.onkeydown !== null`)
	con.do(chromedp.KeyEvent("\x1b"))
	con.waitFor("the console again", `location.pathname === '/console' && document.getElementById('template-select').options.length > 0`)

	// A refusal from the kiosk itself is put in plain words: closing the
	// session signs the console out, and a paper count sent after it is
	// refused as that, not as "no connection".
	k.lecturer("POST", "/api/close", `{}`)
	con.waitFor("the closed session", fmt.Sprintf(`document.getElementById('count-line').textContent === %q && document.getElementById('auth-problem').textContent === %q && !document.getElementById('auth-problem').hidden`, nb["con.count_closed"], nb["con.auth_closed"]))
	con.do(chromedp.SendKeys(chromedp.ID("paper-consents"), "1"), chromedp.SendKeys(chromedp.ID("paper-refusals"), "0"), chromedp.Click(chromedp.CSS(`#paper-form button`)))
	con.waitFor("the closed problem", fmt.Sprintf(`document.getElementById('paper-msg').textContent === %q`, nb["con.err.signed_out_at_close"]))
	if body := eval[string](con, `document.body.innerText`); strings.Contains(body, "malformed") || strings.Contains(body, "HTTP ") {
		t.Errorf("the console shows internal error text: %.300s", body)
	}
	con.checkAxe("after errors")
	con.checkTargets("console")

	con.checkClean(k.http.URL)
}

// TestBrowserStatesSayOneThing: closed and lecturer-only, on phone,
// projector and console in every language, say what they are and nothing
// that contradicts it.
func TestBrowserStatesSayOneThing(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(1)
	join := k.joinToken()

	con := newTab(t, browser, "console", axe, tabOptions{lang: "en", width: 1280, height: 800})
	con.navigate(k.loginLink())
	con.waitFor("the console", `location.pathname === '/console' && document.getElementById('count-line').textContent !== ''`)
	projCtx, cancel := chromedp.NewContext(con.ctx)
	t.Cleanup(cancel)
	proj := &tab{t: t, name: "projector", ctx: projCtx, axe: axe}
	proj.do(chromedp.EmulateViewport(1280, 800))
	proj.navigate(k.http.URL + "/")
	phone := newTab(t, browser, "phone", axe, tabOptions{lang: "en", width: 360, height: 640, mobile: true})
	phone.navigate(k.http.URL + "/j/" + join)
	phone.waitFor("the buttons", buttonsShown)
	phone.do(chromedp.Click(chromedp.ID("consent")))
	en := catalogue(t, "en")
	proj.waitFor("ready", fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q`, en["proj.reason.ready"]))

	// Lecturer-only: nobody is asked, and no phone is told to answer again.
	k.lecturer("POST", "/api/round", `{"purpose":"Slides and voice","mode":"lecturer-only"}`)
	for _, l := range languages {
		cat := catalogue(t, l)
		for _, tb := range []*tab{con, proj, phone} {
			tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.cookie = 'kiosk_lang=%s; path=/'`, l)))
			tb.navigate(strings.Split(eval[string](tb, `location.href`), "?")[0] + "?lang=" + l)
		}
		proj.waitFor("lecturer only, "+l, fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q && document.getElementById('count').textContent === %q && document.getElementById('slips').hidden`, cat["proj.reason.lecturer_only"], cat["proj.count_lecturer_only"]))
		if w := eval[[]float64](proj, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			t.Errorf("projector, lecturer only, %s: %v px wide in a %v px window", l, w[0], w[1])
		}
		con.waitFor("lecturer only, "+l, fmt.Sprintf(`document.getElementById('count-line').textContent === %q`, cat["con.count_lecturer_only"]))
		phone.waitFor("lecturer only, "+l, `document.getElementById('choose').hidden && !document.getElementById('lecturer-only').hidden`)
		if s := phone.text("status"); s == cat["phone.round_changed"] {
			t.Errorf("phone, lecturer only, %s: says %q", l, s)
		}
		proj.checkAxe("lecturer only")
	}
	for _, tb := range []*tab{con, proj, phone} {
		tb.navigate(strings.Split(eval[string](tb, `location.href`), "?")[0] + "?lang=en")
	}
	phone.waitFor("the lecturer-only round", `document.getElementById('choose').hidden`)

	// Closed: nothing is collected, nothing may be recorded; the phone
	// shows no tally that says otherwise, the projector invites no scan.
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	phone.waitFor("asked again", buttonsShown)
	phone.do(chromedp.Click(chromedp.ID("consent")))
	phone.waitFor("counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))
	k.lecturer("POST", "/api/close", `{}`)
	for _, l := range languages {
		cat := catalogue(t, l)
		if l != "en" {
			proj.navigate(k.http.URL + "/?lang=" + l)
			con.navigate(k.http.URL + "/console?lang=" + l)
		}
		// Closing signed the lecturer out; both pages still say the one
		// true thing, closed, and how to start again.
		proj.waitFor("closed, "+l, fmt.Sprintf(`document.getElementById('banner-reason').textContent === %q && document.getElementById('join').hidden && document.getElementById('typed').hidden && document.getElementById('count').textContent === %q && document.getElementById('auth-problem').textContent === %q`, cat["proj.reason.closed"], cat["proj.count_closed"], cat["proj.auth_closed"]))
		con.waitFor("closed, "+l, fmt.Sprintf(`document.getElementById('count-line').textContent === %q && document.getElementById('auth-problem').textContent === %q`, cat["con.count_closed"], cat["con.auth_closed"]))
		proj.checkAxe("closed")
	}
	phone.waitFor("closed", fmt.Sprintf(`document.getElementById('status').textContent === %q && document.getElementById('tally').hidden && document.getElementById('choose').hidden`, en["phone.closed"]))
	if body := eval[string](phone, `document.body.innerText`); strings.Contains(body, en["phone.outcome_unlocked"]) {
		t.Errorf("closed phone still says %q", en["phone.outcome_unlocked"])
	}
	phone.checkAxeEveryLanguage("closed")
	con.checkAxeEveryLanguage("closed")
}

// TestBrowserRecordPage: the record a data-protection officer reads. Times
// are ISO 8601 with the offset, rounds are numbered from 1 in each
// session, the fixed statements phones showed are in it, and without the
// lecturer's session the page says what to do instead of showing JSON.
func TestBrowserRecordPage(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := startKioskClocked(t, filepath.Join(t.TempDir(), "kiosk.db"), nil, true)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for enrolled students"}`)
	k.lecturer("POST", "/api/round", `{"purpose":"First session"}`)
	k.setHeadcount(2)
	k.lecturer("POST", "/api/close", `{}`)
	k.clock.Advance(time.Hour)
	k.lecturer("POST", "/api/round", `{"purpose":"Second session, round one"}`)
	k.clock.Advance(time.Minute)
	k.lecturer("POST", "/api/round", `{"purpose":"Second session, round two"}`)
	en := catalogue(t, "en")

	outsider := newTab(t, browser, "record without the session", axe, tabOptions{lang: "en", width: 1280, height: 800})
	outsider.navigate(k.http.URL + "/record")
	outsider.waitFor("the problem in words", fmt.Sprintf(`document.getElementById('problem').textContent === %q`, en["rec.auth"]))
	outsider.checkAxe("record without the session")

	rec := newTab(t, browser, "record", axe, tabOptions{lang: "en", width: 1280, height: 800})
	rec.navigate(k.loginLink())
	rec.waitFor("the console", `location.pathname === '/console'`)
	rec.navigate(k.http.URL + "/record")
	rec.waitFor("the rounds", `document.querySelectorAll('.round').length === 4`)
	heads := eval[[]string](rec, `Array.prototype.map.call(document.querySelectorAll('.round h2'), function (h) { return h.textContent; })`)
	// The test kiosk starts with a round of its own, which First session
	// replaced: they are rounds 1 and 2 of the first session.
	want := []string{"Round 2: Second session, round two", "Round 1: Second session, round one", "Round 2: First session", "Round 1: Lecture video for enrolled students"}
	if strings.Join(heads, "|") != strings.Join(want, "|") {
		t.Errorf("record headings = %q; want %q", heads, want)
	}
	body := eval[string](rec, `document.getElementById('rounds').innerText`)
	if !regexpISO.MatchString(body) {
		t.Errorf("record has no ISO 8601 time with an offset: %.400s", body)
	}
	for _, key := range []string{"phone.anonymous", "phone.no_consequence", "phone.withdraw", "rec.headcount_changes"} {
		if !strings.Contains(body, en[key]) {
			t.Errorf("record lacks the statement phones showed: %q", en[key])
		}
	}
	rec.do(chromedp.SendKeys(chromedp.ID("rec-room"), "Aud. 3"))
	rec.checkAxe("record")
	rec.checkClean(k.http.URL)
}

// slow3G is DevTools' "Slow 3G" preset: 2 s of latency and 400 kbit/s
// each way.
var slow3G = network.Conditions{Latency: 2000, DownloadThroughput: 50000, UploadThroughput: 50000}

// buttonsProbe notes when the answer buttons first show, from the page's
// own clock, which starts at navigation.
const buttonsProbe = `(function () {
  var iv = setInterval(function () {
    var c = document.getElementById('choose');
    if (c && c.className === 'choose') { window.__buttonsAt = performance.now(); clearInterval(iv); }
  }, 10);
})();`

// TestBrowserPhoneOnSlow3G measures how long a student on Slow 3G waits
// for the answer buttons: the page, its scripts and the websocket's first
// round all cross the throttled network. The figure is reported, not
// asserted (go test ./kiosk -run TestBrowserPhoneOnSlow3G -v): the
// network's emulated delay dominates it, but it runs on a shared machine.
func TestBrowserPhoneOnSlow3G(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.setHeadcount(3)
	p := newTab(t, browser, "phone on Slow 3G", "", tabOptions{lang: "nb", width: 360, height: 640, mobile: true, setup: buttonsProbe})
	c := slow3G
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: []*network.Conditions{&c}})
		return err
	}))
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("the buttons", `window.__buttonsAt !== undefined`)
	ms := eval[float64](p, `window.__buttonsAt`)
	t.Logf("Slow 3G (2 s latency, 400 kbit/s): the answer buttons show %.1f s after navigation starts", ms/1000)
}

// TestBrowserConsoleFillsItsTemplatesLate: a console opened before the
// lecturer signed in (or while the kiosk restarts) gets its template list
// once the kiosk answers, without a reload.
func TestBrowserConsoleFillsItsTemplatesLate(t *testing.T) {
	browser := startChromium(t)
	k := newTestKiosk(t)
	con := newTab(t, browser, "console", "", tabOptions{lang: "en", width: 1280, height: 800})
	con.navigate(k.http.URL + "/console")
	con.waitFor("not signed in", `!document.getElementById('auth-problem').hidden`)
	if n := eval[int](con, `document.getElementById('template-select').options.length`); n != 0 {
		t.Fatalf("the signed-out console lists %d templates", n)
	}
	// Signing in in a second tab of the same browser sets the cookie the
	// first one then uses.
	other, cancel := chromedp.NewContext(con.ctx)
	t.Cleanup(cancel)
	signIn := &tab{t: t, name: "sign-in", ctx: other}
	signIn.navigate(k.loginLink())
	signIn.waitFor("signed in", `location.pathname === '/console'`)
	con.waitFor("the templates", `document.getElementById('template-select').options.length > 0 && document.getElementById('auth-problem').hidden`)
}

// gate holds back every request whose path ends in one of its suffixes
// until it is released: a network that is slow for some requests.
type gate struct {
	suffixes []string
	open     chan struct{}
	once     sync.Once
}

func newGate(suffixes ...string) *gate {
	return &gate{suffixes: suffixes, open: make(chan struct{})}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// holdBack wraps a kiosk's handler so that each gate holds back its
// requests.
func holdBack(gates ...*gate) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, g := range gates {
				for _, suffix := range g.suffixes {
					if strings.HasSuffix(r.URL.Path, suffix) {
						select {
						case <-g.open:
						case <-r.Context().Done():
							return
						}
					}
				}
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TestBrowserButtonsShowWhenATapCounts: until the page's script has run,
// the answer buttons are on the page but invisible, so a finger that lands
// where they will be taps nothing. Then they show from the round the page
// carries, before the connection is up; a tap made then waits for it and
// counts once it is. (A script's element.click() is not a finger: it
// reaches an invisible button whose handler is not yet set, and is lost.)
func TestBrowserButtonsShowWhenATapCounts(t *testing.T) {
	browser := startChromium(t)
	script, connection := newGate("/phone.js"), newGate("/ws", "/api/phone")
	k := startKioskBehind(t, filepath.Join(t.TempDir(), "kiosk.db"), holdBack(script, connection))
	t.Cleanup(func() { script.release(); connection.release() }) // before the kiosk's server closes
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(1)
	en := catalogue(t, "en")

	p := newTab(t, browser, "phone on a slow network", "", tabOptions{lang: "en", width: 360, height: 640, mobile: true})
	// Page.navigate, not chromedp.Navigate: the load event waits for the
	// held script.
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: k.http.URL + "/j/" + k.joinToken()})
		return err
	}))
	// Nothing is painted before the stylesheet is in, so a finger has
	// nothing to land on before then.
	p.waitFor("the buttons and the stylesheet", `document.getElementById('refuse') !== null && document.querySelector('link[rel=stylesheet]').sheet !== null`)
	// fingerHits: a finger on a button's centre hits it only if the button
	// is what is painted there.
	fingerHits := `(function () {
		var hit = {};
		['consent', 'refuse'].forEach(function (id) {
			var b = document.getElementById(id), r = b.getBoundingClientRect();
			hit[id] = r.width > 0 && b.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
		});
		return hit;
	})()`
	if hit := eval[map[string]bool](p, fingerHits); hit["consent"] || hit["refuse"] {
		t.Fatalf("before the page's script ran, a finger on the buttons hits them (%v): the tap would be lost", hit)
	}
	p.tap("consent")

	script.release()
	p.waitFor("the buttons shown before the connection", buttonsShown+fmt.Sprintf(` && document.getElementById('purpose').textContent === 'Lecture video' && document.getElementById('status').textContent === %q`, en["phone.connecting"]))
	if hit := eval[map[string]bool](p, fingerHits); !hit["consent"] || !hit["refuse"] {
		t.Fatalf("the buttons show, but a finger on them misses (%v)", hit)
	}
	if st := k.store.State(); st.Received != 0 {
		t.Fatalf("received = %d after a tap where no button showed; want 0", st.Received)
	}
	p.tap("consent")
	p.waitFor("the answer waiting", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.queued"]))
	if st := k.store.State(); st.Received != 0 {
		t.Fatalf("received = %d before the phone could connect; want 0", st.Received)
	}
	connection.release()
	p.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))
	if st := k.store.State(); st.Received != 1 || !st.Unlocked {
		t.Fatalf("after the tap made while connecting: received %d, unlocked %v; want 1, true", st.Received, st.Unlocked)
	}
	p.checkClean(k.http.URL)
}

// consentWhileConnecting opens the phone page of a kiosk (one person in
// the room, a round with a purpose) whose websocket and HTTP fallback are
// held back, and taps "I consent" once the buttons show: the answer waits
// for the connection, which opens when the returned gate is released.
func consentWhileConnecting(t *testing.T, name string) (*testKiosk, *tab, *gate) {
	t.Helper()
	browser := startChromium(t)
	connection := newGate("/ws", "/api/phone")
	k := startKioskBehind(t, filepath.Join(t.TempDir(), "kiosk.db"), holdBack(connection))
	t.Cleanup(connection.release) // before the kiosk's server closes
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(1)
	p := newTab(t, browser, name, "", tabOptions{lang: "en", width: 360, height: 640, mobile: true})
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: k.http.URL + "/j/" + k.joinToken()})
		return err
	}))
	p.waitFor("the buttons shown before the connection", buttonsShown)
	p.tap("consent")
	p.waitFor("the answer waiting", fmt.Sprintf(`document.getElementById('current').textContent === %q`, catalogue(t, "en")["phone.queued"]))
	return k, p, connection
}

// TestBrowserLeaveWhileConnecting: a student who taps an answer and then
// "I am leaving the room" before the phone has connected has left: once
// the connection is up, the kiosk holds no slip of theirs, and the answer
// tapped before is never sent.
func TestBrowserLeaveWhileConnecting(t *testing.T) {
	k, p, connection := consentWhileConnecting(t, "phone that leaves before it connects")
	en := catalogue(t, "en")
	p.tap("leave")
	connection.release()
	p.waitFor("left", fmt.Sprintf(`document.getElementById('status').textContent === %q`, en["phone.left"]))
	// The page closed its socket; once the kiosk has read everything the
	// phone sent, it has no connection left.
	deadline := time.Now().Add(pageWait)
	for k.srv.hub.connected.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the phone's connection is still open after it left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := k.store.State(); st.Received != 0 || st.Unlocked || st.Issued != 0 {
		t.Fatalf("after a phone left before it connected: received %d, unlocked %v, phones %d; want 0, locked, 0", st.Received, st.Unlocked, st.Issued)
	}
}

// TestBrowserNewRoundWhileConnecting: a tap made on the round the page
// came with is not sent for a round the lecturer started meanwhile; once
// connected, the page says the round changed (not just "Connected.") and
// asks again.
func TestBrowserNewRoundWhileConnecting(t *testing.T) {
	k, p, connection := consentWhileConnecting(t, "phone whose round changes")
	en := catalogue(t, "en")
	k.lecturer("POST", "/api/round", `{"purpose":"Another purpose"}`)
	connection.release()
	p.waitFor("asked again", fmt.Sprintf(`document.getElementById('purpose').textContent === 'Another purpose' && document.getElementById('current').textContent === %q`, en["phone.current_none"]))
	// Connected by now: the round's tally has come.
	p.waitFor("the tally", `document.getElementById('tally-count').textContent !== ''`)
	if got := p.text("status"); got != en["phone.round_changed"] {
		t.Errorf("status once connected: %q; want %q", got, en["phone.round_changed"])
	}
	if st := k.store.State(); st.Received != 0 {
		t.Errorf("received = %d; want 0: the tap was for the round before", st.Received)
	}
}
