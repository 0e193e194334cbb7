package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/poly1305"
)

// Known answers from the specifications. The same tables drive the Go
// cross-check below and the browser test of static/js, so a typo in a
// vector shows up as a Go failure, not as a mystery in the browser.

const sunscreen = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."

// x25519Vectors: RFC 7748 §5.2 (the two single calls) and §6.1 (both public
// keys and the shared secret computed from each side).
var x25519Vectors = []struct{ name, scalar, u, out string }{
	{"5.2 first",
		"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
		"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
	{"5.2 second",
		"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
		"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
		"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	{"6.1 alice public",
		"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
		"0900000000000000000000000000000000000000000000000000000000000000",
		"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"},
	{"6.1 bob public",
		"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
		"0900000000000000000000000000000000000000000000000000000000000000",
		"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"},
	{"6.1 alice shared",
		"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
		"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
		"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
	{"6.1 bob shared",
		"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
		"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
		"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
}

// x25519Iterated: RFC 7748 §5.2, k = u = 9, then k, u = X25519(k, u), k.
// The million-iteration answer is left out: minutes on a shared CI core.
var x25519Iterated = []struct {
	n   int
	out string
}{
	{1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"},
	{1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"},
}

// chacha20Vector: RFC 8439 §2.4.2.
var chacha20Vector = struct {
	key, nonce string
	counter    uint32
	plaintext  string
	ciphertext string
}{
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	"000000000000004a00000000",
	1,
	sunscreen,
	"6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b" +
		"f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8" +
		"07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736" +
		"5af90bbf74a35be6b40b8eedf2785e42874d",
}

// poly1305Vector: RFC 8439 §2.5.2.
var poly1305Vector = struct{ key, msg, tag string }{
	"85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
	"Cryptographic Forum Research Group",
	"a8061dc1305136c6c22b8baf0c0127a9",
}

// ietfContribution is the text of RFC 8439 §A.3 vectors #2 and #3, hex.
const ietfContribution = "416e79207375626d697373696f6e20746f20746865204945544620696e74656e6465642062792074686520436f6e7472696275746f7220666f72207075626c69636174696f6e20617320616c6c206f722070617274206f6620616e204945544620496e7465726e65742d4472616674206f722052464320616e6420616e792073746174656d656e74206d6164652077697468696e2074686520636f6e74657874206f6620616e204945544620616374697669747920697320636f6e7369646572656420616e20224945544620436f6e747269627574696f6e222e20537563682073746174656d656e747320696e636c756465206f72616c2073746174656d656e747320696e20494554462073657373696f6e732c2061732077656c6c206173207772697474656e20616e6420656c656374726f6e696320636f6d6d756e69636174696f6e73206d61646520617420616e792074696d65206f7220706c6163652c207768696368206172652061646472657373656420746f"

// poly1305A3 are the eleven Poly1305 vectors of RFC 8439 §A.3, which reach
// the carries and final reductions the §2.5.2 example does not.
var poly1305A3 = []struct{ key, msg, tag string }{
	{"0000000000000000000000000000000000000000000000000000000000000000",
		"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
		"00000000000000000000000000000000"}, // #1: all zeros
	{"0000000000000000000000000000000036e5f6b5c5e06070f0efca96227a863e",
		ietfContribution,
		"36e5f6b5c5e06070f0efca96227a863e"}, // #2: r = 0: the tag is s
	{"36e5f6b5c5e06070f0efca96227a863e00000000000000000000000000000000",
		ietfContribution,
		"f3477e7cd95417af89a6b8794c310cf0"}, // #3: s = 0
	{"1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
		"2754776173206272696c6c69672c20616e642074686520736c6974687920746f7665730a446964206779726520616e642067696d626c6520696e2074686520776162653a0a416c6c206d696d737920776572652074686520626f726f676f7665732c0a416e6420746865206d6f6d65207261746873206f757467726162652e",
		"4541669a7eaaee61e708dc7cbcc5eb62"}, // #4: the Jabberwocky
	{"0200000000000000000000000000000000000000000000000000000000000000",
		"ffffffffffffffffffffffffffffffff",
		"03000000000000000000000000000000"}, // #5: h reaches p
	{"02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
		"02000000000000000000000000000000",
		"03000000000000000000000000000000"}, // #6: h + s overflows 128 bits
	{"0100000000000000000000000000000000000000000000000000000000000000",
		"fffffffffffffffffffffffffffffffff0ffffffffffffffffffffffffffffff11000000000000000000000000000000",
		"05000000000000000000000000000000"}, // #7: h ≥ 2^130 - 5 before the final reduction
	{"0100000000000000000000000000000000000000000000000000000000000000",
		"fffffffffffffffffffffffffffffffffbfefefefefefefefefefefefefefefe01010101010101010101010101010101",
		"00000000000000000000000000000000"}, // #8: h = 2^130 - 5 exactly, reduced to zero
	{"0200000000000000000000000000000000000000000000000000000000000000",
		"fdffffffffffffffffffffffffffffff",
		"faffffffffffffffffffffffffffffff"}, // #9: h = 2^130 - 6
	{"0100000000000000040000000000000000000000000000000000000000000000",
		"e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000",
		"14000000000000005500000000000000"}, // #10: 5·H+L makes a 131-bit intermediate
	{"0100000000000000040000000000000000000000000000000000000000000000",
		"e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000",
		"13000000000000000000000000000000"}, // #11: 5·H+L makes a 131-bit final result
}

// aeadVector: RFC 8439 §2.8.2; box is ciphertext || tag.
var aeadVector = struct{ key, nonce, aad, plaintext, box string }{
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
	"070000004041424344454647",
	"50515253c0c1c2c3c4c5c6c7",
	sunscreen,
	"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
		"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
		"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
		"3ff4def08e4b7a9de576d26586cec64b6116" +
		"1ae10b594f09e26a7e902ecbd0600691",
}

// hchacha20Vector: draft-irtf-cfrg-xchacha-03 §2.2.1.
var hchacha20Vector = struct{ key, input, out string }{
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	"000000090000004a0000000031415927",
	"82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc",
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// TestSealVectorsAgreeWithGo checks the vector tables against
// golang.org/x/crypto, the code the kiosk opens with.
func TestSealVectorsAgreeWithGo(t *testing.T) {
	for _, v := range x25519Vectors {
		got, err := curve25519.X25519(unhex(t, v.scalar), unhex(t, v.u))
		if err != nil {
			t.Fatalf("%s: X25519: %v", v.name, err)
		}
		if hex.EncodeToString(got) != v.out {
			t.Errorf("%s: X25519 = %x; want %s", v.name, got, v.out)
		}
	}
	k := append([]byte(nil), curve25519.Basepoint...)
	u := append([]byte(nil), curve25519.Basepoint...)
	for i, n := 0, 0; i < len(x25519Iterated); i++ {
		for ; n < x25519Iterated[i].n; n++ {
			r, err := curve25519.X25519(k, u)
			if err != nil {
				t.Fatal(err)
			}
			k, u = r, k
		}
		if got := hex.EncodeToString(k); got != x25519Iterated[i].out {
			t.Errorf("X25519 iterated %d times = %s; want %s", n, got, x25519Iterated[i].out)
		}
	}

	c, err := chacha20.NewUnauthenticatedCipher(unhex(t, chacha20Vector.key), unhex(t, chacha20Vector.nonce))
	if err != nil {
		t.Fatal(err)
	}
	c.SetCounter(chacha20Vector.counter)
	ct := make([]byte, len(chacha20Vector.plaintext))
	c.XORKeyStream(ct, []byte(chacha20Vector.plaintext))
	if got := hex.EncodeToString(ct); got != chacha20Vector.ciphertext {
		t.Errorf("ChaCha20 = %s; want %s", got, chacha20Vector.ciphertext)
	}

	var pk [32]byte
	copy(pk[:], unhex(t, poly1305Vector.key))
	var tag [16]byte
	poly1305.Sum(&tag, []byte(poly1305Vector.msg), &pk)
	if got := hex.EncodeToString(tag[:]); got != poly1305Vector.tag {
		t.Errorf("Poly1305 = %s; want %s", got, poly1305Vector.tag)
	}

	for i, v := range poly1305A3 {
		copy(pk[:], unhex(t, v.key))
		poly1305.Sum(&tag, unhex(t, v.msg), &pk)
		if got := hex.EncodeToString(tag[:]); got != v.tag {
			t.Errorf("Poly1305 A.3 #%d = %s; want %s", i+1, got, v.tag)
		}
	}

	aead, err := chacha20poly1305.New(unhex(t, aeadVector.key))
	if err != nil {
		t.Fatal(err)
	}
	box := aead.Seal(nil, unhex(t, aeadVector.nonce), []byte(aeadVector.plaintext), unhex(t, aeadVector.aad))
	if got := hex.EncodeToString(box); got != aeadVector.box {
		t.Errorf("ChaCha20-Poly1305 = %s; want %s", got, aeadVector.box)
	}

	hk, err := chacha20.HChaCha20(unhex(t, hchacha20Vector.key), unhex(t, hchacha20Vector.input))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(hk); got != hchacha20Vector.out {
		t.Errorf("HChaCha20 = %s; want %s", got, hchacha20Vector.out)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sealFor seals msg as frame seq of the connection with the given
// challenge, as a phone page would.
func sealFor(t testing.TB, kioskPub []byte, msg string, challenge []byte, seq uint32) (string, Request) {
	t.Helper()
	frame, r, err := NewRequest(kioskPub, msg, challenge, seq)
	if err != nil {
		t.Fatal(err)
	}
	return string(frame), r
}

// sealTo is sealBoundTo for a test that must not fail to seal.
func sealTo(t testing.TB, kioskPub, aadPub []byte, msg string, ephemeral, nonce, ctx []byte) Request {
	t.Helper()
	r, err := sealBoundTo(kioskPub, aadPub, msg, ephemeral, nonce, ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTestSealer(t testing.TB) *Sealer {
	t.Helper()
	return NewSealer(randomBytes(t, 32))
}

func TestSealRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	challenge := randomBytes(t, ChallengeLen)
	for i, msg := range []string{
		`{"type":"slip","choice":"consent","round":3}`,
		`{"type":"slip","choice":"refuse","round":3}`,
		`{"type":"leave"}`,
		``,
		strings.Repeat("x", Lengths[0]),
		strings.Repeat("x", Lengths[0]+1),
		strings.Repeat("x", Lengths[1]),
		`{"note":"blåbærsyltetøy"}`,
	} {
		frame, req := sealFor(t, s.PublicKey(), msg, challenge, uint32(i))
		got, err := s.OpenFrame([]byte(frame), challenge)
		if err != nil {
			t.Errorf("OpenFrame(seal(%q)) error = %v; want nil", msg, err)
			continue
		}
		if string(got.Msg) != msg || got.Seq != uint32(i) {
			t.Errorf("OpenFrame(seal(%q)) = %q seq %d; want the message back, seq %d", msg, got.Msg, got.Seq, i)
		}
		answer, err := got.SealReply([]byte(`{"type":"ack","choice":"consent","round":3}`))
		if err != nil {
			t.Fatalf("SealReply: %v", err)
		}
		if text, err := req.OpenAnswer(answer); err != nil || string(text) != `{"type":"ack","choice":"consent","round":3}` {
			t.Errorf("phone opens the answer = %q, %v; want the ack", text, err)
		}
	}
}

// TestSealBindsConnectionAndSeq: a frame captured on one connection does not
// open on another, nor under another sequence number.
func TestSealBindsConnectionAndSeq(t *testing.T) {
	s := newTestSealer(t)
	challenge := randomBytes(t, ChallengeLen)
	frame, _ := sealFor(t, s.PublicKey(), `{"type":"slip","choice":"consent"}`, challenge, 7)
	if _, err := s.OpenFrame([]byte(frame), challenge); err != nil {
		t.Fatalf("OpenFrame on its own connection: %v", err)
	}
	if _, err := s.OpenFrame([]byte(frame), randomBytes(t, ChallengeLen)); !errors.Is(err, ErrBroken) {
		t.Errorf("OpenFrame with another connection's challenge = %v; want ErrBroken", err)
	}
	moved := strings.Replace(frame, `"seq":7`, `"seq":8`, 1)
	if _, err := s.OpenFrame([]byte(moved), challenge); !errors.Is(err, ErrBroken) {
		t.Errorf("OpenFrame with the seq changed = %v; want ErrBroken", err)
	}
}

func TestNewSealerIsDeterministic(t *testing.T) {
	seed := randomBytes(t, 32)
	a, b := NewSealer(seed), NewSealer(seed)
	if !bytes.Equal(a.PublicKey(), b.PublicKey()) {
		t.Errorf("two Sealers from one seed have keys %x and %x; want equal", a.PublicKey(), b.PublicKey())
	}
	seed[1] ^= 1 // not seed[0]: X25519 clamps its low three bits away
	if bytes.Equal(a.PublicKey(), NewSealer(seed).PublicKey()) {
		t.Errorf("Sealers from different seeds share a public key")
	}
	if got, want := a.PublicKeyString(), base64.RawURLEncoding.EncodeToString(a.PublicKey()); got != want {
		t.Errorf("PublicKeyString() = %q; want %q", got, want)
	}
}

func TestSealRefusesTampering(t *testing.T) {
	s := newTestSealer(t)
	other := newTestSealer(t)
	const msg = `{"type":"slip","choice":"consent","round":3}`
	eph, nonce, ctx := randomBytes(t, 32), randomBytes(t, 12), Context(randomBytes(t, ChallengeLen), 1)
	good := sealTo(t, s.PublicKey(), s.PublicKey(), msg, eph, nonce, ctx)
	epk, box := good.EPK, good.Box
	if _, err := s.Open(epk, nonce, box, ctx); err != nil {
		t.Fatalf("Open of an untouched box: %v", err)
	}

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	wrongAAD := sealTo(t, s.PublicKey(), other.PublicKey(), msg, eph, nonce, ctx)
	toOther := sealTo(t, other.PublicKey(), other.PublicKey(), msg, eph, nonce, ctx)

	tests := []struct {
		name                 string
		epk, nonce, box, ctx []byte
	}{
		{"ciphertext byte flipped", epk, nonce, flip(box, 0), ctx},
		{"tag byte flipped", epk, nonce, flip(box, len(box)-1), ctx},
		{"nonce changed", epk, flip(nonce, 5), box, ctx},
		{"epk changed", flip(epk, 3), nonce, box, ctx},
		{"context changed", epk, nonce, box, flip(ctx, 0)},
		{"no context", epk, nonce, box, nil},
		{"AAD names another kiosk", wrongAAD.EPK, nonce, wrongAAD.Box, ctx},
		{"sealed to another kiosk", toOther.EPK, nonce, toOther.Box, ctx},
		{"box truncated", epk, nonce, box[:len(box)-1], ctx},
		{"box without tag", epk, nonce, box[:SlipLen], ctx},
		{"box lengthened", epk, nonce, append(bytes.Clone(box), 0), ctx},
		{"empty box", epk, nonce, nil, ctx},
		{"epk truncated", epk[:31], nonce, box, ctx},
		{"nonce truncated", epk, nonce[:11], box, ctx},
		{"all-zero epk", make([]byte, 32), nonce, box, ctx},
		// u = 1 has order 1 on the curve; X25519 gives all zeros for it.
		{"low-order epk", append([]byte{1}, make([]byte, 31)...), nonce, box, ctx},
	}
	for _, tt := range tests {
		got, err := s.Open(tt.epk, tt.nonce, tt.box, tt.ctx)
		if !errors.Is(err, ErrBroken) {
			t.Errorf("%s: Open = %q, %v; want ErrBroken", tt.name, got.Msg, err)
		}
		if got.Msg != nil || got.reply != nil {
			t.Errorf("%s: Open returned %q with an error; want nothing", tt.name, got.Msg)
		}
	}
}

func TestParseSealedIsStrict(t *testing.T) {
	s := newTestSealer(t)
	challenge := randomBytes(t, ChallengeLen)
	good, _ := sealFor(t, s.PublicKey(), `{"type":"leave"}`, challenge, 1)
	parsed, err := ParseFrame([]byte(good))
	if err != nil {
		t.Fatalf("ParseFrame(good) error = %v", err)
	}
	epk, nonce, box := parsed.EPK, parsed.Nonce, parsed.Box
	b64 := base64.RawURLEncoding.EncodeToString
	// Flip the lowest bit of the last box character: same bytes under a
	// lax decoder, a different string under a strict one.
	lastBox := b64(box)
	bumped := lastBox[:len(lastBox)-1] + string(lastBox[len(lastBox)-1]^1)

	tests := []struct{ name, frame string }{
		{"empty", ``},
		{"not JSON", `sealed`},
		{"wrong type", strings.Replace(good, `"sealed"`, `"slip"`, 1)},
		{"missing type", strings.Replace(good, `"type":"sealed",`, ``, 1)},
		{"missing seq", strings.Replace(good, `"seq":1,`, ``, 1)},
		{"negative seq", strings.Replace(good, `"seq":1,`, `"seq":-1,`, 1)},
		{"huge seq", strings.Replace(good, `"seq":1,`, `"seq":4294967297,`, 1)},
		{"unknown field", strings.Replace(good, `{`, `{"device":"x",`, 1)},
		{"trailing data", good + `{}`},
		{"two frames", good + good},
		{"padded base64", strings.Replace(good, b64(epk), b64(epk)+"=", 1)},
		{"standard base64", strings.Replace(good, b64(epk), strings.NewReplacer("-", "+", "_", "/").Replace(b64(epk))+"+/", 1)},
		{"non-canonical base64", strings.Replace(good, lastBox, bumped, 1)},
		{"array", `[` + good + `]`},
		{"huge", `{"type":"sealed","epk":"` + strings.Repeat("A", 2000) + `"}`},
		{"nonce not a string", strings.Replace(good, `"nonce":"`+b64(nonce)+`"`, `"nonce":12`, 1)},
	}
	// A session frame is the same frame naming its session; every flaw
	// above is refused in it too.
	withSession := func(frame string) string {
		return strings.Replace(frame, `{"type":"sealed",`, `{"type":"sealed","session":"s1",`, 1)
	}
	for _, tt := range tests {
		if tt.name == "non-canonical base64" && bumped == lastBox {
			t.Fatal("test setup: bumped box equals the original")
		}
		if _, err := s.OpenFrame([]byte(tt.frame), challenge); !errors.Is(err, ErrBroken) {
			t.Errorf("%s: OpenFrame(%.60q…) error = %v; want ErrBroken", tt.name, tt.frame, err)
		}
		if tt.name == "wrong type" || tt.name == "missing type" {
			continue // withSession finds no "sealed" to put the session after
		}
		if f, err := ParseSessionFrame([]byte(withSession(tt.frame))); !errors.Is(err, ErrBroken) {
			t.Errorf("%s: ParseSessionFrame(%.60q…) = %+v, %v; want ErrBroken", tt.name, withSession(tt.frame), f, err)
		}
	}

	// A websocket holds its challenge; a frame naming a session is not one
	// of its frames.
	if _, err := s.OpenFrame([]byte(withSession(good)), challenge); !errors.Is(err, ErrBroken) {
		t.Errorf("OpenFrame of a frame naming a session = %v; want ErrBroken", err)
	}
	f, err := ParseSessionFrame([]byte(withSession(good)))
	if err != nil || f.Session != "s1" || f.Seq != 1 {
		t.Fatalf("ParseSessionFrame(good) = %+v, %v; want session s1, seq 1", f, err)
	}
	if o, err := s.OpenParsed(f, challenge); err != nil || string(o.Msg) != `{"type":"leave"}` || o.Seq != 1 {
		t.Errorf("OpenParsed(session frame) = %q seq %d, %v; want the leave, seq 1", o.Msg, o.Seq, err)
	}
	// No session, an empty one, and no session with a broken field besides:
	// each is told it has no session.
	for _, frame := range []string{good, strings.Replace(withSession(good), `"s1"`, `""`, 1),
		strings.Replace(good, b64(epk), b64(epk)+"=", 1)} {
		if _, err := ParseSessionFrame([]byte(frame)); !errors.Is(err, ErrNoSession) || errors.Is(err, ErrBroken) {
			t.Errorf("ParseSessionFrame(%.60q…) = %v; want ErrNoSession, not ErrBroken", frame, err)
		}
	}
}

// A neighbour on the Wi-Fi sees only frame sizes; they must not tell a
// consent from a refusal, nor a slip from a withdrawal.
func TestSealedFramesHaveEqualLength(t *testing.T) {
	s := newTestSealer(t)
	challenge := randomBytes(t, ChallengeLen)
	msgs := []string{
		`{"type":"slip","choice":"consent","round":3}`,
		`{"type":"slip","choice":"refuse","round":3}`,
		`{"type":"slip","choice":"none","round":3}`,
		`{"type":"slip","choice":"consent","round":100000}`,
		`{"type":"leave"}`,
	}
	// 24 + 9 + 43 + 11 + 16 + 9 + 150 + 2: the JSON around seq 12 and
	// base64url of 32, 12 and 112 bytes. js writes the same text.
	const want = 264
	for _, m := range msgs {
		for i := 0; i < 20; i++ {
			if frame, _ := sealFor(t, s.PublicKey(), m, challenge, 12); len(frame) != want {
				t.Fatalf("len(sealed %s) = %d; want %d like every other sealed frame", m, len(frame), want)
			}
		}
	}
}

// FuzzOpenSealed feeds arbitrary frames to the parser and opener. Nothing may
// panic; whatever opens must have come from a genuine box, so it fits the
// padding and decodes to the same fields again.
func FuzzOpenSealed(f *testing.F) {
	seed := bytes.Repeat([]byte{7}, 32)
	s := NewSealer(seed)
	challenge := bytes.Repeat([]byte{9}, ChallengeLen)
	for i, msg := range []string{
		`{"type":"slip","choice":"consent","round":3}`,
		`{"type":"slip","choice":"refuse","round":3}`,
		`{"type":"hello","join":"AAAAAAAAAAAAAAAAAAAAAA","device":"` + strings.Repeat("d", 128) + `"}`,
		``,
	} {
		frame, _ := sealFor(f, s.PublicKey(), msg, challenge, uint32(i))
		f.Add([]byte(frame))
	}
	f.Add([]byte(`{"type":"sealed","seq":0,"epk":"","nonce":"","box":""}`))
	f.Add([]byte(`{"type":"sealed","seq":1,"epk":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","nonce":"AAAAAAAAAAAAAAAA","box":""}`))
	f.Add([]byte(`{"type":"slip","choice":"consent"}`))
	f.Add([]byte(`{"type":"sealed"}{"type":"sealed"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		o, err := s.OpenFrame(frame, challenge)
		if err != nil {
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("OpenFrame error %v does not wrap ErrBroken", err)
			}
			if o.Msg != nil || o.reply != nil {
				t.Fatalf("OpenFrame returned %q with error %v", o.Msg, err)
			}
			return
		}
		if len(o.Msg) > Lengths[len(Lengths)-1] {
			t.Fatalf("OpenFrame returned %d bytes; want at most %d", len(o.Msg), Lengths[len(Lengths)-1])
		}
		p, err := ParseFrame(frame)
		if err != nil || p.Seq != o.Seq {
			t.Fatalf("ParseFrame = seq %d, %v on a frame OpenFrame accepted as seq %d", p.Seq, err, o.Seq)
		}
		again, err := s.Open(p.EPK, p.Nonce, p.Box, Context(challenge, p.Seq))
		if err != nil || !bytes.Equal(again.Msg, o.Msg) {
			t.Fatalf("Open = %q, %v; want %q as from OpenFrame", again.Msg, err, o.Msg)
		}
	})
}
