package kiosk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// A sealed frame lets a phone hide its message from anyone else who can
// capture the room's Wi-Fi traffic, on a plain http:// origin where the page
// cannot use WebCrypto. static/seal.js builds it; Sealer opens it:
//
//	shared = X25519(ephemeral secret, kiosk public)
//	key    = HChaCha20(shared, 16 zero bytes)
//	box    = ChaCha20-Poly1305(key, nonce, message padded to SealedPlaintextLen
//	                           with spaces, AAD = epk || kiosk public)
//
// The wire form is {"type":"sealed","epk":"…","nonce":"…","box":"…"} with
// each value base64url without padding.

// SealedPlaintextLen is the length every sealed message is padded to, so that
// a consent and a refusal make frames of the same length on the wire.
const SealedPlaintextLen = 96

// sealedBoxLen is the only box length accepted: padded message plus tag.
const sealedBoxLen = SealedPlaintextLen + chacha20poly1305.Overhead

// ErrSealBroken is wrapped by every failure to parse or open a sealed frame.
// It never says why a box did not open, since that would help someone probe
// the key; callers refuse the frame and change nothing.
var ErrSealBroken = errors.New("sealed message does not open")

// A Sealer holds the kiosk's X25519 key pair for sealed frames. It is safe
// for concurrent use: it is never modified after NewSealer.
type Sealer struct {
	secret [curve25519.ScalarSize]byte
	public [curve25519.PointSize]byte
}

// NewSealer makes a Sealer whose X25519 secret is seed. The seed must be 32
// uniformly random bytes kept secret (the kiosk derives it from its
// persistent key so the public key in a phone's open page survives a
// restart). NewSealer panics on any other length, a programming error.
func NewSealer(seed []byte) *Sealer {
	if len(seed) != curve25519.ScalarSize {
		panic(fmt.Sprintf("kiosk: NewSealer seed is %d bytes; want %d", len(seed), curve25519.ScalarSize))
	}
	s := new(Sealer)
	copy(s.secret[:], seed)
	pub, err := curve25519.X25519(s.secret[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order point can give an all-zero result, and the
		// base point is not one.
		panic("kiosk: X25519 with the base point failed: " + err.Error())
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

// Open authenticates and decrypts one sealed message and returns the
// message with its padding removed. Every failure wraps ErrSealBroken.
func (s *Sealer) Open(epk, nonce, box []byte) ([]byte, error) {
	if len(epk) != curve25519.PointSize || len(nonce) != chacha20poly1305.NonceSize || len(box) != sealedBoxLen {
		return nil, fmt.Errorf("%w: bad field length", ErrSealBroken)
	}
	shared, err := curve25519.X25519(s.secret[:], epk)
	if err != nil {
		// An all-zero secret means a low-order epk: the key would be
		// known to everyone, so nothing sealed with it is private.
		return nil, fmt.Errorf("%w: low-order ephemeral key", ErrSealBroken)
	}
	key, err := chacha20.HChaCha20(shared, make([]byte, 16))
	clear(shared)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealBroken, err)
	}
	aead, err := chacha20poly1305.New(key)
	clear(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealBroken, err)
	}
	aad := make([]byte, 0, 2*curve25519.PointSize)
	aad = append(append(aad, epk...), s.public[:]...)
	msg, err := aead.Open(nil, nonce, box, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrSealBroken)
	}
	return bytes.TrimRight(msg, " "), nil
}

// sealedFrame is the wire form of a sealed message.
type sealedFrame struct {
	Type  string `json:"type"`
	EPK   string `json:"epk"`
	Nonce string `json:"nonce"`
	Box   string `json:"box"`
}

// maxSealedFrame bounds the frame before any JSON work. A valid frame is 255
// bytes; the slack allows for whitespace a client may add.
const maxSealedFrame = 1024

// ParseSealed decodes a {"type":"sealed",...} frame into its three byte
// fields. It is strict: unknown fields, trailing data, a wrong type or
// padded or non-canonical base64url are refused with ErrSealBroken.
func ParseSealed(frame []byte) (epk, nonce, box []byte, err error) {
	if len(frame) > maxSealedFrame {
		return nil, nil, nil, fmt.Errorf("%w: frame too long", ErrSealBroken)
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.DisallowUnknownFields()
	var f sealedFrame
	if err := dec.Decode(&f); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSealBroken, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, nil, fmt.Errorf("%w: trailing data", ErrSealBroken)
	}
	if f.Type != "sealed" {
		return nil, nil, nil, fmt.Errorf("%w: type %q", ErrSealBroken, f.Type)
	}
	b64 := base64.RawURLEncoding.Strict()
	if epk, err = b64.DecodeString(f.EPK); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: epk: %v", ErrSealBroken, err)
	}
	if nonce, err = b64.DecodeString(f.Nonce); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: nonce: %v", ErrSealBroken, err)
	}
	if box, err = b64.DecodeString(f.Box); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: box: %v", ErrSealBroken, err)
	}
	return epk, nonce, box, nil
}

// OpenFrame parses and opens a sealed frame and returns the message inside,
// which the caller decodes as if it had arrived unsealed. The inner message
// cannot itself be a sealed frame: a sealed frame is longer than
// SealedPlaintextLen.
func (s *Sealer) OpenFrame(frame []byte) ([]byte, error) {
	epk, nonce, box, err := ParseSealed(frame)
	if err != nil {
		return nil, err
	}
	return s.Open(epk, nonce, box)
}
