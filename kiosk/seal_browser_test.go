package kiosk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/consent-kiosk/kiosk/tally"
)

// sealJSPath is static/seal.js, read from disk so the test serves exactly
// the file the kiosk embeds.
var sealJSPath = filepath.Join("..", "static", "seal.js")

// evalJS evaluates a JavaScript expression in the tab and returns its value.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %.120s: %v", expr, err)
	}
	return v
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
	ctx := startChromium(t)
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
		eph, nonce, sctx := randomBytes(t, 32), randomBytes(t, 12), SealContext(randomBytes(t, ChallengeLen), 5)
		want := sealTo(t, s.PublicKey(), s.PublicKey(), msg, eph, nonce, sctx)
		type fields struct {
			EPK   string `json:"epk"`
			Nonce string `json:"nonce"`
			Box   string `json:"box"`
		}
		got := evalJS[fields](t, ctx, fmt.Sprintf(`KioskSeal.sealWith(%q, %q, %s, %s, %s)`, pub, msg, jsBytes(eph), jsBytes(nonce), jsBytes(sctx)))
		b64 := base64.RawURLEncoding.EncodeToString
		if w := (fields{b64(want.epk), b64(want.nonce), b64(want.box)}); got != w {
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
			{"a message over 256 bytes", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, strings.Repeat("x", SealedLengths[1]+1))},
			{"256 bytes that are 257 in UTF-8", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, "ø"+strings.Repeat("x", SealedLengths[1]-1))},
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

// recordSockets wraps the page's WebSocket so the test sees every frame the
// page sends and receives, as they cross the wire.
const recordSockets = `(function () {
  var Native = window.WebSocket, send = Native.prototype.send;
  window.__sent = []; window.__got = [];
  Native.prototype.send = function (d) { window.__sent.push(String(d)); return send.call(this, d); };
  window.WebSocket = function (u, p) {
    var w = p === undefined ? new Native(u) : new Native(u, p);
    w.addEventListener('message', function (e) { window.__got.push(String(e.data)); });
    return w;
  };
  window.WebSocket.prototype = Native.prototype;
})();`

// TestPhonePageSeals loads the real phone page from a real kiosk, taps
// "consent" and "do not consent", and checks that the kiosk counted the
// slips while no frame either way showed a choice or the device secret.
func TestPhonePageSeals(t *testing.T) {
	ctx := startChromium(t)
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video","notice":"Voice and slides."}`)
	k.setHeadcount(1)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordSockets})
			return err
		}),
		chromedp.Navigate(k.http.URL+"/j/"+k.joinToken()),
		chromedp.Click(chromedp.ID("consent")),
	); err != nil {
		t.Fatalf("opening the phone page and tapping consent: %v", err)
	}
	waitState(t, k, func(st tally.State) bool { return st.Unlocked })
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("refuse"))); err != nil {
		t.Fatal(err)
	}
	waitState(t, k, func(st tally.State) bool { return st.Received == 1 && !st.Unlocked && st.Reason == tally.ReasonRefused })
	// The page has opened the sealed ack once nothing is pending.
	want := evalJS[string](t, ctx, `Kiosk.t('phone.current_refuse')`)
	deadline := time.Now().Add(10 * time.Second)
	for evalJS[string](t, ctx, `document.getElementById('current').textContent`) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed the acknowledged refusal %q", want)
		}
		time.Sleep(20 * time.Millisecond) // bounded polling of the page
	}

	device := evalJS[string](t, ctx, `localStorage.getItem('consent-kiosk-device')`)
	sent := evalJS[[]string](t, ctx, `window.__sent`)
	got := evalJS[[]string](t, ctx, `window.__got`)
	if len(sent) < 3 || device == "" {
		t.Fatalf("page sent %d frames, device %q; want hello and two slips", len(sent), device)
	}
	for _, f := range sent {
		if !strings.HasPrefix(f, `{"type":"sealed",`) {
			t.Errorf("the page sent a frame in clear: %s", f)
		}
	}
	for _, f := range append(sent, got...) {
		for _, secret := range []string{`consent"`, `refuse"`, device} {
			if strings.Contains(f, secret) {
				t.Errorf("a frame on the wire shows %s: %s", secret, f)
			}
		}
	}
}

// waitState polls the kiosk's state until ok, for at most 10 seconds.
func waitState(t *testing.T, k *testKiosk, ok func(tally.State) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, ch := k.store.Changed()
		if ok(st) {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out; last state %+v", st)
		}
	}
}
