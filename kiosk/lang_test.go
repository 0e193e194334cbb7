package kiosk

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/consent-kiosk/kiosk/static"
)

// loadCatalogues reads every static/i18n/*.json as the pages get them.
func loadCatalogues(t *testing.T) map[string]map[string]string {
	t.Helper()
	files, err := fs.Glob(static.Files, "i18n/*.json")
	if err != nil {
		t.Fatal(err)
	}
	cats := map[string]map[string]string{}
	for _, f := range files {
		b, err := static.Files.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]string
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v (a catalogue is one JSON object of strings)", f, err)
		}
		cats[strings.TrimSuffix(path.Base(f), ".json")] = c
	}
	return cats
}

var (
	// pageKeyPattern finds catalogue keys in the pages: data-i18n="key" and
	// data-i18n-ATTRIBUTE="key".
	pageKeyPattern = regexp.MustCompile(`data-i18n(?:-[a-z-]+)?="([^"]*)"`)
	// scriptKeyPattern finds every string literal in the scripts that looks
	// like a key. The scripts never build keys from pieces (they use tables
	// of whole keys instead), so this finds every key they can show.
	scriptKeyPattern = regexp.MustCompile(`'((?:common|phone|proj|join|con)\.[A-Za-z0-9_.-]+)'`)
	placeholder      = regexp.MustCompile(`\{\w+\}`)
)

// TestCatalogues fails on a key that one catalogue has and another lacks,
// on an empty string, on placeholders that differ between languages, and
// on any key a page or script uses that is missing from the catalogues.
func TestCatalogues(t *testing.T) {
	cats := loadCatalogues(t)
	var langs []string
	for l := range cats {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	want := slices.Clone(languages)
	sort.Strings(want)
	if !slices.Equal(langs, want) {
		t.Errorf("catalogues in static/i18n = %v; want %v (the languages the kiosk offers)", langs, want)
	}
	en := cats["en"]
	if len(en) == 0 {
		t.Fatal("static/i18n/en.json is missing or empty")
	}
	for _, l := range langs {
		for key := range en {
			if _, ok := cats[l][key]; !ok {
				t.Errorf("%s.json lacks %q (en.json has it)", l, key)
			}
		}
		for key, s := range cats[l] {
			if _, ok := en[key]; !ok {
				t.Errorf("%s.json has %q, which en.json lacks", l, key)
			}
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s.json: %q is empty", l, key)
			}
			got, want := placeholders(s), placeholders(en[key])
			if _, ok := en[key]; ok && !slices.Equal(got, want) {
				t.Errorf("%s.json: %q has placeholders %v; want %v as in en.json", l, key, got, want)
			}
		}
	}

	used := map[string][]string{} // key → files using it
	for _, pattern := range []string{"*.html", "*.js"} {
		files, _ := fs.Glob(static.Files, pattern)
		for _, f := range files {
			b, _ := static.Files.ReadFile(f)
			re := pageKeyPattern
			if strings.HasSuffix(f, ".js") {
				re = scriptKeyPattern
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = append(used[m[1]], f)
			}
		}
	}
	if len(used) < 20 {
		t.Errorf("found only %d keys in the pages and scripts; the patterns have stopped matching", len(used))
	}
	for key, files := range used {
		for _, l := range langs {
			if _, ok := cats[l][key]; !ok {
				t.Errorf("%s uses %q, which %s.json lacks", strings.Join(slices.Compact(files), ", "), key, l)
			}
		}
	}
}

func placeholders(s string) []string {
	p := placeholder.FindAllString(s, -1)
	sort.Strings(p)
	return p
}

func TestPageLang(t *testing.T) {
	tests := []struct {
		name, query, cookie, accept string
		want                        string
	}{
		{"nothing asked", "", "", "", "en"},
		{"English", "", "", "en-US,en;q=0.9", "en"},
		{"bokmål", "", "", "nb-NO,nb;q=0.9,en;q=0.8", "nb"},
		{"Norwegian without a written form", "", "", "no", "nb"},
		{"Norwegian with a region", "", "", "no-NO,en;q=0.5", "nb"},
		{"nynorsk", "", "", "nn-NO,nn;q=0.9", "nn"},
		{"nynorsk first, bokmål second", "", "", "nn,nb;q=0.8", "nn"},
		{"Swedish", "", "", "sv-SE,sv;q=0.9,en;q=0.5", "sv"},
		{"Finland Swedish", "", "", "sv-FI", "sv"},
		{"Danish reads bokmål", "", "", "da-DK", "nb"},
		{"unsupported falls back", "", "", "de-DE,fr;q=0.9", "en"},
		{"unsupported, then Swedish", "", "", "de-DE,sv;q=0.5", "sv"},
		{"garbage header", "", "", ";;;q=x,", "en"},
		{"cookie beats header", "", "nn", "sv", "nn"},
		{"bad cookie ignored", "", "xx", "sv", "sv"},
		{"query beats cookie", "sv", "nn", "nb", "sv"},
		{"query no means bokmål", "no", "", "", "nb"},
		{"query upper case", "NN", "", "", "nn"},
		{"bad query ignored", "klingon", "", "nb", "nb"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/?lang="+tt.query, nil)
		if tt.query == "" {
			r = httptest.NewRequest("GET", "/", nil)
		}
		if tt.cookie != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: tt.cookie})
		}
		if tt.accept != "" {
			r.Header.Set("Accept-Language", tt.accept)
		}
		if got := pageLang(r); got != tt.want {
			t.Errorf("%s: pageLang(lang=%q cookie=%q Accept-Language=%q) = %q; want %q", tt.name, tt.query, tt.cookie, tt.accept, got, tt.want)
		}
	}
}

// TestPagesServedInLanguage checks that every page arrives with <html
// lang> already right, so a screen reader picks the right voice at once.
func TestPagesServedInLanguage(t *testing.T) {
	k := newTestKiosk(t)
	for _, p := range []string{"/", "/j/sometoken", "/k"} {
		for _, tt := range []struct{ accept, query, want string }{
			{"nb-NO", "", "nb"},
			{"no", "", "nb"},
			{"nn", "", "nn"},
			{"sv-SE", "", "sv"},
			{"fr", "", "en"},
			{"nb", "?lang=sv", "sv"},
		} {
			req, _ := http.NewRequest("GET", k.http.URL+p+tt.query, nil)
			req.Header.Set("Accept-Language", tt.accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			buf := make([]byte, 512)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			resp.Body.Close()
			if want := `<html lang="` + tt.want + `"`; !strings.Contains(b.String(), want) {
				t.Errorf("GET %s%s with Accept-Language %s: page starts %.80q; want %s", p, tt.query, tt.accept, b.String(), want)
			}
			if got := resp.Header.Get("Content-Language"); got != tt.want {
				t.Errorf("GET %s%s with Accept-Language %s: Content-Language %q; want %q", p, tt.query, tt.accept, got, tt.want)
			}
			if tt.query != "" && !strings.Contains(resp.Header.Get("Set-Cookie"), langCookie+"="+tt.want) {
				t.Errorf("GET %s%s: Set-Cookie %q; want the choice remembered", p, tt.query, resp.Header.Get("Set-Cookie"))
			}
		}
	}
}
