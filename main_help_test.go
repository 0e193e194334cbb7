package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAndVersion: -h is an answer, not an error: it exits 0, says what
// the kiosk is and shows an example; each argument name is shown once.
// -version prints the version the release build stamped in.
func TestHelpAndVersion(t *testing.T) {
	bin := kioskBinary(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("consent-kiosk -h: %v\n%s", err, out)
	}
	help := string(out)
	for _, want := range []string{"record a lecture only while everyone in the room consents", "  consent-kiosk -addr :9090", "-no-browser", "-version", "-retention DAYS", "-fault-retry DURATION"} {
		if !strings.Contains(help, want) {
			t.Errorf("-h lacks %q:\n%s", want, help)
		}
	}
	if n := strings.Count(help, "HOST:PORT"); n != 1 {
		t.Errorf("-h says HOST:PORT %d times; want once:\n%s", n, help)
	}
	if strings.Contains(help, " long") && strings.Contains(help, "-retention long") {
		t.Errorf("-h shows -retention long:\n%s", help)
	}
	if out, err := exec.Command(bin, "-no-such-flag").CombinedOutput(); err == nil {
		t.Errorf("an unknown flag exited 0:\n%s", out)
	}

	stamped := filepath.Join(t.TempDir(), "consent-kiosk")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", stamped, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(stamped, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "consent-kiosk v9.8.7" {
		t.Errorf("consent-kiosk -version = %q, %v; want consent-kiosk v9.8.7", out, err)
	}
}
