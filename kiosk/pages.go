package kiosk

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/consent-kiosk/kiosk/static"
	"github.com/consent-kiosk/kiosk/tally"
)

// The kiosk's pages and assets are embedded and never change while it
// runs, so everything a browser downloads is prepared once at start:
// compressed (a phone on a crowded Wi-Fi gets about a third of the bytes),
// and named by its content, so that a phone that comes back loads nothing
// twice and never runs a stale script after an upgrade.

// asset is one embedded file as it is served.
type asset struct {
	ctype string
	plain []byte
	gz    []byte // nil when compressing does not pay
	etag  string // a quoted hash of plain
	hash  string // the short hash put in ?v=
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{plain: body, hash: hex.EncodeToString(sum[:6])}
	a.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	a.ctype = mime.TypeByExtension(path.Ext(name))
	if a.ctype == "" {
		a.ctype = "application/octet-stream"
	}
	if strings.HasSuffix(name, ".json") {
		a.ctype = "application/json; charset=utf-8"
	}
	if !strings.HasPrefix(a.ctype, "image/") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
		}
	}
	return a
}

// serve writes the asset, compressed if the client takes gzip, or 304 if
// the client holds this very version.
func (a *asset) serve(w http.ResponseWriter, r *http.Request, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.plain
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	writeBody(w, r, body)
}

// writeBody ends a 200 answer with body (only its length for HEAD).
func writeBody(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip
// (and does not refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// assets holds every embedded file but the pages, by path under /static/.
type assets map[string]*asset

func loadAssets() assets {
	as := assets{}
	fs.WalkDir(static.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := static.Files.ReadFile(p)
		if err != nil {
			return err
		}
		as[p] = newAsset(p, b)
		return nil
	})
	return as
}

// handleStatic serves /static/NAME. A request naming the current version
// (?v=, as the pages do) may be cached for good; any other is revalidated.
// There are no directory listings.
func (as assets) handleStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := as[strings.TrimPrefix(r.URL.Path, "/static/")]
	if !ok || strings.HasSuffix(r.URL.Path, ".html") {
		http.NotFound(w, r)
		return
	}
	cc := "no-cache"
	if r.URL.Query().Get("v") == a.hash {
		cc = "public, max-age=31536000, immutable"
	}
	a.serve(w, r, cc)
}

// assetRef finds the kiosk's own asset links in a page, the relative
// ../static/ ones too (the phone page uses them so that it works under a
// relay's room prefix).
var assetRef = regexp.MustCompile(`(src|href)="((?:\.\.)?/static/)([^"?]+)"`)

// Language names in their own language, for the switchers.
var autonyms = map[string]string{"en": "English", "nb": "Bokmål", "nn": "Nynorsk", "sv": "Svenska"}

// switcherOrder is the order the switchers list languages in: the
// Scandinavian ones first, as the rooms are mostly there.
var switcherOrder = []string{"nb", "nn", "sv", "en"}

// langSwitcher is the language switcher every page has, as links that
// work without script; it stands where a page says {{languages}}.
func langSwitcher() string {
	var b strings.Builder
	b.WriteString(`<nav class="lang-switch" aria-label="Language" data-i18n-aria-label="common.language">`)
	for _, l := range switcherOrder {
		fmt.Fprintf(&b, `<a href="?lang=%s" hreflang="%s" lang="%s">%s</a>`, l, l, l, html.EscapeString(autonyms[l]))
	}
	b.WriteString(`</nav>`)
	return b.String()
}

// pageSpec says what a page needs inlined: the catalogue keys it shows
// (by prefix), and whether it shows notices.
type pageSpec struct {
	name     string
	prefixes []string
	notices  bool
	// round: the page carries the current round message when the join
	// token in its address is valid, so that a phone shows the notice and
	// its buttons without waiting for its connection (a tap made before
	// then is sent once the connection is up).
	round bool
}

// pageData is inlined in each page as JSON, so that the page can draw
// itself without another request: its strings in its language, and the
// lists that the server owns.
type pageData struct {
	Lang      string            `json:"lang"`
	Catalogue map[string]string `json:"catalogue"`
	Languages []langName        `json:"languages"`
	// Fields are tally.NoticeFields; Short those of them a phone shows
	// before the buttons; Labels the field names of each template, by its
	// language.
	Fields []string                     `json:"fields,omitempty"`
	Short  []string                     `json:"short,omitempty"`
	Labels map[string]map[string]string `json:"labels,omitempty"`
}

type langName struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// shortNotice are the notice fields a phone shows before the buttons,
// with the fixed statements: the few facts that decide (what is recorded,
// where the camera films so one can sit outside it); the rest is one tap
// away.
var shortNotice = []string{"recorded", "camera"}

// i18nText finds an element whose text is a catalogue string; i18nAttr an
// attribute that is. The pages keep such elements free of markup inside.
var (
	i18nText = regexp.MustCompile(`(<[a-z0-9]+\b[^>]*\sdata-i18n="([^"]+)"[^>]*>)([^<]*)(<)`)
	i18nAttr = regexp.MustCompile(`\s(alt|aria-label)="[^"]*"([^>]*)\sdata-i18n-(?:alt|aria-label)="([^"]+)"`)
)

// translatePage writes a page's strings in lang into the page itself, so
// that it shows in the right language from its first paint, before (or
// without) any script; the script only takes over for a switch.
func translatePage(b []byte, cat map[string]string) []byte {
	b = i18nText.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := i18nText.FindSubmatch(m)
		s, ok := cat[string(sub[2])]
		if !ok {
			return m
		}
		return slicesConcat(sub[1], []byte(html.EscapeString(s)), sub[4])
	})
	return i18nAttr.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := i18nAttr.FindSubmatch(m)
		s, ok := cat[string(sub[3])]
		if !ok {
			return m
		}
		return fmt.Appendf(nil, ` %s="%s"%s data-i18n-%s="%s"`, sub[1], html.EscapeString(s), sub[2], sub[1], sub[3])
	})
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// preparedPage is one page, prepared in every language.
type preparedPage map[string]*asset

// buildPage prepares a page in each language: <html lang> set, asset
// links versioned, the switcher in place, its data inlined. It panics on
// a page that does not fit, which the tests catch.
func buildPage(spec pageSpec, as assets) preparedPage {
	src, err := static.Files.ReadFile(spec.name)
	if err != nil || !bytes.Contains(src, langAttr) || !bytes.Contains(src, []byte("</head>")) {
		panic("kiosk: page " + spec.name + ` must exist, start with <html lang="en"` + " and have a </head>")
	}
	src = assetRef.ReplaceAllFunc(src, func(m []byte) []byte {
		sub := assetRef.FindSubmatch(m)
		a, ok := as[string(sub[3])]
		if !ok {
			panic("kiosk: page " + spec.name + " links to a missing /static/" + string(sub[3]))
		}
		return fmt.Appendf(nil, `%s="%s%s?v=%s"`, sub[1], sub[2], sub[3], a.hash)
	})
	src = bytes.ReplaceAll(src, []byte("{{languages}}"), []byte(langSwitcher()))
	var names []langName
	for _, l := range switcherOrder {
		names = append(names, langName{l, autonyms[l]})
	}
	var labels map[string]map[string]string
	if spec.notices {
		labels = templateLabels()
	}
	out := preparedPage{}
	for _, l := range languages {
		cat := map[string]string{}
		for k, v := range catalogueOf(l) {
			for _, p := range spec.prefixes {
				if strings.HasPrefix(k, p) {
					cat[k] = v
				}
			}
		}
		d := pageData{Lang: l, Catalogue: cat, Languages: names}
		if spec.notices {
			d.Fields, d.Short, d.Labels = tally.NoticeFields(), shortNotice, labels
		}
		js, _ := json.Marshal(d) // escapes <, > and &: safe inside <script>
		b := translatePage(bytes.Replace(src, langAttr, []byte(`<html lang="`+l+`"`), 1), catalogueOf(l))
		b = bytes.Replace(b, []byte("</head>"), fmt.Appendf(nil, `<script id="kiosk-data" type="application/json">%s</script>`+"\n</head>", js), 1)
		out[l] = newAsset(spec.name, b)
	}
	return out
}

func catalogueOf(l string) map[string]string {
	var c map[string]string
	b, _ := static.Files.ReadFile("i18n/" + l + ".json")
	json.Unmarshal(b, &c)
	return c
}

// templateLabels returns the field labels of every notice template, by the
// template's language.
func templateLabels() map[string]map[string]string {
	out := map[string]map[string]string{}
	names, _ := fs.Glob(static.Files, "templates/*.json")
	for _, n := range names {
		var tpl struct {
			Lang   string            `json:"lang"`
			Labels map[string]string `json:"labels"`
		}
		b, _ := static.Files.ReadFile(n)
		if json.Unmarshal(b, &tpl) == nil && tpl.Lang != "" {
			out[tpl.Lang] = tpl.Labels
		}
	}
	return out
}

// servePage serves a prepared page in the request's language.
func (s *Server) servePage(spec pageSpec) http.HandlerFunc {
	p := buildPage(spec, s.assets)
	return func(w http.ResponseWriter, r *http.Request) {
		lang := pageLang(r)
		if r.URL.Query().Has("lang") {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode})
		}
		h := w.Header()
		h.Set("Content-Language", lang)
		h.Add("Vary", "Accept-Language, Cookie")
		if spec.round {
			if m := s.roundForPage(r); m != nil {
				p[lang].serveWithRound(w, r, m)
				return
			}
		}
		// no-store: a page is small, and the phone page's address holds a
		// join token that must not linger in a cache.
		p[lang].serve(w, r, "no-store")
	}
}

// roundForPage is the round message a phone page carries, or nil when
// the token in its address is not valid now: a photo of an old QR code
// shows no notice, and its phone learns why when it says hello.
func (s *Server) roundForPage(r *http.Request) []byte {
	if s.join.verify(r.PathValue("token")) != nil {
		return nil
	}
	return newRoundMessage(s.store.State())
}

// pageGzip holds gzip writers for the pages made per request: a writer
// costs some 800 KB to make, and a hall loads its pages together.
var pageGzip = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// serveWithRound writes the page with the round message m inlined. It
// is made for this request, so it has no ETag and is never stored.
func (a *asset) serveWithRound(w http.ResponseWriter, r *http.Request, m []byte) {
	// m is json.Marshal's, which escapes <, > and &: safe inside <script>.
	body := bytes.Replace(a.plain, []byte("</head>"), fmt.Appendf(nil, `<script id="kiosk-round" type="application/json">%s</script>`+"\n</head>", m), 1)
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	if acceptsGzip(r) {
		var buf bytes.Buffer
		zw := pageGzip.Get().(*gzip.Writer)
		zw.Reset(&buf)
		zw.Write(body)
		zw.Close()
		pageGzip.Put(zw)
		h.Set("Content-Encoding", "gzip")
		body = buf.Bytes()
	}
	writeBody(w, r, body)
}
