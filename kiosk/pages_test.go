package kiosk

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestPhonePageCarriesTheRound: the phone page of a valid join token
// carries the current round, so that its notice and buttons show before
// the connection is up; the page of a token that is not valid now carries
// none, so that a photo of an old QR code does not show the notice.
func TestPhonePageCarriesTheRound(t *testing.T) {
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video </script><b>&"}`)
	page := func(token string, gzipped bool) (string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", k.http.URL+"/j/"+token, nil)
		if gzipped {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if gzipped {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("the phone page of %q, asked with gzip: %v; want gzip", token, resp.Header)
			}
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(body)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("the phone page of %q: %d %v, %v; want 200, no-store", token, resp.StatusCode, resp.Header, err)
		}
		return string(b), resp.Header
	}
	roundIn := regexp.MustCompile(`<script id="kiosk-round" type="application/json">([^<]*)</script>`)
	valid := k.joinToken()
	for _, gzipped := range []bool{false, true} {
		html, hdr := page(valid, gzipped)
		m := roundIn.FindStringSubmatch(html)
		if m == nil {
			t.Fatalf("the phone page of a valid token (gzip %v) carries no round", gzipped)
		}
		var round struct {
			Type    string `json:"type"`
			Round   int64  `json:"round"`
			Purpose string `json:"purpose"`
		}
		if err := json.Unmarshal([]byte(m[1]), &round); err != nil || round.Type != "round" || round.Round != k.store.State().Round.ID || round.Purpose != "Lecture video </script><b>&" {
			t.Errorf("the round the page carries: %+v, %v; want the current round and its purpose", round, err)
		}
		if hdr.Get("ETag") != "" {
			t.Errorf("a page made for one request has ETag %q; want none", hdr.Get("ETag"))
		}
	}

	k.clock.Advance(time.Hour)
	for _, token := range []string{valid, "not-a-token"} {
		html, _ := page(token, true)
		if strings.Contains(html, "kiosk-round") || strings.Contains(html, "Lecture video") {
			t.Errorf("the phone page of %q, not valid now, shows the round", token)
		}
	}
}
