package seal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/internal/browsertest"
)

// sealJSPath is static/seal.js, read from disk so the test serves exactly
// the file the kiosk embeds.
var sealJSPath = filepath.Join("..", "static", "seal.js")

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, ctx, expr)
}

// newSealPage serves seal.js and a page that loads it, on loopback.
func newSealPage(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /seal.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, sealJSPath)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("testdata", "seal.html"))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// jsBytes is a JavaScript expression for b as a Uint8Array.
func jsBytes(b []byte) string {
	return fmt.Sprintf("KioskSeal.fromHex(%q)", hex.EncodeToString(b))
}

func TestSealInBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	ts := newSealPage(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatalf("loading the test page: %v", err)
	}
	if !evalJS[bool](t, ctx, `KioskSeal.selfTest()`) {
		t.Fatal("KioskSeal.selfTest() = false; want true")
	}

	t.Run("X25519", func(t *testing.T) {
		for _, v := range x25519Vectors {
			got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.x25519(KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)))`, v.scalar, v.u))
			if got != v.out {
				t.Errorf("%s: x25519 = %s; want %s", v.name, got, v.out)
			}
		}
		for _, v := range x25519Iterated {
			got := evalJS[string](t, ctx, fmt.Sprintf(`(function () {
				var k = new Uint8Array(32), u = new Uint8Array(32), r;
				k[0] = 9; u[0] = 9;
				for (var i = 0; i < %d; i++) { r = KioskSeal.x25519(k, u); u = k; k = r; }
				return KioskSeal.toHex(k);
			})()`, v.n))
			if got != v.out {
				t.Errorf("x25519 iterated %d times = %s; want %s", v.n, got, v.out)
			}
		}
	})

	t.Run("ChaCha20", func(t *testing.T) {
		v := chacha20Vector
		got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.chacha20(KioskSeal.fromHex(%q), %d, KioskSeal.fromHex(%q), %s))`,
			v.key, v.counter, v.nonce, jsBytes([]byte(v.plaintext))))
		if got != v.ciphertext {
			t.Errorf("chacha20 = %s; want %s", got, v.ciphertext)
		}
	})

	t.Run("Poly1305", func(t *testing.T) {
		v := poly1305Vector
		got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.poly1305(KioskSeal.fromHex(%q), %s))`, v.key, jsBytes([]byte(v.msg))))
		if got != v.tag {
			t.Errorf("poly1305 = %s; want %s", got, v.tag)
		}
	})

	t.Run("Poly1305 A.3", func(t *testing.T) {
		for i, v := range poly1305A3 {
			got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.poly1305(KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)))`, v.key, v.msg))
			if got != v.tag {
				t.Errorf("A.3 #%d: poly1305 = %s; want %s", i+1, got, v.tag)
			}
		}
	})

	t.Run("AEAD", func(t *testing.T) {
		v := aeadVector
		args := fmt.Sprintf(`KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)`, v.key, v.nonce)
		got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.aeadSeal(%s, %s, KioskSeal.fromHex(%q)))`,
			args, jsBytes([]byte(v.plaintext)), v.aad))
		if got != v.box {
			t.Errorf("aeadSeal = %s; want %s", got, v.box)
		}
		opened := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.aeadOpen(%s, KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)))`, args, v.box, v.aad))
		if want := hex.EncodeToString([]byte(v.plaintext)); opened != want {
			t.Errorf("aeadOpen = %s; want %s", opened, want)
		}
		tampered := []byte(v.box)
		tampered[0] ^= 1 // "d" becomes "e": one ciphertext bit changes
		refused := evalJS[bool](t, ctx, fmt.Sprintf(`KioskSeal.aeadOpen(%s, KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)) === null`, args, tampered, v.aad))
		if !refused {
			t.Error("aeadOpen of a tampered box returned a plaintext; want null")
		}
	})

	t.Run("HChaCha20", func(t *testing.T) {
		v := hchacha20Vector
		got := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.toHex(KioskSeal.hchacha20(KioskSeal.fromHex(%q), KioskSeal.fromHex(%q)))`, v.key, v.input))
		if got != v.out {
			t.Errorf("hchacha20 = %s; want %s", got, v.out)
		}
	})

	s := newTestSealer(t)
	pub := s.PublicKeyString()

	// With the ephemeral secret and nonce pinned, the page and Go must make
	// the very same bytes; a mismatch points at the construction, not the
	// primitives.
	t.Run("same bytes as Go", func(t *testing.T) {
		const msg = `{"type":"slip","choice":"consent","round":3}`
		eph, nonce, sctx := randomBytes(t, 32), randomBytes(t, 12), Context(randomBytes(t, ChallengeLen), 5)
		want := sealTo(t, s.PublicKey(), s.PublicKey(), msg, eph, nonce, sctx)
		type fields struct {
			EPK   string `json:"epk"`
			Nonce string `json:"nonce"`
			Box   string `json:"box"`
		}
		got := evalJS[fields](t, ctx, fmt.Sprintf(`KioskSeal.sealWith(%q, %q, %s, %s, %s)`, pub, msg, jsBytes(eph), jsBytes(nonce), jsBytes(sctx)))
		b64 := base64.RawURLEncoding.EncodeToString
		if w := (fields{b64(want.EPK), b64(want.Nonce), b64(want.Box)}); got != w {
			t.Errorf("sealWith = %+v;\nwant %+v", got, w)
		}
	})

	// The page seals a frame for a connection, Go opens it and seals an
	// answer, and the page opens the answer.
	t.Run("Go opens what the page sealed", func(t *testing.T) {
		challenge := randomBytes(t, ChallengeLen)
		lengths := map[int]bool{}
		for i, choice := range []string{"consent", "refuse", "none"} {
			seq := uint32(i + 1)
			evalJS[bool](t, ctx, fmt.Sprintf(`(window.req = KioskSeal.sealFrame(%q, {type: "slip", choice: %q, round: 3}, %q, %d), true)`,
				pub, choice, base64.RawURLEncoding.EncodeToString(challenge), seq))
			frame := evalJS[string](t, ctx, `window.req.text`)
			lengths[len(frame)] = true
			o, err := s.OpenFrame([]byte(frame), challenge)
			if err != nil {
				t.Fatalf("OpenFrame(page's %s frame %s): %v", choice, frame, err)
			}
			want := fmt.Sprintf(`{"type":"slip","choice":%q,"round":3}`, choice)
			if string(o.Msg) != want || o.Seq != seq {
				t.Errorf("OpenFrame(page's %s frame) = %s seq %d; want %s seq %d", choice, o.Msg, o.Seq, want, seq)
			}
			ack := fmt.Sprintf(`{"type":"ack","choice":%q,"round":3}`, choice)
			answer, err := o.SealReply([]byte(ack))
			if err != nil {
				t.Fatal(err)
			}
			if got := evalJS[string](t, ctx, fmt.Sprintf(`window.req.open(%s)`, answer)); got != ack {
				t.Errorf("page opens the sealed ack = %q; want %q", got, ack)
			}
			tampered := strings.Replace(string(answer), `"box":"`, `"box":"A`, 1)
			tampered = strings.Replace(tampered, `","}`, `"}`, 1)
			if got := evalJS[bool](t, ctx, fmt.Sprintf(`window.req.open(%s) === null`, tampered)); !got {
				t.Errorf("page opened a tampered answer %s", tampered)
			}
		}
		if len(lengths) != 1 {
			t.Errorf("sealed consent, refuse and withdrawal frames have lengths %v; want one length", lengths)
		}
		// The page's hello carries the device secret: sealed, in the long size.
		evalJS[bool](t, ctx, fmt.Sprintf(`(window.req = KioskSeal.sealFrame(%q, {type: "hello", join: "AAAAAAAAAAAAAAAAAAAAAA", device: %q}, %q, 9), true)`,
			pub, strings.Repeat("d", 64), base64.RawURLEncoding.EncodeToString(challenge)))
		frame := evalJS[string](t, ctx, `window.req.text`)
		o, err := s.OpenFrame([]byte(frame), challenge)
		if err != nil || !strings.Contains(string(o.Msg), strings.Repeat("d", 64)) {
			t.Errorf("OpenFrame(page's sealed hello) = %q, %v; want the hello", o.Msg, err)
		}
		if strings.Contains(frame, "dddd") {
			t.Errorf("the sealed hello shows the device secret: %s", frame)
		}
	})

	t.Run("page refuses", func(t *testing.T) {
		tests := []struct{ name, expr string }{
			{"a message over 256 bytes", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, strings.Repeat("x", Lengths[1]+1))},
			{"256 bytes that are 257 in UTF-8", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, "ø"+strings.Repeat("x", Lengths[1]-1))},
			{"a short challenge", fmt.Sprintf(`KioskSeal.sealFrame(%q, "{}", "AAAA", 1)`, pub)},
			{"an all-zero kiosk key", `KioskSeal.seal(new Uint8Array(32), "{}")`},
			{"a short kiosk key", `KioskSeal.seal(new Uint8Array(31), "{}")`},
		}
		for _, tt := range tests {
			got := evalJS[string](t, ctx, `(function () { try { `+tt.expr+`; return "sealed"; } catch (e) { return "threw: " + e.message; } })()`)
			if !strings.HasPrefix(got, "threw: ") {
				t.Errorf("sealing %s: %s; want a throw", tt.name, got)
			}
		}
	})
}

// TestSealJSStaysOldBrowserSafe guards what no modern test browser can: the
// page must parse on old phones and must not lean on APIs that plain http://
// withholds. It is a crude token check, which is enough for one small file.
func TestSealJSStaysOldBrowserSafe(t *testing.T) {
	src, err := os.ReadFile(sealJSPath)
	if err != nil {
		t.Fatal(err)
	}
	// Comments may name what the code avoids; blank them, keeping line breaks
	// so reported line numbers stay true.
	src = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`).ReplaceAllFunc(src, func(c []byte) []byte {
		return regexp.MustCompile(`[^\n]`).ReplaceAll(c, []byte(" "))
	})
	forbidden := map[string]*regexp.Regexp{
		"arrow function":   regexp.MustCompile(`=>`),
		"let or const":     regexp.MustCompile(`\b(let|const)\s`),
		"template literal": regexp.MustCompile("`"),
		"class":            regexp.MustCompile(`\bclass\s+\w+\s*[{e]`),
		"BigInt":           regexp.MustCompile(`\bBigInt\b|\d+n\b`),
		"WebCrypto":        regexp.MustCompile(`\.subtle\b`),
		"TextEncoder":      regexp.MustCompile(`new\s+TextEncoder`),
		"Math.random":      regexp.MustCompile(`Math\.random`),
	}
	for what, re := range forbidden {
		if loc := re.FindIndex(src); loc != nil {
			line := bytes.Count(src[:loc[0]], []byte("\n")) + 1
			t.Errorf("seal.js:%d uses %s (%q); old phones or http:// pages cannot", line, what, src[loc[0]:loc[1]])
		}
	}
}

// crossSeed, when set, replays TestSealJSMatchesGo's cases; a failure
// prints the seed it ran with.
var crossSeed = flag.Uint64("seal.seed", 0, "seed for TestSealJSMatchesGo's cases (0: a fresh one)")

// crossCases is how many random cases the page and Go must agree on.
const crossCases = 1000

// crossCase is one random sealing: the inputs the page gets, and Go's
// answer to it.
type crossCase struct {
	Pub   string `json:"pub"`
	Msg   string `json:"msg"`
	Eph   string `json:"eph"`
	Nonce string `json:"nonce"`
	Chal  string `json:"chal"`
	Seq   uint32 `json:"seq"`
}

// randomMessage is a message of up to the longest padded length in UTF-8,
// mixing one- to four-byte characters, with lengths at the padding edges
// more likely than elsewhere. It never ends in a space, which the padding
// would swallow.
func randomMessage(r *mrand.Rand) string {
	edges := []int{0, 1, Lengths[0] - 1, Lengths[0], Lengths[0] + 1, Lengths[1] - 1, Lengths[1]}
	n := r.IntN(Lengths[1] + 1)
	if r.IntN(4) == 0 {
		n = edges[r.IntN(len(edges))]
	}
	alphabet := []rune(`abcxyz019"{}:,\ æøåÆØÅäöÄÖ€→✓𝄞😀` + "\n\t")
	var b strings.Builder
	for b.Len() < n {
		c := alphabet[r.IntN(len(alphabet))]
		if b.Len()+utf8.RuneLen(c) > n {
			c = 'q'
		}
		b.WriteRune(c)
	}
	s := b.String()
	if strings.HasSuffix(s, " ") {
		s = s[:len(s)-1] + "."
	}
	return s
}

// TestSealJSMatchesGo seals 1,000 random messages (random kiosk keys,
// ephemeral keys, nonces, challenges, sequence numbers, lengths up to 256
// bytes of UTF-8) in the page and in Go: the three wire fields must be the
// same bytes, Go must open the page's frame to the message, and the page
// must open Go's sealed answer to it and refuse that answer tampered with.
func TestSealJSMatchesGo(t *testing.T) {
	seed := *crossSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("cases from seed %d (replay: go test ./seal -run TestSealJSMatchesGo -seal.seed=%d)", seed, seed)
	r := mrand.New(mrand.NewPCG(seed, seed>>32|1))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}

	ctx := browsertest.Start(t)
	ts := newSealPage(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatalf("loading the test page: %v", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	const batch = 100 // cases per call into the page, to keep each call short
	for start := 0; start < crossCases; start += batch {
		cases := make([]crossCase, batch)
		sealers := make([]*Sealer, batch)
		wants := make([]Request, batch)
		for i := range cases {
			s := NewSealer(bytesOf(32))
			c := crossCase{Pub: s.PublicKeyString(), Msg: randomMessage(r), Eph: hex.EncodeToString(bytesOf(32)),
				Nonce: hex.EncodeToString(bytesOf(12)), Chal: b64(bytesOf(ChallengeLen)), Seq: r.Uint32()}
			chal, _ := base64.RawURLEncoding.DecodeString(c.Chal)
			eph, _ := hex.DecodeString(c.Eph)
			nonce, _ := hex.DecodeString(c.Nonce)
			cases[i], sealers[i], wants[i] = c, s, sealTo(t, s.PublicKey(), s.PublicKey(), c.Msg, eph, nonce, Context(chal, c.Seq))
		}
		in, err := json.Marshal(cases)
		if err != nil {
			t.Fatal(err)
		}
		type fields struct{ EPK, Nonce, Box string }
		got := evalJS[[]fields](t, ctx, `(function (cases) {
			window.__sealed = [];
			return cases.map(function (c) {
				var s = KioskSeal.sealWith(c.pub, c.msg, KioskSeal.fromHex(c.eph), KioskSeal.fromHex(c.nonce),
					KioskSeal.sealContext(c.chal, c.seq));
				window.__sealed.push(s);
				return {EPK: s.epk, Nonce: s.nonce, Box: s.box};
			});
		})(`+string(in)+`)`)
		if len(got) != batch {
			t.Fatalf("the page sealed %d cases; want %d", len(got), batch)
		}
		answers := make([]string, batch)
		for i, c := range cases {
			w := wants[i]
			if g := got[i]; g != (fields{b64(w.EPK), b64(w.Nonce), b64(w.Box)}) {
				t.Fatalf("case %d (seed %d): page sealed %q (%d bytes) as %+v; Go as %+v", start+i, seed, c.Msg, len(c.Msg), g, fields{b64(w.EPK), b64(w.Nonce), b64(w.Box)})
			}
			chal, _ := base64.RawURLEncoding.DecodeString(c.Chal)
			o, err := sealers[i].OpenFrame(w.Frame(c.Seq), chal)
			if err != nil || string(o.Msg) != c.Msg {
				t.Fatalf("case %d (seed %d): Go opens the page's frame to %q, %v; want %q", start+i, seed, o.Msg, err, c.Msg)
			}
			answer, err := o.SealReply([]byte(randomMessage(r)))
			if err != nil {
				t.Fatal(err)
			}
			answers[i] = string(answer)
		}
		in, err = json.Marshal(answers)
		if err != nil {
			t.Fatal(err)
		}
		type opened struct {
			Text     *string
			Tampered bool
		}
		back := evalJS[[]opened](t, ctx, `(function (answers) {
			return answers.map(function (text, i) {
				var a = JSON.parse(text), s = window.__sealed[i];
				var bad = JSON.parse(text);
				bad.box = (bad.box.charAt(0) === 'A' ? 'B' : 'A') + bad.box.slice(1);
				return {Text: KioskSeal.openReply(s._reply, s._aad, a), Tampered: KioskSeal.openReply(s._reply, s._aad, bad) !== null};
			});
		})(`+string(in)+`)`)
		for i, b := range back {
			want, err := wants[i].OpenAnswer([]byte(answers[i]))
			if err != nil {
				t.Fatal(err)
			}
			if b.Text == nil || *b.Text != string(want) {
				t.Fatalf("case %d (seed %d): the page opens Go's answer to %v; want %q", start+i, seed, b.Text, want)
			}
			if b.Tampered {
				t.Fatalf("case %d (seed %d): the page opened a tampered answer", start+i, seed)
			}
		}
	}
}
