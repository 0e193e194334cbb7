package kiosk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

const (
	// joinPeriod is how often the QR code changes. A token stays valid for
	// the period it was issued in and the next one, so a photo of the QR code
	// sent out of the room stops working within a minute, while a student who
	// scanned just before a rotation still gets in.
	joinPeriod   = 30 * time.Second
	joinValidFor = 2 * joinPeriod
	// joinMACLen: 96 bits of HMAC cannot be guessed within a token's minute.
	joinMACLen = 12
)

var (
	errJoinExpired = errors.New("join token expired")
	errJoinInvalid = errors.New("join token invalid")
)

// joinTokens issues and checks the tokens in the QR code: the period number
// and an HMAC over it, so the kiosk keeps no list of tokens.
type joinTokens struct {
	key []byte
	now func() time.Time
}

func (j joinTokens) period(t time.Time) uint32 {
	return uint32(t.Unix() / int64(joinPeriod/time.Second))
}

// current returns the token to show now and when it stops being accepted.
func (j joinTokens) current() (token string, expires time.Time) {
	p := j.period(j.now())
	return j.sign(p), j.periodStart(p).Add(joinValidFor)
}

func (j joinTokens) periodStart(p uint32) time.Time {
	return time.Unix(int64(p)*int64(joinPeriod/time.Second), 0).UTC()
}

func (j joinTokens) sign(p uint32) string {
	var b [4 + joinMACLen]byte
	binary.BigEndian.PutUint32(b[:4], p)
	copy(b[4:], j.mac(p))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (j joinTokens) mac(p uint32) []byte {
	m := hmac.New(sha256.New, j.key)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], p)
	m.Write([]byte("join\x00"))
	m.Write(b[:])
	return m.Sum(nil)[:joinMACLen]
}

// verify returns nil for a token issued by this kiosk that has not expired,
// errJoinExpired for one that has, and errJoinInvalid for anything else.
func (j joinTokens) verify(token string) error {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 4+joinMACLen {
		return errJoinInvalid
	}
	p := binary.BigEndian.Uint32(b[:4])
	if !hmac.Equal(b[4:], j.mac(p)) {
		return errJoinInvalid
	}
	now := j.period(j.now())
	switch {
	case p > now:
		return errJoinInvalid // from the future: the clock moved back, or a forgery
	case now-p >= uint32(joinValidFor/joinPeriod):
		return errJoinExpired
	}
	return nil
}
