package hooks

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// hall is a real store with one round, which the tests move between
// locked and unlocked as phones would.
type hall struct {
	t     *testing.T
	store *tally.Store
	round int64
}

func newHall(t *testing.T) *hall {
	t.Helper()
	ctx := context.Background()
	s, err := tally.Open(ctx, filepath.Join(t.TempDir(), "kiosk.db"), tally.Options{FaultRetry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := s.NewRound(ctx, tally.RoundSpec{Purpose: "Lecture video for enrolled students"})
	if err != nil {
		t.Fatal(err)
	}
	return &hall{t: t, store: s, round: r.ID}
}

func (h *hall) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// cast admits the device and casts its choice in the current round.
func (h *hall) cast(device string, c tally.Choice) {
	h.t.Helper()
	ctx := context.Background()
	secret := strings.Repeat(device, 43)[:43]
	_, err := h.store.Admit(ctx, secret)
	h.must(err)
	_, err = h.store.Cast(ctx, secret, c, h.round)
	h.must(err)
}

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
	k := newHall(t)
	log := filepath.Join(t.TempDir(), "hooks.log")
	// The unlock hook runs like a recorder in the foreground until the lock
	// interrupts it.
	h := Commands{
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
	k.must(k.store.SetHeadcount(context.Background(), 1))
	k.cast("a", tally.ChoiceConsent)
	waitForFile(t, log, func(s string) bool { return strings.HasSuffix(s, "unlock true\n") })
	k.cast("a", tally.ChoiceRefuse)
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
	k := newHall(t)
	dir := t.TempDir()
	h := Commands{OnLock: "touch " + filepath.Join(dir, "$HOME"), Timeout: time.Minute}
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
