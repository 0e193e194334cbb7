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
		`{"type":"hello","device":"` + goodDevice + `","seen":4294967302}`,
		`{"type":"slip","choice":"consent","device":"` + goodDevice + `"}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overHTTP bool) {
		m, err := decodeMessage(data, overHTTP)
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
		if (overHTTP && !deviceSecretPattern.MatchString(m.Device)) || (m.HasSeen && (!overHTTP || m.Type != msgHello)) {
			t.Fatalf("accepted %+v over HTTP=%v", m, overHTTP)
		}
	})
}

func TestDecodePhoneRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want phoneMessage // compared only when ok
		ok   bool
	}{
		{"hello", `{"type":"hello","join":"tok","device":"` + goodDevice + `"}`, phoneMessage{Type: "hello", Join: "tok", Device: goodDevice}, true},
		{"long-polling hello", `{"type":"hello","device":"` + goodDevice + `","seen":42}`, phoneMessage{Type: "hello", Device: goodDevice, Seen: 42, HasSeen: true}, true},
		{"slip", `{"type":"slip","choice":"consent","round":2,"device":"` + goodDevice + `"}`, phoneMessage{Type: "slip", Choice: tally.ChoiceConsent, Round: 2, Device: goodDevice}, true},
		{"leave", `{"type":"leave","device":"` + goodDevice + `"}`, phoneMessage{Type: "leave", Device: goodDevice}, true},
		{"slip without device", `{"type":"slip","choice":"consent"}`, phoneMessage{}, false},
		{"leave with a bad device", `{"type":"leave","device":"short"}`, phoneMessage{}, false},
		{"seen on a slip", `{"type":"slip","choice":"consent","seen":1,"device":"` + goodDevice + `"}`, phoneMessage{}, false},
		{"negative seen", `{"type":"hello","device":"` + goodDevice + `","seen":-1}`, phoneMessage{}, false},
	}
	for _, tt := range tests {
		got, err := decodePhoneRequest([]byte(tt.in))
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("%s: decodePhoneRequest(%.80s) = %+v, %v; want %+v", tt.name, tt.in, got, err, tt.want)
		}
		if !tt.ok && (err == nil || !errors.Is(err, errBadMessage)) {
			t.Errorf("%s: decodePhoneRequest(%.80s) = %+v, %v; want an error wrapping errBadMessage", tt.name, tt.in, got, err)
		}
	}
	// Over the websocket, a slip names no device and a hello no "seen".
	for _, in := range []string{
		`{"type":"slip","choice":"consent","device":"` + goodDevice + `"}`,
		`{"type":"hello","device":"` + goodDevice + `","seen":1}`,
	} {
		if m, err := decodePhoneMessage([]byte(in)); err == nil {
			t.Errorf("decodePhoneMessage(%s) = %+v; want an error", in, m)
		}
	}
}
