package kiosk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitForFile polls until the file's content satisfies ok, bounded.
func waitForFile(t *testing.T, path string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if ok(string(b)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after 15s: %q", path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHooksFollowTransitions(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	k := newTestKiosk(t)
	log := filepath.Join(t.TempDir(), "hooks.log")
	// The unlock hook runs like a recorder in the foreground until the lock
	// interrupts it.
	h := Hooks{
		OnUnlock: `trap 'echo interrupted >> ` + log + `; exit 0' INT; echo "unlock $KIOSK_UNLOCKED" >> ` + log + `; while :; do sleep 0.05; done`,
		OnLock:   `echo "lock $KIOSK_UNLOCKED $KIOSK_REASON" >> ` + log,
		Shell:    true,
		Timeout:  time.Minute,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx, k.store); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	waitForFile(t, log, func(s string) bool { return s == "lock false no-headcount\n" })
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	waitForFile(t, log, func(s string) bool { return strings.HasSuffix(s, "unlock true\n") })
	p.slip("refuse")
	got := waitForFile(t, log, func(s string) bool {
		return strings.Contains(s, "lock false refused\n") && strings.Contains(s, "interrupted")
	})
	want := []string{"lock false no-headcount", "unlock true", "interrupted", "lock false refused"}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != len(want) {
		t.Fatalf("hook log %q; want lines %q", lines, want)
	}
	// The interruption and the lock hook run concurrently; both must happen.
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || l == w
		}
		if !found {
			t.Errorf("hook log %q lacks %q", lines, w)
		}
	}
}

func TestHooksWithoutShellDoNotExpand(t *testing.T) {
	if _, err := exec.LookPath("touch"); err != nil {
		t.Skip("no touch")
	}
	k := newTestKiosk(t)
	dir := t.TempDir()
	h := Hooks{OnLock: "touch " + filepath.Join(dir, "$HOME"), Timeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx, k.store); close(done) }()
	defer func() { cancel(); <-done }()
	// Without a shell, "$HOME" is a plain file name.
	waitForFile(t, filepath.Join(dir, "$HOME"), func(string) bool {
		_, err := os.Stat(filepath.Join(dir, "$HOME"))
		return err == nil
	})
}
