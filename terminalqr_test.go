package main

import (
	"strings"
	"testing"
)

// TestTerminalQRReadsOnAnyTerminal: the terminal QR code sets its own
// black-on-white colours on every line, and keeps a light quiet zone of
// at least four modules around the code (two lines of half blocks).
func TestTerminalQRReadsOnAnyTerminal(t *testing.T) {
	qr, err := drawTerminalQR("http://192.168.1.23:8080/lecturer?login=x", true)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(qr, "\n"), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "\x1b[30;107m") || !strings.HasSuffix(l, "\x1b[0m") {
			t.Fatalf("line %d = %q; want black on white set on the line itself", i, l)
		}
	}
	body := func(l string) string {
		return strings.TrimSuffix(strings.TrimPrefix(l, "\x1b[30;107m"), "\x1b[0m")
	}
	for _, i := range []int{0, 1, len(lines) - 2} {
		if strings.Trim(body(lines[i]), " ") != "" {
			t.Errorf("line %d = %q; want the light quiet zone", i, body(lines[i]))
		}
	}
	for i, l := range lines[2 : len(lines)-2] {
		if r := []rune(body(l)); len(r) < 8 || string(r[:4]) != "    " || string(r[len(r)-4:]) != "    " {
			t.Errorf("line %d = %q; want four light modules either side", i+2, body(l))
		}
	}
}
