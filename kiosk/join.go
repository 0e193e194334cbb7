package kiosk

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
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

	// codeAlphabet is what typed join codes are written in: digits and
	// capitals without any pair that looks alike from the back of a hall
	// or in a projector's blur (0/O, 1/I/L, U/V, 8/B, 5/S, 2/Z, 6/G), so a
	// code is typed right the first time.
	codeAlphabet = "3479ACDEFHJKMNPQRTWXY"
	// codeLen: 21^6 is about 86 million codes, two of which are valid at
	// a time; with typed codes limited to codeRate tries a second for the
	// whole kiosk, guessing one within its minute is about one in 36,000,
	// and gains a guesser no more than a seat in the room: the phone is
	// still counted against the headcount.
	codeLen = 6
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
	// One spelling per token: Strict refuses stray padding bits, and the
	// comparison refuses the line breaks every base64 decoder skips.
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != 4+joinMACLen || base64.RawURLEncoding.EncodeToString(b) != token {
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

// code returns the typed join code for period p: codeLen characters from
// codeAlphabet, derived from an HMAC separate from the token's, so the code
// shown on the projector reveals nothing about the token.
func (j joinTokens) code(p uint32) string {
	m := hmac.New(sha256.New, j.key)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], p)
	m.Write([]byte("code\x00"))
	m.Write(b[:])
	n := binary.BigEndian.Uint64(m.Sum(nil)) // 2^64 ≫ 21^6: the bias is nil
	var c [codeLen]byte
	for i := range c {
		c[i] = codeAlphabet[n%uint64(len(codeAlphabet))]
		n /= uint64(len(codeAlphabet))
	}
	return string(c[:])
}

// currentCode returns the typed code shown now, which rotates with the QR
// code and is accepted exactly as long as the token issued with it.
func (j joinTokens) currentCode() string {
	return j.code(j.period(j.now()))
}

// normalizeCode turns what a person typed into a code's canonical form:
// capitals, without the spaces or dashes used to group it.
func normalizeCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\u00a0':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// verifyCode returns the join token issued with a typed code, so a phone
// that typed it joins exactly as if it had scanned the QR code of the same
// period. It returns errJoinExpired for the code of one of the two periods
// before those still valid, and errJoinInvalid for anything else. Every
// candidate is compared, in constant time, whatever matches.
func (j joinTokens) verifyCode(typed string) (string, error) {
	typed = normalizeCode(typed)
	if len(typed) != codeLen {
		return "", errJoinInvalid
	}
	now := j.period(j.now())
	valid := uint32(joinValidFor / joinPeriod)
	var match, matchPeriod, expired int
	for age := uint32(0); age < 2*valid; age++ {
		p := now - age
		eq := subtle.ConstantTimeCompare([]byte(typed), []byte(j.code(p)))
		if age < valid {
			matchPeriod = subtle.ConstantTimeSelect(eq&(1-match), int(p), matchPeriod)
			match |= eq
		} else {
			expired |= eq
		}
	}
	switch {
	case match == 1:
		return j.sign(uint32(matchPeriod)), nil
	case expired == 1:
		return "", errJoinExpired
	}
	return "", errJoinInvalid
}
