package kiosk

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/consent-kiosk/kiosk/internal/browsertest"
)

// pageWait bounds each wait for something to appear on a page.
const pageWait = 15 * time.Second

// buttonsShown is true once the phone page shows its answer buttons: its
// script has run and the round is known. Until then they are in the
// document but invisible, and their hidden attribute tells nothing.
const buttonsShown = `document.getElementById('choose').className === 'choose'`

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite the screenshots in docs/screenshots")

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	browsertest.SkipOrFail(t, format, args...)
}

// axeSource returns axe-core's axe.min.js, installed from npm: the file
// named by KIOSK_AXE, or node_modules/axe-core at the top of the module.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KIOSK_AXE")
	if path == "" {
		path = filepath.Join("..", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		skipOrFail(t, "axe-core is not installed (npm install axe-core, or set KIOSK_AXE to axe.min.js): %v", err)
	}
	return string(b)
}

func startChromium(t *testing.T) context.Context { return browsertest.Start(t) }

// tab is one page in its own browser context, so that each phone has its
// own storage and so its own device secret, as separate phones do.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	axe  string

	events func(ev any)

	mu       sync.Mutex
	requests []string // every URL the page asked for
	problems []string // script exceptions and CSP violations
}

type tabOptions struct {
	lang          string // Accept-Language; "" for none
	width, height int64
	mobile        bool
	reducedMotion bool
	setup         string       // script run before any of the page's own
	events        func(ev any) // sees every event of the tab, in its event loop
}

func newTab(t *testing.T, browser context.Context, name, axe string, o tabOptions) *tab {
	t.Helper()
	tb := &tab{t: t, name: name, axe: axe, events: o.events}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	var opts []chromedp.EmulateViewportOption
	if o.mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(o.width, o.height, opts...)}
	if o.lang != "" {
		steps = append(steps, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": o.lang}})
			return err
		}))
	}
	if o.reducedMotion {
		steps = append(steps, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}}})
			return err
		}))
	}
	if o.setup != "" {
		steps = append(steps, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: o.setup})
			return err
		}))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: opening a tab: %v", name, err)
	}
	return tb
}

// listen runs in the tab's event loop: it only records.
func (tb *tab) listen(ev any) {
	if tb.events != nil {
		tb.events(ev)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	case *network.EventWebSocketCreated:
		tb.requests = append(tb.requests, ev.URL)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	case *log.EventEntryAdded:
		if strings.Contains(ev.Entry.Text, "Content Security Policy") {
			tb.problems = append(tb.problems, "CSP: "+ev.Entry.Text)
		}
	}
}

// checkClean fails the test if the page asked anything of another host
// than the kiosk, or threw, or broke the kiosk's Content-Security-Policy.
func (tb *tab) checkClean(kiosk string) {
	tb.t.Helper()
	u, _ := url.Parse(kiosk)
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.requests) == 0 {
		tb.t.Errorf("%s: saw no requests at all; the network listener is not working", tb.name)
	}
	for _, r := range tb.requests {
		ru, err := url.Parse(r)
		if err != nil || ru.Host != u.Host || (ru.Scheme != "http" && ru.Scheme != "ws") {
			tb.t.Errorf("%s: the page requested %q; want nothing but the kiosk at %s", tb.name, r, u.Host)
		}
	}
	for _, p := range tb.problems {
		tb.t.Errorf("%s: %s", tb.name, p)
	}
}

func (tb *tab) requested(path string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := 0
	for _, r := range tb.requests {
		if u, err := url.Parse(r); err == nil && u.Path == path {
			n++
		}
	}
	return n
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

func (tb *tab) navigate(u string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(u))
}

// tap presses the element with the given id as a finger does: at the
// centre of its box, so it hits only what is painted there. Unlike
// element.click(), it cannot reach a button that is not shown yet, and it
// needs no node that a form's redirect may have replaced.
func (tb *tab) tap(id string) {
	tb.t.Helper()
	xy := eval[[]float64](tb, fmt.Sprintf(`(function () { var r = document.getElementById(%q).getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, id))
	tb.do(chromedp.MouseClickXY(xy[0], xy[1]))
}

// eval evaluates a JavaScript expression in the page. Runtime.evaluate is
// the debugger's, so the page's CSP (no eval) does not stop it.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %.100s: %v", tb.name, expr, err)
	}
	return v
}

// waitFor waits, by bounded polling inside the page, until expr is true.
// (chromedp.Poll compiles its predicate with new Function, which the
// kiosk's CSP forbids.)
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	js := fmt.Sprintf(`new Promise(function (resolve) {
		var end = Date.now() + %d;
		(function check() {
			var ok = false;
			try { ok = !!(%s); } catch (e) {}
			if (ok || Date.now() > end) { resolve(ok); return; }
			setTimeout(check, 25);
		})();
	})`, pageWait.Milliseconds(), expr)
	// A page that navigates (the lecturer URL's refresh, a form) destroys
	// the context the promise runs in; ask again in the new page.
	deadline := time.Now().Add(pageWait)
	var ok bool
	for {
		v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		if err == nil {
			ok = v
			break
		}
		if time.Now().After(deadline) || !(strings.Contains(err.Error(), "navigated") || strings.Contains(err.Error(), "context was destroyed") || strings.Contains(err.Error(), "Cannot find context")) {
			tb.t.Fatalf("%s: waiting for %s: %v", tb.name, what, err)
		}
	}
	if !ok {
		state := eval[string](tb, `location.pathname + ' lang=' + document.documentElement.lang + (document.getElementById('status') ? ' status=' + document.getElementById('status').textContent : '') + ': ' + document.body.innerText.slice(0, 600)`)
		tb.t.Fatalf("%s: waited %v for %s (%s); the page shows: %s; script problems: %q", tb.name, pageWait, what, expr, state, tb.problems)
	}
}

func (tb *tab) text(id string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`document.getElementById(%q).textContent`, id))
}

// switchLanguage uses the page's own switcher and waits for the page to
// be in lang.
func (tb *tab) switchLanguage(lang string) {
	tb.t.Helper()
	if !eval[bool](tb, `document.querySelector('.lang-switch') !== null`) {
		// The projector view has no switcher: the room sees no control.
		tb.navigate(strings.Split(eval[string](tb, `location.href`), "?")[0] + "?lang=" + lang)
	} else {
		tb.do(chromedp.Click(chromedp.CSS(`.lang-switch a[hreflang="` + lang + `"]`)))
	}
	tb.waitFor("the page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q`, lang))
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkAxe runs axe-core on the page as it is now and fails on any
// serious or critical violation of WCAG 2.1 A/AA or axe's best practices.
func (tb *tab) checkAxe(state string) {
	tb.t.Helper()
	if !eval[bool](tb, `typeof axe === 'object'`) {
		if err := chromedp.Do(tb.ctx, chromedp.Evaluate[chromedp.Void](tb.axe)); err != nil {
			tb.t.Fatalf("%s: loading axe-core: %v", tb.name, err)
		}
	}
	raw := eval[string](tb, `axe.run(document, {
		runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
		resultTypes: ['violations']
	}).then(function (r) {
		return JSON.stringify({passes: r.passes.length, violations: r.violations.filter(function (v) {
			return v.impact === 'serious' || v.impact === 'critical';
		}).map(function (v) {
			return {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map(function (n) { return n.target.join(' ') + ' ' + (n.failureSummary || ''); })};
		})});
	})`)
	var res struct {
		Passes     int
		Violations []axeViolation
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		tb.t.Fatalf("%s: axe answered %q: %v", tb.name, raw, err)
	}
	if res.Passes < 10 {
		tb.t.Errorf("%s, %s: axe passed only %d rules; it did not really run", tb.name, state, res.Passes)
	}
	vs := res.Violations
	lang := eval[string](tb, `document.documentElement.lang`)
	for _, v := range vs {
		tb.t.Errorf("%s, %s, lang %s: axe %s (%s): %s\n\t%s", tb.name, state, lang, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}

// checkAxeEveryLanguage runs axe in each language, ending in the one the
// page was in.
func (tb *tab) checkAxeEveryLanguage(state string) {
	tb.t.Helper()
	start := eval[string](tb, `document.documentElement.lang`)
	for _, l := range languages {
		if l != start {
			tb.switchLanguage(l)
			tb.checkAxe(state)
		}
	}
	tb.switchLanguage(start)
	tb.checkAxe(state)
}

// checkTargets fails on any visible control smaller than 44×44 CSS px
// (WCAG 2.5.5's size, which 2.1 AA does not require but phones need).
func (tb *tab) checkTargets(state string) {
	tb.t.Helper()
	small := eval[[]string](tb, `(function () {
		var out = [];
		var els = document.querySelectorAll('button, a[href], input, select, textarea, summary');
		for (var i = 0; i < els.length; i++) {
			var r = els[i].getBoundingClientRect();
			if (r.width === 0 && r.height === 0) { continue; } // not shown
			if (r.width < 44 || r.height < 44) {
				out.push((els[i].id || els[i].tagName) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
			}
		}
		return out;
	})()`)
	for _, s := range small {
		tb.t.Errorf("%s, %s: target %s is smaller than 44x44", tb.name, state, s)
	}
}

// checkReflow fails if the page scrolls sideways: at 320 CSS px wide, which
// is also what 200 %% zoom makes of a 640 px window, text must reflow.
func (tb *tab) checkReflow(state string) {
	tb.t.Helper()
	if w := eval[[]int](tb, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		tb.t.Errorf("%s, %s: the page is %d px wide in a %d px window; want no sideways scrolling", tb.name, state, w[0], w[1])
	}
}

// catalogue returns the strings of one language, as the pages get them.
func catalogue(t *testing.T, lang string) map[string]string {
	t.Helper()
	return loadCatalogues(t)[lang]
}

// TestBrowserLecture: a lecturer opens the projector page, three phones in
// three languages consent, the banner and /api/unlock say ready; one phone
// withdraws, and both lock. axe-core checks every page in every language
// and state, and no page requests anything from anywhere but the kiosk.
func TestBrowserLecture(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for INF100, shown to enrolled students","notice":"Voice and slides are recorded; the camera films the lectern only."}`)
	k.setHeadcount(3)
	en := catalogue(t, "en")

	proj := newTab(t, browser, "projector", axe, tabOptions{lang: "en-GB,en", width: 1280, height: 800})
	proj.navigate(k.loginLink())
	proj.waitFor("the console", `location.pathname === '/console' && document.getElementById('count-line').textContent !== ''`)
	proj.checkAxeEveryLanguage("console, before a slip")
	proj.checkTargets("console")
	proj.navigate(k.http.URL + "/")
	proj.waitFor("the projector page", `document.getElementById('count').textContent === '0 of 3'`)
	proj.waitFor("the join code", `/^[3479ACDEFHJKMNPQRTWXY]{3}\u2009[3479ACDEFHJKMNPQRTWXY]{3}$/.test(document.getElementById('code').textContent)`)
	if got, want := proj.text("code-url"), k.http.URL+"/k"; got != want {
		t.Errorf("projector short address = %q; want %q", got, want)
	}
	proj.waitFor("the QR code", `document.getElementById('qr').naturalWidth > 0`)
	proj.checkAxeEveryLanguage("locked, before a slip")

	join := k.joinToken()
	phones := []*tab{
		newTab(t, browser, "phone nb", axe, tabOptions{lang: "nb-NO,nb;q=0.9,en;q=0.5", width: 360, height: 740, mobile: true}),
		newTab(t, browser, "phone nn", axe, tabOptions{lang: "nn-NO,nn", width: 360, height: 740, mobile: true, reducedMotion: true}),
		newTab(t, browser, "phone sv", axe, tabOptions{lang: "sv-SE", width: 320, height: 640, mobile: true}),
	}
	langs := []string{"nb", "nn", "sv"}
	for i, p := range phones {
		p.navigate(k.http.URL + "/j/" + join)
		if got := eval[string](p, `document.documentElement.lang`); got != langs[i] {
			t.Errorf("%s: <html lang> = %q as served; want %q", p.name, got, langs[i])
		}
		cat := catalogue(t, langs[i])
		p.waitFor("the buttons", buttonsShown)
		p.waitFor("its own language", fmt.Sprintf(`document.getElementById('consent').textContent === %q`, cat["phone.consent"]))
		p.checkAxe("before a slip")
		p.checkTargets("before a slip")
		p.checkReflow("before a slip")
	}
	phones[0].checkAxeEveryLanguage("before a slip")
	if n := eval[int](phones[1], `document.getAnimations().length`); n != 0 {
		t.Errorf("phone nn with reduced motion: %d animations running; want none", n)
	}

	// Phone nb answers by keyboard alone: Tab to the button, press Enter.
	phones[0].tabTo("consent")
	phones[0].do(chromedp.KeyEvent("\r"))
	for _, p := range phones[1:] {
		p.do(chromedp.Click(chromedp.ID("consent")))
	}
	for i, p := range phones {
		cat := catalogue(t, langs[i])
		p.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, cat["phone.current_consent"]))
		if got := eval[string](p, `document.getElementById('consent').getAttribute('aria-pressed')`); got != "true" {
			t.Errorf("%s: consent aria-pressed = %q; want true", p.name, got)
		}
	}
	proj.waitFor("READY TO RECORD", fmt.Sprintf(`document.getElementById('banner-state').textContent === %q`, en["proj.ready"]))
	k.wantUnlock("three phones consented in the browser", 200, "")
	for _, p := range phones {
		p.waitFor("the outcome", `document.getElementById('tally-count').textContent.indexOf('3') === 0`)
	}
	phones[2].checkAxeEveryLanguage("counted, unlocked")
	proj.checkAxeEveryLanguage("unlocked")

	// Phone sv withdraws its consent.
	phones[2].do(chromedp.Click(chromedp.ID("refuse")))
	sv := catalogue(t, "sv")
	phones[2].waitFor("the refusal counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, sv["phone.current_refuse"]))
	proj.waitFor("LOCKED", fmt.Sprintf(`document.getElementById('banner-state').textContent === %q && document.getElementById('banner-reason').textContent === %q`,
		en["proj.locked"], en["proj.reason.refused"]))
	k.wantUnlock("after a withdrawal in the browser", 423, "refused")
	phones[2].checkAxeEveryLanguage("withdrawn")
	proj.checkAxeEveryLanguage("locked after a withdrawal")

	// Two languages on the projector at once, for a mixed hall.
	proj.navigate(k.http.URL + "/?lang=nb&lang2=en")
	nb := catalogue(t, "nb")
	proj.waitFor("bokmål and English", fmt.Sprintf(`document.querySelector('#banner-state .lang1').textContent === %q && document.querySelector('#banner-state .lang2').textContent === %q && document.querySelector('#banner-state .lang2').lang === 'en'`,
		nb["proj.locked"], en["proj.locked"]))
	proj.checkAxe("two languages")
	proj.checkReflow("two languages")
	proj.do(chromedp.EmulateViewport(320, 640))
	proj.checkReflow("two languages at 320 px")
	proj.do(chromedp.EmulateViewport(1280, 800))

	// Phone nn leaves by keyboard: the buttons go, and focus goes to the
	// status, not to nowhere.
	phones[1].tabTo("leave")
	phones[1].do(chromedp.KeyEvent("\r"))
	nn := catalogue(t, "nn")
	phones[1].waitFor("left", fmt.Sprintf(`document.getElementById('status').textContent === %q`, nn["phone.left"]))
	if got := eval[string](phones[1], `document.activeElement && document.activeElement.id`); got != "status" {
		t.Errorf("phone nn after leaving: focus on %q; want status", got)
	}
	phones[1].checkAxe("left")

	// Error states: a phone with a link that is not the kiosk's, and a
	// projector page without the lecturer's cookie.
	stray := newTab(t, browser, "phone with a bad link", axe, tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	stray.navigate(k.http.URL + "/j/AAAAAAAAAAAAAAAAAAAAAA")
	stray.waitFor("the problem", `!document.getElementById('problem').hidden`)
	stray.checkAxeEveryLanguage("error")
	outsider := newTab(t, browser, "projector without the lecturer cookie", axe, tabOptions{lang: "sv", width: 1280, height: 800})
	outsider.navigate(k.http.URL + "/")
	outsider.waitFor("the problem", `!document.getElementById('auth-problem').hidden`)
	outsider.navigate(k.http.URL + "/console")
	outsider.waitFor("the console's problem", `!document.getElementById('auth-problem').hidden`)
	outsider.checkAxeEveryLanguage("error")

	for _, tb := range append([]*tab{proj, stray, outsider}, phones...) {
		tb.checkClean(k.http.URL)
	}
}

// tabTo presses Tab until the element with id has focus, failing if it
// cannot be reached by keyboard.
func (tb *tab) tabTo(id string) {
	tb.t.Helper()
	for range 40 {
		tb.do(chromedp.KeyEvent("\t"))
		if eval[string](tb, `document.activeElement ? document.activeElement.id : ''`) == id {
			return
		}
	}
	tb.t.Fatalf("%s: 40 presses of Tab did not reach #%s", tb.name, id)
}

// TestBrowserWithoutWebsockets: behind a proxy that refuses websockets,
// the phone page answers over plain HTTP, hears changes by long-polling,
// and tells the student nothing alarming. A phone that types the join code
// gets the same page.
func TestBrowserWithoutWebsockets(t *testing.T) {
	axe := axeSource(t)
	browser := startChromium(t)
	blockWS := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ws" {
				http.Error(w, "websockets are not allowed here", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	k := startKioskBehind(t, filepath.Join(t.TempDir(), "kiosk.db"), blockWS)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(2)
	sv := catalogue(t, "sv")

	p := newTab(t, browser, "phone over HTTP", axe, tabOptions{lang: "sv", width: 360, height: 740, mobile: true})
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("the buttons", buttonsShown)
	p.waitFor("connected", fmt.Sprintf(`document.getElementById('status').textContent === %q`, sv["phone.connected"]))
	if p.requested("/api/phone") == 0 {
		t.Fatal("the phone joined without POST /api/phone; the websocket was meant to be blocked")
	}
	p.do(chromedp.Click(chromedp.ID("consent")))
	p.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, sv["phone.current_consent"]))
	if st := k.store.State(); st.Received != 1 {
		t.Errorf("received = %d after a consent over HTTP; want 1", st.Received)
	}
	p.checkAxe("counted over HTTP")

	// A phone that types the code joins the same session.
	typed := newTab(t, browser, "phone typing the code", axe, tabOptions{lang: "nn", width: 320, height: 640, mobile: true})
	typed.navigate(k.http.URL + "/k")
	typed.checkAxeEveryLanguage("code form")
	typed.checkTargets("code form")
	typed.checkReflow("code form")
	code := k.lecturer("GET", "/api/join", "")["code"].(string)
	typed.do(chromedp.SendKeys(chromedp.ID("code"), "nope12\r"))
	typed.waitFor("the problem", `!document.getElementById('problem').hidden && document.activeElement.id === 'code'`)
	typed.checkAxe("wrong code")
	typed.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('code').value = ''`), chromedp.SendKeys(chromedp.ID("code"), strings.ToLower(code[:3])+" "+code[3:]+"\r"))
	typed.waitFor("the phone page", `location.pathname.indexOf('/j/') === 0 && `+buttonsShown)
	typed.tap("consent")
	typed.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, catalogue(t, "nn")["phone.current_consent"]))
	k.wantUnlock("two phones, one over HTTP, one by typed code", 200, "")

	// The long-poll brings news: the lecturer changes the purpose, and the
	// phone over HTTP is asked again.
	k.lecturer("POST", "/api/round", `{"purpose":"A new purpose"}`)
	p.waitFor("the new round", fmt.Sprintf(`document.getElementById('purpose').textContent === 'A new purpose' && document.getElementById('current').textContent === %q`, sv["phone.current_none"]))
	p.checkClean(k.http.URL)
	typed.checkClean(k.http.URL)
}

// TestBrowserLateLongPollAck: over HTTP, a long-polling hello can be
// answered before a change of mind and arrive after that change's own ack.
// Its ack, of the answer before, must not take the place of the newer one
// on the page (and so be sent again after a reconnect).
func TestBrowserLateLongPollAck(t *testing.T) {
	browser := startChromium(t)
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	holdNextAnswer := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ws" {
				http.Error(w, "websockets are not allowed here", http.StatusForbidden)
				return
			}
			if r.URL.Path != "/api/phone" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			// The first answer made once armed is delivered later.
			if armed.CompareAndSwap(true, false) {
				close(held)
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		})
	}
	k := startKioskBehind(t, filepath.Join(t.TempDir(), "kiosk.db"), holdNextAnswer)
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the kiosk's server closes
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video"}`)
	k.setHeadcount(1)
	en := catalogue(t, "en")

	p := newTab(t, browser, "phone over HTTP", "", tabOptions{lang: "en", width: 360, height: 740, mobile: true})
	p.navigate(k.http.URL + "/j/" + k.joinToken())
	p.waitFor("connected", fmt.Sprintf(`document.getElementById('status').textContent === %q`, en["phone.connected"]))
	p.tap("consent")
	p.waitFor("the consent counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_consent"]))

	// The next answer made for the phone, to its long-poll woken by the
	// lecturer, says consent; it is held back.
	armed.Store(true)
	k.setHeadcount(2)
	select {
	case <-held:
	case <-time.After(pageWait):
		t.Fatal("no long-poll answer was made after the headcount changed")
	}
	p.tap("refuse")
	p.waitFor("the refusal counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, en["phone.current_refuse"]))
	polls := p.requested("/api/phone")
	letGo()
	// The page polls again once it has handled the late answer.
	deadline := time.Now().Add(pageWait)
	for p.requested("/api/phone") <= polls {
		if time.Now().After(deadline) {
			t.Fatal("the page did not poll again after the late answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.text("current"); got != en["phone.current_refuse"] {
		t.Errorf("after the late long-poll answer the page says %q; want %q, as the kiosk counts", got, en["phone.current_refuse"])
	}
	if st := k.store.State(); st.Unlocked || st.Received != 1 {
		t.Errorf("the kiosk: %+v; want locked, the phone's one slip", st)
	}
}

// TestScreenshots refreshes the pictures in docs/screenshots:
//
//	go test ./kiosk/ -run TestScreenshots -update-screenshots
func TestScreenshots(t *testing.T) {
	if !*updateScreenshots {
		t.Skip("run with -update-screenshots to refresh docs/screenshots")
	}
	axe := axeSource(t)
	browser := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", screenshotRound(t))
	k.setHeadcount(30)
	join := k.joinToken()
	for i := range 12 {
		k.newPhone(fmt.Sprint("p", i), join).slip("consent")
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	save := func(tb *tab, name string, full bool) {
		t.Helper()
		var png []byte
		var err error
		if full {
			png, err = chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
		} else {
			png, err = chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		}
		if err != nil {
			t.Fatalf("%s: screenshot: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proj := newTab(t, browser, "projector", axe, tabOptions{lang: "en", width: 1280, height: 800})
	proj.navigate(k.loginLink())
	proj.waitFor("the console", `location.pathname === '/console' && document.getElementById('count-line').textContent !== ''`)
	save(proj, "console-en.png", false)
	proj.navigate(k.http.URL + "/?lang=en")
	proj.waitFor("the count", `document.getElementById('count').textContent === '12 of 30' && document.getElementById('qr').naturalWidth > 0 && document.getElementById('code').textContent !== ''`)
	save(proj, "projector-en.png", false)
	proj.navigate(k.http.URL + "/?lang=nb&lang2=en")
	proj.waitFor("two languages", `document.querySelector('#banner-state .lang2') !== null && document.getElementById('qr').naturalWidth > 0 && document.getElementById('code').textContent !== ''`)
	save(proj, "projector-nb-en.png", false)

	small := newTab(t, browser, "phone nb 320", axe, tabOptions{lang: "nb", width: 320, height: 568, mobile: true})
	small.navigate(k.http.URL + "/j/" + join)
	small.waitFor("the buttons", buttonsShown+` && document.getElementById('tally-count').textContent !== ''`)
	save(small, "phone-nb-320x568.png", false)

	for _, l := range []string{"nn", "en"} {
		p := newTab(t, browser, "phone "+l, axe, tabOptions{lang: l, width: 390, height: 844, mobile: true})
		p.navigate(k.http.URL + "/j/" + join)
		p.waitFor("the buttons", buttonsShown+` && document.getElementById('tally-count').textContent !== ''`)
		if l == "nn" {
			p.do(chromedp.Click(chromedp.ID("consent")))
			p.waitFor("counted", fmt.Sprintf(`document.getElementById('current').textContent === %q`, catalogue(t, l)["phone.current_consent"]))
		}
		save(p, "phone-"+l+".png", true)
	}
}

// screenshotRound is the English template filled in as a lecturer would.
func screenshotRound(t *testing.T) string {
	t.Helper()
	var tpl struct {
		Fields map[string]string `json:"fields"`
	}
	b, _ := os.ReadFile(filepath.Join("..", "static", "templates", "en.json"))
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	fill := map[string]string{
		"course":   "INF100 Introduction to programming",
		"recorded": "The lecturer's voice and the slides. Students may be heard when they ask questions aloud.",
		"camera":   "The camera films the lectern and the board; the first two rows may be in the picture. Sit further back to stay out of it.",
	}
	for f, v := range fill {
		tpl.Fields[f] = v
	}
	out, _ := json.Marshal(map[string]any{"purpose": "Lecture video for INF100, for students who could not attend", "template": "en", "notice": tpl.Fields})
	return string(out)
}
