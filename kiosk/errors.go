package kiosk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

var (
	errUnauthorized = errors.New("lecturer token required")
	// errSignedOutAtClose is errUnauthorized while the session is closed:
	// closing it ended every lecturer sign-in, and the pages say so
	// instead of "no connection". That the session is closed is no secret:
	// every phone is told.
	errSignedOutAtClose = fmt.Errorf("%w: the session is closed", errUnauthorized)
	errForbidden        = errors.New("request from another site")
	errBadMessage       = errors.New("malformed message")
	errHelloFirst       = errors.New("say hello first")
	errRateLimited      = errors.New("too many messages")
	errOnePhone         = errors.New("connection already speaks for another phone")
	errSealRequired     = errors.New("this connection seals; a frame in clear is refused")
	errBadHost          = errors.New("not one of the kiosk's names")
	errNotRelayed       = errors.New("not a phone path")
	errFull             = errors.New("the kiosk has as many phones as it can take")
	errStreamsFull      = errors.New("the kiosk has as many event streams as it can take")
	errJoinLimit        = errors.New("as many phones have joined as the headcount allows")
)

// apiError is what a client is told about a failure: an HTTP status, a
// stable code (also used in websocket error messages) and a message safe to
// show. Internal error text never reaches a client.
type apiError struct {
	status  int
	code    string
	message string
}

// classify is the one place that maps errors to what clients see.
func classify(err error) apiError {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apiError{http.StatusRequestEntityTooLarge, "too-large", "request body over 64 KiB"}
	case errors.Is(err, tally.ErrInvalid), errors.Is(err, errBadMessage):
		return apiError{http.StatusBadRequest, "invalid", err.Error()}
	case errors.Is(err, errSignedOutAtClose):
		return apiError{http.StatusUnauthorized, "signed-out-at-close", "closing the session signed out every lecturer device; press Enter in the kiosk's terminal for a new sign-in link"}
	case errors.Is(err, errUnauthorized):
		return apiError{http.StatusUnauthorized, "unauthorized", "open a sign-in link from the kiosk's terminal (Enter prints a new one), or send Authorization: Bearer TOKEN"}
	case errors.Is(err, errForbidden):
		return apiError{http.StatusForbidden, "forbidden", "requests that change the kiosk must come from its own pages"}
	case errors.Is(err, errBadHost):
		return apiError{http.StatusMisdirectedRequest, "wrong-host", "this kiosk does not answer to that name; use the address shown in the room"}
	case errors.Is(err, errNotRelayed):
		return apiError{http.StatusNotFound, "not-found", "only the phone pages are reachable through the relay"}
	case errors.Is(err, tally.ErrClosed):
		return apiError{http.StatusConflict, "closed", "the session is closed; the lecturer can start a new round"}
	case errors.Is(err, tally.ErrSeriesMismatch):
		return apiError{http.StatusConflict, "series-mismatch", err.Error()}
	case errors.Is(err, tally.ErrNotFound):
		return apiError{http.StatusNotFound, "not-found", err.Error()}
	case errors.Is(err, tally.ErrStaleRound):
		return apiError{http.StatusConflict, "stale-round", "the purpose changed; read the new notice and choose again"}
	case errors.Is(err, tally.ErrUnknownPhone):
		return apiError{http.StatusForbidden, "join-required", "scan the QR code in the room to join"}
	case errors.Is(err, errJoinExpired):
		return apiError{http.StatusForbidden, "join-expired", "this QR code has expired; scan the one shown in the room now"}
	case errors.Is(err, errJoinInvalid):
		return apiError{http.StatusForbidden, "join-invalid", "this is not a valid join link; scan the QR code shown in the room"}
	case errors.Is(err, errJoinLimit):
		return apiError{http.StatusForbidden, "join-limit", "as many phones have joined as there are people here; ask the lecturer to check the headcount"}
	case errors.Is(err, errStreamsFull):
		return apiError{http.StatusServiceUnavailable, "full", "the kiosk has as many event streams as it can take; poll /api/unlock instead"}
	case errors.Is(err, errFull):
		return apiError{http.StatusServiceUnavailable, "full", "the kiosk has as many phones as it can take"}
	case errors.Is(err, errHelloFirst):
		return apiError{http.StatusBadRequest, "hello-first", "send hello before anything else"}
	case errors.Is(err, errSealExpired):
		return apiError{http.StatusGone, "seal-expired", "this seal session has expired; ask for a new one with {\"type\":\"seal\"}"}
	case errors.Is(err, seal.ErrBroken):
		return apiError{http.StatusBadRequest, "seal-broken", "this sealed message does not open; reload the page"}
	case errors.Is(err, errSealRequired):
		return apiError{http.StatusBadRequest, "sealed-only", "this connection seals its messages; send sealed frames"}
	case errors.Is(err, errOnePhone):
		return apiError{http.StatusBadRequest, "one-phone", "one connection speaks for one phone"}
	case errors.Is(err, errRateLimited):
		return apiError{http.StatusTooManyRequests, "rate-limited", "too many messages; wait a moment"}
	case errors.Is(err, tally.ErrStorage):
		return apiError{http.StatusServiceUnavailable, "storage", "the kiosk could not save this; it stays locked. Try again in a moment"}
	case errors.Is(err, tally.ErrStopped), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apiError{http.StatusServiceUnavailable, "unavailable", "the kiosk is shutting down"}
	}
	return apiError{http.StatusInternalServerError, "internal", "internal error"}
}

// writeError answers an HTTP request with err, logging it if it is internal.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := classify(err)
	if e.status == http.StatusInternalServerError {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiosk"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "message": e.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
