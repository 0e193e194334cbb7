package kiosk

import (
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/consent-kiosk/kiosk/static"
)

// TestStaticServing: assets go compressed to a browser that takes gzip,
// as they are to one that does not; a versioned link is cached for good,
// any other revalidates, and a held version is a 304; no listings.
func TestStaticServing(t *testing.T) {
	k := newTestKiosk(t)
	get := func(path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", k.http.URL+path, nil)
		for h, v := range hdr {
			req.Header.Set(h, v)
		}
		// The transport would ask for gzip and undo it by itself; ask
		// explicitly so that the answer is seen as sent.
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	want, _ := static.Files.ReadFile("phone.js")

	zr := get("/static/phone.js", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if zr.Header.Get("Content-Encoding") != "gzip" || zr.Header.Get("Cache-Control") != "no-cache" || zr.Header.Get("ETag") == "" {
		t.Fatalf("GET /static/phone.js with gzip: %v; want gzip, no-cache and an ETag", zr.Header)
	}
	gz, err := gzip.NewReader(zr.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(gz)
	if string(got) != string(want) {
		t.Error("the gzipped phone.js does not unpack to phone.js")
	}
	plain := get("/static/phone.js", nil)
	if b, _ := io.ReadAll(plain.Body); plain.Header.Get("Content-Encoding") != "" || string(b) != string(want) {
		t.Error("without Accept-Encoding, phone.js is not served as it is")
	}
	if r := get("/static/phone.js", map[string]string{"If-None-Match": zr.Header.Get("ETag")}); r.StatusCode != http.StatusNotModified {
		t.Errorf("a held ETag = %d; want 304", r.StatusCode)
	}

	page := get("/j/x", map[string]string{"Accept-Encoding": "gzip"})
	if page.Header.Get("Content-Encoding") != "gzip" || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the phone page: %v; want gzip and no-store", page.Header)
	}
	gz, _ = gzip.NewReader(page.Body)
	html, _ := io.ReadAll(gz)
	m := regexp.MustCompile(`/static/phone\.js\?v=([0-9a-f]+)`).FindStringSubmatch(string(html))
	if m == nil {
		t.Fatalf("the phone page links no versioned phone.js")
	}
	if r := get("/static/phone.js?v="+m[1], nil); !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("versioned phone.js: Cache-Control %q; want immutable", r.Header.Get("Cache-Control"))
	}
	if r := get("/static/phone.js?v=stale", nil); r.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("phone.js of another version: Cache-Control %q; want no-cache", r.Header.Get("Cache-Control"))
	}
	for _, p := range []string{"/static/", "/static/i18n/", "/static/phone.html", "/static/nope.js"} {
		if r := get(p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", p, r.StatusCode)
		}
	}
}
