package main

import (
	"runtime"
	"strings"

	"github.com/skip2/go-qrcode"
)

// terminalQR draws u as a QR code with Unicode half blocks, for the
// terminal the kiosk was started from. Scanners need dark modules on a
// light ground with a quiet zone around; a terminal's own colours may be
// either way round, so each line sets black on white itself (ANSI) and
// the code keeps its four-module border. On Windows, whose console may
// not take ANSI colours, it draws for a dark terminal, the default there.
func terminalQR(u string) (string, error) {
	return drawTerminalQR(u, runtime.GOOS != "windows")
}

func drawTerminalQR(u string, color bool) (string, error) {
	q, err := qrcode.New(u, qrcode.Low)
	if err != nil {
		return "", err
	}
	if !color {
		return q.ToSmallString(false), nil
	}
	bits := q.Bitmap() // true is dark; includes the quiet zone
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		b.WriteString("\x1b[30;107m")
		for x := range bits[y] {
			top, bottom := bits[y][x], y+1 < len(bits) && bits[y+1][x]
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\x1b[0m\n")
	}
	return b.String(), nil
}
