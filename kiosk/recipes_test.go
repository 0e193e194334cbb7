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

// The recipes in docs/recipes are run here against a live kiosk, so that
// what the documentation tells recorders to do is known to work.

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

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func TestRecipeRecordWhileUnlocked(t *testing.T) {
	needTools(t, "sh", "curl", "sed")
	k := newTestKiosk(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "recorder.log")
	// A stand-in for ffmpeg: records until SIGTERM, then closes its file.
	recorder := filepath.Join(dir, "recorder")
	os.WriteFile(recorder, []byte("#!/bin/sh\ntrap 'echo stopped >> "+log+"; exit 0' TERM\necho started >> "+log+"\nwhile :; do sleep 0.05; done\n"), 0o755)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sh", "../docs/recipes/record-while-unlocked.sh")
	cmd.Env = append(os.Environ(), "KIOSK="+k.http.URL, "RECORD_CMD="+recorder)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })

	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	waitForFile(t, log, func(s string) bool { return s == "started\n" })
	p.slip("refuse")
	waitForFile(t, log, func(s string) bool { return s == "started\nstopped\n" })
	p.slip("consent")
	got := waitForFile(t, log, func(s string) bool { return strings.Count(s, "started") == 2 })
	if got != "started\nstopped\nstarted\n" {
		t.Errorf("recorder log %q", got)
	}
	// No answer from the kiosk means locked: the recording stops.
	k.stop()
	waitForFile(t, log, func(s string) bool { return strings.HasSuffix(s, "started\nstopped\n") })
}

func TestRecipeFollowEvents(t *testing.T) {
	needTools(t, "sh", "curl")
	k := newTestKiosk(t)
	out := filepath.Join(t.TempDir(), "events.log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sh", "../docs/recipes/follow-events.sh")
	cmd.Env = append(os.Environ(), "KIOSK="+k.http.URL)
	cmd.Stdout = f
	cmd.WaitDelay = 0
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })

	waitForFile(t, out, func(s string) bool { return s == "locked\n" })
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	waitForFile(t, out, func(s string) bool { return strings.HasSuffix(s, "unlocked\n") })
	p.slip("refuse")
	waitForFile(t, out, func(s string) bool { return strings.HasSuffix(s, "unlocked\nlocked\n") })
}
