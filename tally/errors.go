package tally

import "errors"

// The store's errors. Callers test for them with errors.Is; the kiosk maps
// each to an HTTP status and a websocket error code in one place.
var (
	// ErrInvalid: the request is malformed or out of range; nothing changed.
	ErrInvalid = errors.New("invalid request")
	// ErrClosed: the session is closed; nothing changed.
	ErrClosed = errors.New("session closed")
	// ErrUnknownPhone: the phone has not joined this session (or has left);
	// it needs a fresh join token.
	ErrUnknownPhone = errors.New("phone has not joined this session")
	// ErrStaleRound: the slip was given for a round that is no longer
	// current, so it would count for a purpose the phone was not shown (R3).
	ErrStaleRound = errors.New("slip is for an earlier round")
	// ErrStorage: the change (a phone's first slip, or a lecturer's
	// change) could not be made durable; nothing changed and the kiosk is
	// locked until storage works again.
	ErrStorage = errors.New("storage failure")
	// ErrStopped: the store is shutting down.
	ErrStopped = errors.New("store stopped")
)

// Errors of the record and of series.
var (
	// ErrSeriesMismatch: the series exists with another purpose or notice; a
	// series consent covers only the same purpose and notice (R5). Nothing
	// changed.
	ErrSeriesMismatch = errors.New("series has another purpose or notice")
	// ErrNotFound: no such round or series.
	ErrNotFound = errors.New("not found")
)
