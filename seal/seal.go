// Package seal hides a phone's message from anyone else who can capture the
// room's Wi-Fi traffic, on a plain http:// origin where the page cannot use
// WebCrypto. static/seal.js seals on the phone; a Sealer opens on the kiosk
// and seals the answer back. Request is the phone's side in Go, for tests and
// the load harness.
package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The construction:
//
//	shared = X25519(ephemeral secret, kiosk public)
//	key    = HChaCha20(shared, 16 zero bytes)
//	reply  = HChaCha20(shared, "kiosk-seal-reply")
//	ctx    = the connection's 16-byte challenge || seq as 4 bytes big-endian
//	aad    = epk || kiosk public || ctx
//	box    = ChaCha20-Poly1305(key, nonce, message padded with spaces to
//	                           one of Lengths, aad)
//	answer = ChaCha20-Poly1305(reply, fresh nonce, answer padded to
//	                           ReplyLen, aad)
//
// The challenge is random per connection and seq must rise on it, so a frame
// captured on one connection opens on no other, nor twice on its own. The
// phone → kiosk wire form is
// {"type":"sealed","seq":N,"epk":"…","nonce":"…","box":"…"} and the answer
// {"type":"sealed","seq":N,"nonce":"…","box":"…"}, each byte string
// base64url without padding.

// Lengths are the lengths a sealed message is padded to: slips and
// leaves fit the first, so that a consent, a refusal and a withdrawal make
// frames of one length on the wire; a hello, with its device secret, needs
// the second.
var Lengths = [...]int{96, 256}

// SlipLen is the length slips are padded to.
const SlipLen = 96

// ReplyLen is the length every sealed answer is padded to, whatever
// it says: an ack of a consent, of a refusal, or an error.
const ReplyLen = 256

// ChallengeLen is the length of a connection's challenge.
const ChallengeLen = 16

// replyInfo is the HChaCha20 input that derives the answer's key; any 16
// bytes other than the request's zeros would do.
var replyInfo = []byte("kiosk-seal-reply")

// ErrBroken is wrapped by every failure to parse or open a sealed frame.
// It never says why a box did not open, since that would help someone probe
// the key; callers refuse the frame and change nothing.
var ErrBroken = errors.New("sealed message does not open")

// A Sealer holds the kiosk's X25519 key pair for sealed frames. It is safe
// for concurrent use: it is never modified after NewSealer.
type Sealer struct {
	secret [curve25519.ScalarSize]byte
	public [curve25519.PointSize]byte
}

// NewSealer makes a Sealer whose X25519 secret is seed. The seed must be 32
// uniformly random bytes kept secret and never stored (the kiosk draws a new
// one at each start). NewSealer panics on any other length, a programming
// error.
func NewSealer(seed []byte) *Sealer {
	if len(seed) != curve25519.ScalarSize {
		panic(fmt.Sprintf("seal: NewSealer seed is %d bytes; want %d", len(seed), curve25519.ScalarSize))
	}
	s := new(Sealer)
	copy(s.secret[:], seed)
	pub, err := curve25519.X25519(s.secret[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order point can give an all-zero result, and the
		// base point is not one.
		panic("seal: X25519 with the base point failed: " + err.Error())
	}
	copy(s.public[:], pub)
	return s
}

// PublicKey returns a copy of the kiosk's 32-byte X25519 public key, which
// the phone page needs to seal.
func (s *Sealer) PublicKey() []byte {
	return bytes.Clone(s.public[:])
}

// PublicKeyString returns PublicKey as base64url without padding, the form
// seal.js accepts.
func (s *Sealer) PublicKeyString() string {
	return base64.RawURLEncoding.EncodeToString(s.public[:])
}

// Context is the per-message context bound into a sealed frame's AAD:
// the connection's challenge and the frame's sequence number.
func Context(challenge []byte, seq uint32) []byte {
	ctx := make([]byte, 0, len(challenge)+4)
	ctx = append(ctx, challenge...)
	return binary.BigEndian.AppendUint32(ctx, seq)
}

// An Opened is a sealed message after opening: the message, and what is
// needed to seal the answer to it.
type Opened struct {
	Msg   []byte
	Seq   uint32
	reply []byte // the answer's key, derived for this one message
	aad   []byte
}

// Open authenticates and decrypts one sealed message bound to ctx (see
// Context) and returns it with its padding removed. Every failure wraps
// ErrBroken.
func (s *Sealer) Open(epk, nonce, box, ctx []byte) (Opened, error) {
	if len(epk) != curve25519.PointSize || len(nonce) != chacha20poly1305.NonceSize || !boxLenOK(len(box)) {
		return Opened{}, fmt.Errorf("%w: bad field length", ErrBroken)
	}
	shared, err := curve25519.X25519(s.secret[:], epk)
	if err != nil {
		// An all-zero secret means a low-order epk: the key would be
		// known to everyone, so nothing sealed with it is private.
		return Opened{}, fmt.Errorf("%w: low-order ephemeral key", ErrBroken)
	}
	defer clear(shared)
	key, err := chacha20.HChaCha20(shared, make([]byte, 16))
	if err != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	aead, err := chacha20poly1305.New(key)
	clear(key)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	aad := make([]byte, 0, 2*curve25519.PointSize+len(ctx))
	aad = append(append(append(aad, epk...), s.public[:]...), ctx...)
	msg, err := aead.Open(nil, nonce, box, aad)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: authentication failed", ErrBroken)
	}
	reply, err := chacha20.HChaCha20(shared, replyInfo)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	return Opened{Msg: bytes.TrimRight(msg, " "), reply: reply, aad: aad}, nil
}

func boxLenOK(n int) bool {
	for _, l := range Lengths {
		if n == l+chacha20poly1305.Overhead {
			return true
		}
	}
	return false
}

// SealReply seals an answer to o and returns the frame's text. An answer
// longer than ReplyLen is a programming error and is refused.
func (o Opened) SealReply(msg []byte) ([]byte, error) {
	if len(msg) > ReplyLen {
		return nil, fmt.Errorf("seal: sealed answer of %d bytes; at most %d fit", len(msg), ReplyLen)
	}
	if len(o.reply) == 0 {
		return nil, errors.New("seal: SealReply on a message that was not opened")
	}
	aead, err := chacha20poly1305.New(o.reply)
	if err != nil {
		return nil, err
	}
	padded := bytes.Repeat([]byte(" "), ReplyLen)
	copy(padded, msg)
	// A fresh random nonce, so that the rare second answer under one key
	// (an error, then an ack) never reuses a nonce.
	nonce := make([]byte, chacha20poly1305.NonceSize)
	rand.Read(nonce)
	box := aead.Seal(nil, nonce, padded, o.aad)
	b64 := base64.RawURLEncoding.EncodeToString
	return fmt.Appendf(nil, `{"type":"sealed","seq":%d,"nonce":"%s","box":"%s"}`, o.Seq, b64(nonce), b64(box)), nil
}

// wireFrame is the wire form of a sealed message.
type wireFrame struct {
	Type  string  `json:"type"`
	Seq   *uint32 `json:"seq"`
	EPK   string  `json:"epk"`
	Nonce string  `json:"nonce"`
	Box   string  `json:"box"`
}

// sessionFrame is wireFrame on a transport that has no connection to hold
// the challenge, so that each frame names the seal session it belongs to.
type sessionFrame struct {
	wireFrame
	Session string `json:"session"`
}

// MaxFrame bounds a frame before any JSON work. A sealed hello is
// about 480 bytes; the slack allows for whitespace a client may add.
const MaxFrame = 1024

// ErrNoSession is ParseSessionFrame's answer to a frame that names no seal
// session. It does not wrap ErrBroken: the frame may be whole, and the
// phone is best told to open a session rather than that its box is broken.
var ErrNoSession = errors.New("sealed message names no seal session")

// A Frame is a sealed message parsed from its wire form, not yet opened.
type Frame struct {
	Seq uint32
	// Session is the seal session the frame names; always "" from
	// ParseFrame.
	Session         string
	EPK, Nonce, Box []byte
}

// ParseFrame decodes a {"type":"sealed",...} frame from a websocket, which
// holds the challenge itself: a frame that names a session is refused like
// any other unknown field. It is strict: unknown fields, trailing data, a
// wrong type, a missing seq, or padded or non-canonical base64url are
// refused with ErrBroken.
func ParseFrame(frame []byte) (Frame, error) {
	return parseFrame(frame, false)
}

// ParseSessionFrame is ParseFrame for a frame that names its seal session,
// {"type":"sealed","session":"…",...}, as the HTTP fallback's do. A frame
// that is well formed but names none is ErrNoSession; the check comes
// before the byte fields are decoded, so that such a frame is never
// answered as broken.
func ParseSessionFrame(frame []byte) (Frame, error) {
	return parseFrame(frame, true)
}

func parseFrame(frame []byte, withSession bool) (Frame, error) {
	fail := func(format string, a ...any) (Frame, error) {
		return Frame{}, fmt.Errorf("%w: "+format, append([]any{ErrBroken}, a...)...)
	}
	if len(frame) > MaxFrame {
		return fail("frame too long")
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.DisallowUnknownFields()
	var f sessionFrame
	var into any = &f.wireFrame
	if withSession {
		into = &f
	}
	if err := dec.Decode(into); err != nil {
		return fail("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("trailing data")
	}
	if f.Type != "sealed" {
		return fail("type %q", f.Type)
	}
	if f.Seq == nil {
		return fail("no seq")
	}
	if withSession && f.Session == "" {
		return Frame{}, ErrNoSession
	}
	epk, nonce, box, err := decodeFields(f.EPK, f.Nonce, f.Box)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Seq: *f.Seq, Session: f.Session, EPK: epk, Nonce: nonce, Box: box}, nil
}

// decodeFields decodes a sealed frame's three byte strings, base64url
// without padding.
func decodeFields(epk, nonce, box string) (e, n, b []byte, err error) {
	b64 := base64.RawURLEncoding.Strict()
	if e, err = b64.DecodeString(epk); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: epk: %v", ErrBroken, err)
	}
	if n, err = b64.DecodeString(nonce); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: nonce: %v", ErrBroken, err)
	}
	if b, err = b64.DecodeString(box); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: box: %v", ErrBroken, err)
	}
	return e, n, b, nil
}

// OpenFrame parses and opens a sealed websocket frame sent on the
// connection whose challenge is given, and returns the message inside,
// which the caller decodes as if it had arrived unsealed. The caller must
// also check that Seq rose since the connection's last sealed frame;
// OpenFrame has no memory. The inner message cannot itself be a sealed
// frame: a sealed frame is longer than the largest padded length.
func (s *Sealer) OpenFrame(frame, challenge []byte) (Opened, error) {
	f, err := ParseFrame(frame)
	if err != nil {
		return Opened{}, err
	}
	return s.OpenParsed(f, challenge)
}

// OpenParsed opens a parsed frame bound to challenge, as OpenFrame does.
func (s *Sealer) OpenParsed(f Frame, challenge []byte) (Opened, error) {
	o, err := s.Open(f.EPK, f.Nonce, f.Box, Context(challenge, f.Seq))
	if err != nil {
		return Opened{}, err
	}
	o.Seq = f.Seq
	return o, nil
}
