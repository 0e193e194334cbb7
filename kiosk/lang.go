package kiosk

import (
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// languages are the catalogues in static/i18n, as BCP 47 codes. The first
// is the fallback for a browser that asks for none of them.
var languages = []string{"en", "nb", "nn", "sv"}

// langMatcher picks one of languages for an Accept-Language header. CLDR's
// data behind it sends "no" (and "no-NO") to bokmål, and a Danish phone to
// bokmål too, which it reads more easily than English.
var langMatcher = language.NewMatcher([]language.Tag{
	language.English, language.MustParse("nb"), language.MustParse("nn"), language.Swedish,
})

// langCookie remembers the language a person picked with the switcher. It
// is set by the page's script and by ?lang=, and holds only a language code.
const langCookie = "kiosk_lang"

// supportedLang returns s if it names one of languages, else "".
func supportedLang(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "no" {
		s = "nb"
	}
	for _, l := range languages {
		if s == l {
			return l
		}
	}
	return ""
}

// pageLang returns the language to serve a page in: ?lang= first (a link
// from the switcher, or the projector's URL), then the switcher's cookie,
// then the browser's Accept-Language.
func pageLang(r *http.Request) string {
	if l := supportedLang(r.URL.Query().Get("lang")); l != "" {
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l := supportedLang(c.Value); l != "" {
			return l
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := langMatcher.Match(tags...)
	return languages[i]
}

// langAttr is what every page's <html> element starts with in the file;
// buildPage rewrites it, so the document has the right language before any
// script runs (screen readers pick their voice from it).
var langAttr = []byte(`<html lang="en"`)
