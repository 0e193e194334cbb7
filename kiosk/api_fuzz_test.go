package kiosk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consent-kiosk/kiosk/tally"
)

// FuzzLecturerBodies posts arbitrary bodies to the lecturer's endpoints
// that take JSON. Nothing may panic or fail inside (5xx); a body that is
// refused changes nothing; one that is taken leaves the state it asked for.
func FuzzLecturerBodies(f *testing.F) {
	store, err := tally.Open(context.Background(), filepath.Join(f.TempDir(), "kiosk.db"), tally.Options{})
	if err != nil {
		f.Fatal(err)
	}
	srv := New(Config{Store: store, AdminToken: testToken, PublicURL: "http://kiosk.test"})
	f.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	h := srv.Handler()
	for _, seed := range []struct {
		round bool
		body  string
	}{
		{false, `{"headcount":3}`},
		{false, `{"headcount":0}`},
		{false, `{"headcount":1e400}`},
		{false, `{"headcount":3}{"headcount":4}`},
		{false, `{"headcount":3,"x":1}`},
		{false, `[3]`},
		{false, ``},
		{true, `{"purpose":"Lecture video","notice":"Voice and slides."}`},
		{true, `{"purpose":"   "}`},
		{true, `{"purpose":"\ud800"}`},
		{true, `{"purpose":"x","notice":null}`},
		{true, `{"purpose":"ok","color":"red"}`},
	} {
		f.Add(seed.round, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, round bool, body []byte) {
		path := "/api/headcount"
		if round {
			path = "/api/round"
		}
		before := store.State()
		req := httptest.NewRequest("POST", path, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after := store.State()
		switch {
		case rec.Code >= 500:
			t.Fatalf("POST %s %q = %d %s; want 200 or 4xx", path, body, rec.Code, rec.Body)
		case rec.Code != http.StatusOK && after != before:
			t.Fatalf("POST %s %q = %d but the state changed: %+v -> %+v", path, body, rec.Code, before, after)
		case rec.Code == http.StatusOK && !round && (after.Headcount < tally.MinHeadcount || after.Headcount > tally.MaxHeadcount):
			t.Fatalf("POST %s %q took headcount %d", path, body, after.Headcount)
		case rec.Code == http.StatusOK && round && strings.TrimSpace(after.Round.Purpose) == "":
			t.Fatalf("POST %s %q started a round without a purpose", path, body)
		}
	})
}
