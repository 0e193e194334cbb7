// Package browsertest starts Debian's Chromium for the tests that drive the
// real pages. Without Chromium the tests skip, unless KIOSK_REQUIRE_BROWSER=1
// asks for a failure instead: CI sets it, so they cannot silently vanish.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Exec is the browser the tests drive.
const Exec = "/usr/bin/chromium"

// Budget bounds one browser test from start to finish; a run takes well
// under a minute on two busy cores.
const Budget = 4 * time.Minute

// Required reports whether a missing browser fails the test.
func Required() bool { return os.Getenv("KIOSK_REQUIRE_BROWSER") == "1" }

// SkipOrFail skips the test because something it needs is missing, or
// fails it when Required.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("KIOSK_REQUIRE_BROWSER=1, but %s", msg)
	}
	t.Skipf("skipping: %s (set KIOSK_REQUIRE_BROWSER=1 to fail instead)", msg)
}

// Start starts a headless Chromium with a fresh profile; it stops when the
// test ends.
func Start(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(Exec); err != nil {
		SkipOrFail(t, "no browser at %s (apt-get install chromium): %v", Exec, err)
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Exec),
		chromedp.Headless,
		// Tests often run as root in a container, where Chromium's sandbox
		// cannot start; the pages loaded are our own.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// Nothing but loopback is reachable; keep Chromium from trying, and
		// from spending the shared cores on updates.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		// Chromium keeps its singleton socket under TMPDIR and leaves it
		// behind when killed; keep it inside the test's own directory.
		chromedp.Env("TMPDIR="+dir),
	)
	budget, cancelBudget := context.WithTimeout(context.Background(), Budget)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(budget, opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelBudget()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", Exec, err)
	}
	return ctx
}

// Eval evaluates a JavaScript expression in the browser's tab and returns
// its value.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %.120s: %v", expr, err)
	}
	return v
}
