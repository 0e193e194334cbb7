package seal

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// A Request is one message sealed as static/seal.js seals it on a phone,
// with what the phone keeps to open the kiosk's answer. The kiosk itself
// never seals a request; tests and the load harness do, and the browser
// test checks that the page and this code make the very same bytes.
type Request struct {
	EPK, Nonce, Box []byte
	reply, aad      []byte
}

// NewRequest seals msg as frame seq of the connection whose challenge is
// given, to the kiosk whose public key is kioskPub, with a fresh ephemeral
// key and nonce, and returns the frame's text and the request.
func NewRequest(kioskPub []byte, msg string, challenge []byte, seq uint32) ([]byte, Request, error) {
	eph, nonce := make([]byte, curve25519.ScalarSize), make([]byte, chacha20poly1305.NonceSize)
	rand.Read(eph)
	rand.Read(nonce)
	r, err := SealRequest(kioskPub, msg, eph, nonce, Context(challenge, seq))
	if err != nil {
		return nil, Request{}, err
	}
	return r.Frame(seq), r, nil
}

// SealRequest is KioskSeal.sealWith in static/seal.js: it seals msg, padded
// to the first of Lengths it fits, with the given ephemeral secret and
// nonce, bound to ctx (see Context).
func SealRequest(kioskPub []byte, msg string, ephemeral, nonce, ctx []byte) (Request, error) {
	return sealBoundTo(kioskPub, kioskPub, msg, ephemeral, nonce, ctx)
}

// sealBoundTo seals to kioskPub but binds aadPub into the AAD; only a test
// forging a wrong binding passes two different keys.
func sealBoundTo(kioskPub, aadPub []byte, msg string, ephemeral, nonce, ctx []byte) (Request, error) {
	size := -1
	for _, l := range Lengths {
		if len(msg) <= l {
			size = l
			break
		}
	}
	if size < 0 {
		return Request{}, fmt.Errorf("seal: a message of %d bytes does not fit in %d", len(msg), Lengths[len(Lengths)-1])
	}
	padded := []byte(msg + strings.Repeat(" ", size-len(msg)))
	epk, err := curve25519.X25519(ephemeral, curve25519.Basepoint)
	if err != nil {
		return Request{}, err
	}
	shared, err := curve25519.X25519(ephemeral, kioskPub)
	if err != nil {
		return Request{}, err
	}
	defer clear(shared)
	key, err := chacha20.HChaCha20(shared, make([]byte, 16))
	if err != nil {
		return Request{}, err
	}
	reply, err := chacha20.HChaCha20(shared, replyInfo)
	if err != nil {
		return Request{}, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return Request{}, err
	}
	aad := append(append(append([]byte(nil), epk...), aadPub...), ctx...)
	return Request{EPK: epk, Nonce: nonce, Box: aead.Seal(nil, nonce, padded, aad), reply: reply, aad: aad}, nil
}

// Frame is the request's wire form as sequence number seq, the text
// seal.js writes.
func (r Request) Frame(seq uint32) []byte {
	b64 := base64.RawURLEncoding.EncodeToString
	return fmt.Appendf(nil, `{"type":"sealed","seq":%d,"epk":"%s","nonce":"%s","box":"%s"}`, seq, b64(r.EPK), b64(r.Nonce), b64(r.Box))
}

// OpenAnswer is KioskSeal's openReply: it opens the kiosk's sealed answer
// to r and returns its text without padding.
func (r Request) OpenAnswer(frame []byte) ([]byte, error) {
	var f struct {
		Type  string `json:"type"`
		Seq   uint32 `json:"seq"`
		Nonce string `json:"nonce"`
		Box   string `json:"box"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.Type != "sealed" {
		return nil, fmt.Errorf("%w: not a sealed answer", ErrBroken)
	}
	b64 := base64.RawURLEncoding.Strict()
	nonce, err := b64.DecodeString(f.Nonce)
	if err != nil {
		return nil, fmt.Errorf("%w: nonce: %v", ErrBroken, err)
	}
	box, err := b64.DecodeString(f.Box)
	if err != nil {
		return nil, fmt.Errorf("%w: box: %v", ErrBroken, err)
	}
	if len(box) != ReplyLen+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: answer box of %d bytes; want %d", ErrBroken, len(box), ReplyLen+chacha20poly1305.Overhead)
	}
	aead, err := chacha20poly1305.New(r.reply)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	msg, err := aead.Open(nil, nonce, box, r.aad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrBroken)
	}
	return []byte(strings.TrimRight(string(msg), " ")), nil
}
