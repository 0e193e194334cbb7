package kiosk

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// lecturerCookie holds a value derived from the lecturer token, so that the
// cookie jar never holds the token itself.
const lecturerCookie = "kiosk_lecturer"

// lecturerAuth checks the lecturer token given as a bearer token or carried
// by the cookie set at the printed lecturer URL.
type lecturerAuth struct {
	tokenHash   [32]byte
	cookieValue string
}

func newLecturerAuth(token string) lecturerAuth {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("lecturer-cookie"))
	return lecturerAuth{tokenHash: sha256.Sum256([]byte(token)), cookieValue: hex.EncodeToString(m.Sum(nil))}
}

// tokenOK compares in constant time; hashing first hides the token's length.
func (a lecturerAuth) tokenOK(token string) bool {
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1
}

func (a lecturerAuth) authorized(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		return ok && a.tokenOK(strings.TrimSpace(token))
	}
	c, err := r.Cookie(lecturerCookie)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.cookieValue)) == 1
}

// sameOrigin reports whether a browser request comes from one of the
// kiosk's own pages. Requests without an Origin header (curl, recorders)
// carry no ambient credentials worth forging, so they pass; a bearer token
// is still required of them.
func sameOrigin(r *http.Request, publicHost string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || (publicHost != "" && strings.EqualFold(u.Host, publicHost))
}
