package kiosk

import (
	"errors"
	"strings"
	"testing"

	"github.com/consent-kiosk/kiosk/tally"
)

const goodDevice = "abcdefghijklmnopqrstuv" // 22 characters: the shortest allowed

func TestDecodePhoneMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want phoneMessage // compared only when ok
		ok   bool
	}{
		{"hello", `{"type":"hello","join":"tok","device":"` + goodDevice + `"}`, phoneMessage{Type: "hello", Join: "tok", Device: goodDevice}, true},
		{"hello without join", `{"type":"hello","device":"` + goodDevice + `"}`, phoneMessage{Type: "hello", Device: goodDevice}, true},
		{"hello hex device", `{"type":"hello","device":"` + strings.Repeat("0f", 16) + `"}`, phoneMessage{Type: "hello", Device: strings.Repeat("0f", 16)}, true},
		{"hello 128-char device", `{"type":"hello","device":"` + strings.Repeat("a", 128) + `"}`, phoneMessage{Type: "hello", Device: strings.Repeat("a", 128)}, true},
		{"hello device too short", `{"type":"hello","device":"` + goodDevice[:21] + `"}`, phoneMessage{}, false},
		{"hello device too long", `{"type":"hello","device":"` + strings.Repeat("a", 129) + `"}`, phoneMessage{}, false},
		{"hello device with bad characters", `{"type":"hello","device":"abcdefghijklmnopqrstu+="}`, phoneMessage{}, false},
		{"hello device with markup", `{"type":"hello","device":"<script>alert(1)</script>xx"}`, phoneMessage{}, false},
		{"hello without device", `{"type":"hello","join":"tok"}`, phoneMessage{}, false},
		{"hello device not a string", `{"type":"hello","device":12345678901234567890123}`, phoneMessage{}, false},
		{"hello join too long", `{"type":"hello","join":"` + strings.Repeat("j", 257) + `","device":"` + goodDevice + `"}`, phoneMessage{}, false},
		{"slip consent", `{"type":"slip","choice":"consent"}`, phoneMessage{Type: "slip", Choice: tally.ChoiceConsent}, true},
		{"slip refuse", `{"type":"slip","choice":"refuse"}`, phoneMessage{Type: "slip", Choice: tally.ChoiceRefuse}, true},
		{"slip none withdraws", `{"type":"slip","choice":"none"}`, phoneMessage{Type: "slip", Choice: tally.ChoiceNone}, true},
		{"slip with round", `{"type":"slip","choice":"consent","round":4}`, phoneMessage{Type: "slip", Choice: tally.ChoiceConsent, Round: 4}, true},
		{"slip round zero", `{"type":"slip","choice":"consent","round":0}`, phoneMessage{}, false},
		{"slip round fraction", `{"type":"slip","choice":"consent","round":1.5}`, phoneMessage{}, false},
		{"slip without choice", `{"type":"slip"}`, phoneMessage{}, false},
		{"slip unknown choice", `{"type":"slip","choice":"yes"}`, phoneMessage{}, false},
		{"slip choice in capitals", `{"type":"slip","choice":"CONSENT"}`, phoneMessage{}, false},
		{"slip null choice", `{"type":"slip","choice":null}`, phoneMessage{}, false},
		{"leave", `{"type":"leave"}`, phoneMessage{Type: "leave"}, true},
		{"unknown type", `{"type":"vote"}`, phoneMessage{}, false},
		{"no type", `{"choice":"consent"}`, phoneMessage{}, false},
		{"unknown field", `{"type":"leave","x":1}`, phoneMessage{}, false},
		{"trailing data", `{"type":"leave"}{"type":"leave"}`, phoneMessage{}, false},
		{"trailing garbage", `{"type":"leave"} x`, phoneMessage{}, false},
		{"array", `[{"type":"leave"}]`, phoneMessage{}, false},
		{"empty", ``, phoneMessage{}, false},
		{"not json", `consent`, phoneMessage{}, false},
		{"duplicate keys, last wins", `{"type":"slip","choice":"consent","choice":"refuse"}`, phoneMessage{Type: "slip", Choice: tally.ChoiceRefuse}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePhoneMessage([]byte(tt.in))
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("decodePhoneMessage(%.80s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Errorf("decodePhoneMessage(%.80s) = %+v; want an error", tt.in, got)
			} else if !errors.Is(err, errBadMessage) {
				t.Errorf("decodePhoneMessage(%.80s) error %v does not wrap errBadMessage", tt.in, err)
			}
		})
	}
}

// FuzzDecodePhoneMessage checks that the decoder never panics and that
// whatever it accepts is a message the kiosk can act on.
func FuzzDecodePhoneMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","join":"tok","device":"` + goodDevice + `"}`,
		`{"type":"slip","choice":"consent","round":1}`,
		`{"type":"slip","choice":"refuse"}`,
		`{"type":"leave"}`,
		`{"type":"slip","choice":"consent"} x`,
		`{"type":"hello","device":null}`,
		`{"type":"slip","round":-9223372036854775808,"choice":"none"}`,
		"\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodePhoneMessage(data)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		switch m.Type {
		case msgHello:
			if !deviceSecretPattern.MatchString(m.Device) || len(m.Join) > maxJoinTokenLen {
				t.Fatalf("accepted a bad hello: %+v", m)
			}
		case msgSlip:
			if m.Choice > tally.ChoiceRefuse || m.Round < 0 {
				t.Fatalf("accepted a bad slip: %+v", m)
			}
		case msgLeave:
		default:
			t.Fatalf("accepted unknown type %q", m.Type)
		}
	})
}
