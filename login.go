package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// writeLoginLink writes a new lecturer sign-in link, and its QR code only
// when asked for: the terminal is often mirrored on the projector at the
// start of class, and a QR code there is read by every phone in the room.
// The link itself works once and expires; the QR code would be one scan.
func writeLoginLink(w io.Writer, newLink func() (string, time.Time), qr bool) {
	link, expires := newLink()
	var b strings.Builder
	fmt.Fprintf(&b, "  Lecturer sign-in link:     %s\n", link)
	fmt.Fprintf(&b, "                             (works once, until %s; press Enter here for a new one)\n", expires.Local().Format("15:04"))
	if qr {
		if code, err := terminalQR(link); err == nil {
			b.WriteString(code)
			fmt.Fprintf(&b, "  Scan to sign in on a tablet or phone. Anyone who sees this code can sign in until it is used.\n")
		}
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// printLoginLinks writes a new sign-in link each time a line is read from
// in (the lecturer presses Enter), until in ends or ctx is done. Reading
// blocks, so a kiosk started without a terminal simply never prints one;
// scripts use GET /api/login-link instead.
func printLoginLinks(ctx context.Context, in io.Reader, out io.Writer, qr bool, newLink func() (string, time.Time)) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if ctx.Err() != nil {
			return
		}
		writeLoginLink(out, newLink, qr)
	}
}
