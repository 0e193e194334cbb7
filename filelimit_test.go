//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const fileLimitChildEnv = "KIOSK_FILE_LIMIT_CHILD"

// TestRaiseFileLimit lowers the soft limit on open files in a child
// process (so this process's limit is left alone), then checks that
// raiseFileLimit raises it to what is asked, never lowers it, and stops at
// the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	if os.Getenv(fileLimitChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRaiseFileLimit$", "-test.count=1")
		cmd.Env = append(os.Environ(), fileLimitChildEnv+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const low = 64
	if lim.Max < 4*low {
		t.Skipf("hard limit %d is too low to test with", lim.Max)
	}
	lim.Cur = low
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, err := raiseFileLimit(2 * low); got != 2*low || err != nil {
		t.Errorf("raiseFileLimit(%d) from %d = %d, %v; want %d", 2*low, low, got, err, 2*low)
	}
	if got, err := raiseFileLimit(low); got != 2*low || err != nil {
		t.Errorf("raiseFileLimit(%d) from %d = %d, %v; want %d kept", low, 2*low, got, err, 2*low)
	}
	if got, _ := raiseFileLimit(lim.Max + 1); got != lim.Max {
		t.Errorf("raiseFileLimit(hard %d + 1) = %d; want the hard limit", lim.Max, got)
	}
}
