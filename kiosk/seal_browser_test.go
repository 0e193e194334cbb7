package kiosk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian puts Chromium; CI installs it there.
const chromiumPath = "/usr/bin/chromium"

// browserBudget bounds a whole browser test, start to finish. The slowest
// step, 1,000 chained X25519 calls, takes a few seconds; the rest is slack
// for two busy shared cores.
const browserBudget = 3 * time.Minute

// sealJSPath is static/seal.js, read from disk so the test serves exactly
// the file the kiosk embeds.
var sealJSPath = filepath.Join("..", "static", "seal.js")

// newBrowser starts a headless Chromium with a fresh profile and returns a
// context with one open tab; the browser stops when the test ends. Without
// Chromium the test is skipped, unless KIOSK_REQUIRE_BROWSER=1 asks for a
// failure (CI sets it, so the browser tests cannot silently vanish).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("KIOSK_REQUIRE_BROWSER") == "1" {
			t.Fatalf("KIOSK_REQUIRE_BROWSER=1 but there is no browser: %v", err)
		}
		t.Skipf("no browser at %s, skipping (set KIOSK_REQUIRE_BROWSER=1 to fail instead): %v", chromiumPath, err)
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		// Tests often run as root in a container, where Chromium's sandbox
		// cannot start; the pages loaded are our own.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// The machine has no network beyond loopback; stop Chromium from
		// trying, and from spending the shared cores on updates.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		// Chromium keeps its singleton socket under TMPDIR and leaves it
		// behind when killed; keep it inside the test's own directory.
		chromedp.Env("TMPDIR="+dir),
	)
	// The first Run ties the browser's life to this context, so the budget
	// goes here, not on a later action.
	budget, cancelBudget := context.WithTimeout(context.Background(), browserBudget)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(budget, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelBudget()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

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
	ctx := newBrowser(t)
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
		eph, nonce := randomBytes(t, 32), randomBytes(t, 12)
		epk, box := sealTo(t, s.PublicKey(), s.PublicKey(), msg, eph, nonce)
		type sealed struct {
			EPK   string `json:"epk"`
			Nonce string `json:"nonce"`
			Box   string `json:"box"`
		}
		got := evalJS[sealed](t, ctx, fmt.Sprintf(`KioskSeal.sealWith(%q, %q, %s, %s)`, pub, msg, jsBytes(eph), jsBytes(nonce)))
		b64 := base64.RawURLEncoding.EncodeToString
		want := sealed{b64(epk), b64(nonce), b64(box)}
		if got != want {
			t.Errorf("sealWith = %+v;\nwant %+v", got, want)
		}
	})

	t.Run("Go opens what the page sealed", func(t *testing.T) {
		lengths := map[int]bool{}
		for _, choice := range []string{"consent", "refuse"} {
			frame := evalJS[string](t, ctx, fmt.Sprintf(`KioskSeal.sealFrame(%q, {type: "slip", choice: %q, round: 3})`, pub, choice))
			lengths[len(frame)] = true
			got, err := s.OpenFrame([]byte(frame))
			if err != nil {
				t.Fatalf("OpenFrame(page's %s frame %s): %v", choice, frame, err)
			}
			want := fmt.Sprintf(`{"type":"slip","choice":%q,"round":3}`, choice)
			if string(got) != want {
				t.Errorf("OpenFrame(page's %s frame) = %s; want %s", choice, got, want)
			}
			var m map[string]any
			if err := json.Unmarshal(got, &m); err != nil {
				t.Errorf("opened %s slip is not JSON: %v", choice, err)
			}
		}
		if len(lengths) != 1 {
			t.Errorf("sealed consent and refuse frames have lengths %v; want one length", lengths)
		}
	})

	t.Run("page refuses", func(t *testing.T) {
		tests := []struct{ name, expr string }{
			{"a message over 96 bytes", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, strings.Repeat("x", SealedPlaintextLen+1))},
			{"96 bytes that are 97 in UTF-8", fmt.Sprintf(`KioskSeal.seal(%q, %q)`, pub, "ø"+strings.Repeat("x", SealedPlaintextLen-1))},
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
