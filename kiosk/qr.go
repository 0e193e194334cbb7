package kiosk

import (
	"runtime"
	"strings"

	"github.com/skip2/go-qrcode"
)

// qrSize in pixels: the projector page scales the image up with crisp
// edges, so this only needs enough pixels per module to stay sharp.
const qrSize = 512

// qrPNG returns the QR code for u as a PNG. The image for the current join
// URL is kept, since every projector refresh asks for the same one.
func (s *Server) qrPNG(u string) ([]byte, error) {
	s.qrMu.Lock()
	defer s.qrMu.Unlock()
	if s.qrFor == u {
		return s.qrImage, nil
	}
	// Medium error correction survives a projector's glare and a phone
	// camera at an angle, while keeping modules large enough to scan from
	// the back of a hall.
	png, err := qrcode.Encode(u, qrcode.Medium, qrSize)
	if err != nil {
		return nil, err
	}
	s.qrFor, s.qrImage = u, png
	return png, nil
}

// TerminalQR draws u as a QR code with Unicode half blocks, for the
// terminal the kiosk was started from. Scanners need dark modules on a
// light ground with a quiet zone around; a terminal's own colours may be
// either way round, so each line sets black on white itself (ANSI) and
// the code keeps its four-module border. On Windows, whose console may
// not take ANSI colours, it draws for a dark terminal, the default there.
func TerminalQR(u string) (string, error) {
	return terminalQR(u, runtime.GOOS != "windows")
}

func terminalQR(u string, color bool) (string, error) {
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
