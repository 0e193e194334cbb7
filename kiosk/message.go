package kiosk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"

	"github.com/consent-kiosk/kiosk/tally"
)

// Message types on the websocket, phone → kiosk and kiosk → phone.
const (
	msgHello = "hello"
	msgSlip  = "slip"
	msgLeave = "leave"
	// msgSealed wraps any phone message, and the kiosk's answer to it, in a
	// box only the two ends can open (see package seal).
	msgSealed = "sealed"

	msgAck    = "ack"
	msgTally  = "tally"
	msgRound  = "round"
	msgSeries = "series"
	msgError  = "error"
	msgSeal   = "seal" // the kiosk's first message: key and challenge
)

// deviceSecretPattern: at least 128 bits written as base64url or hex
// (22 characters of base64url carry 132 bits), and nothing that could smuggle
// markup or control characters into anything.
var deviceSecretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22,128}$`)

// maxJoinTokenLen is far above a real token's 22 characters, and keeps a
// hostile hello from making the kiosk hash megabytes.
const maxJoinTokenLen = 256

// phoneMessage is a message from a phone after decoding and validation: a
// value of this type is always one the kiosk can act on.
type phoneMessage struct {
	Type   string
	Join   string       // hello: the token from the QR code; may be empty
	Device string       // hello: the phone's secret
	Choice tally.Choice // slip
	Round  int64        // slip: the round the phone was shown; 0 if not given
	// Seen (hello over HTTP only) makes the request a long-poll: it is
	// answered once the tally's version differs from Seen.
	Seen    uint64
	HasSeen bool
}

// decodePhoneMessage parses and validates one text frame from a phone. Any
// error wraps errBadMessage and says what is wrong.
func decodePhoneMessage(data []byte) (phoneMessage, error) {
	return decodeMessage(data, false)
}

// decodePhoneRequest parses and validates the body of POST /api/phone: the
// same messages, except that every one carries the device secret (HTTP has
// no connection to remember it) and hello may carry "seen".
func decodePhoneRequest(data []byte) (phoneMessage, error) {
	return decodeMessage(data, true)
}

func decodeMessage(data []byte, overHTTP bool) (phoneMessage, error) {
	var raw struct {
		Type   string  `json:"type"`
		Join   *string `json:"join"`
		Device *string `json:"device"`
		Choice *string `json:"choice"`
		Round  *int64  `json:"round"`
		Seen   *uint64 `json:"seen"`
	}
	if err := decodeStrict(bytes.NewReader(data), &raw); err != nil {
		return phoneMessage{}, err
	}
	m := phoneMessage{Type: raw.Type}
	// Over the websocket only hello names the device; over HTTP every
	// message does.
	if raw.Type == msgHello || overHTTP {
		if raw.Device == nil || !deviceSecretPattern.MatchString(*raw.Device) {
			return m, fmt.Errorf("%w: device must be 22 to 128 characters from A-Z a-z 0-9 _ -", errBadMessage)
		}
		m.Device = *raw.Device
	} else if raw.Device != nil {
		return m, fmt.Errorf("%w: json: unknown field \"device\"", errBadMessage)
	}
	if raw.Seen != nil {
		if !overHTTP || raw.Type != msgHello {
			return m, fmt.Errorf("%w: json: unknown field \"seen\"", errBadMessage)
		}
		m.Seen, m.HasSeen = *raw.Seen, true
	}
	switch raw.Type {
	case msgHello:
		if raw.Join != nil {
			if len(*raw.Join) > maxJoinTokenLen {
				return m, fmt.Errorf("%w: join token too long", errBadMessage)
			}
			m.Join = *raw.Join
		}
	case msgSlip:
		if raw.Choice == nil {
			return m, fmt.Errorf("%w: slip needs a choice", errBadMessage)
		}
		c, err := tally.ParseChoice(*raw.Choice)
		if err != nil {
			return m, fmt.Errorf("%w: choice must be \"consent\" or \"refuse\" (or \"none\" to withdraw the slip)", errBadMessage)
		}
		m.Choice = c
		if raw.Round != nil {
			if *raw.Round < 1 {
				return m, fmt.Errorf("%w: round must be a positive integer", errBadMessage)
			}
			m.Round = *raw.Round
		}
	case msgLeave:
	default:
		return m, fmt.Errorf("%w: unknown type %q", errBadMessage, raw.Type)
	}
	return m, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data, so that a typo is an error and not a silent
// no-op. Errors wrap errBadMessage.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return fmt.Errorf("%w: %s", errBadMessage, describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON value", errBadMessage)
	}
	return nil
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q has the wrong type", typeErr.Field)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return err.Error() // e.g. `json: unknown field "x"`: safe to show
}
