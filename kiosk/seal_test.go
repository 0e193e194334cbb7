package kiosk

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

// sealed is one message sealed as a phone page seals it.
type sealed struct{ seal.Request }

// sealFor seals msg as frame seq of the connection with the given challenge
// to the kiosk whose public key is kioskPub, and returns the frame's text
// and what opens the answer.
func sealFor(t testing.TB, kioskPub []byte, msg string, challenge []byte, seq uint32) (string, sealed) {
	t.Helper()
	frame, r, err := seal.NewRequest(kioskPub, msg, challenge, seq)
	if err != nil {
		t.Fatal(err)
	}
	return string(frame), sealed{r}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// openAnswer opens the kiosk's sealed answer to s.
func (s sealed) openAnswer(t testing.TB, frame []byte) (string, error) {
	t.Helper()
	text, err := s.OpenAnswer(frame)
	return string(text), err
}

// TestSealedAnswersHaveEqualLength: whatever the kiosk answers to a sealed
// frame — an ack of either choice, a withdrawal, an error — the answer
// frame has one length.
func TestSealedAnswersHaveEqualLength(t *testing.T) {
	s := seal.NewSealer(randomBytes(t, 32))
	challenge := randomBytes(t, seal.ChallengeLen)
	frame, _ := sealFor(t, s.PublicKey(), `{"type":"leave"}`, challenge, 1)
	o, err := s.OpenFrame([]byte(frame), challenge)
	if err != nil {
		t.Fatal(err)
	}
	lengths := map[int]string{}
	for _, answer := range []string{
		string(ackFrame(tally.Slip{Choice: tally.ChoiceConsent, Round: 3})),
		string(ackFrame(tally.Slip{Choice: tally.ChoiceRefuse, Round: 3})),
		string(ackFrame(tally.Slip{Choice: tally.ChoiceNone, Round: 3})),
		string(errorFrame(tally.ErrStorage)),
	} {
		b, err := o.SealReply([]byte(answer))
		if err != nil {
			t.Fatal(err)
		}
		lengths[len(b)] = answer
	}
	if len(lengths) != 1 {
		t.Errorf("sealed answers have lengths %v; want one length", lengths)
	}
	if _, err := o.SealReply(bytes.Repeat([]byte("x"), seal.ReplyLen+1)); err == nil {
		t.Error("SealReply of an over-long answer = nil error; want an error")
	}
}
