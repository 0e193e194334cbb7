package kiosk

import "github.com/skip2/go-qrcode"

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
