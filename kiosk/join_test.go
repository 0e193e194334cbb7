package kiosk

import (
	"strings"
	"testing"
	"time"
)

func TestJoinTokens(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 7, 0, time.UTC)}
	j := joinTokens{key: []byte("0123456789abcdef0123456789abcdef"), now: clk.Now}
	other := joinTokens{key: []byte("another key, another kiosk......"), now: clk.Now}
	tok, expires := j.current()
	if len(tok) != 22 {
		t.Errorf("token %q has %d characters; want 22 (short enough for a big QR code)", tok, len(tok))
	}
	if got := expires.Sub(clk.Now()); got <= joinPeriod || got > joinValidFor {
		t.Errorf("token valid for %v more; want between %v and %v", got, joinPeriod, joinValidFor)
	}
	otherTok, _ := other.current()
	issued := clk.Now()
	tests := []struct {
		name  string
		at    time.Time
		token string
		want  error
	}{
		{"fresh", issued, tok, nil},
		{"after one rotation", issued.Add(joinPeriod), tok, nil},
		{"just before expiry", expires.Add(-time.Second), tok, nil},
		{"at expiry", expires, tok, errJoinExpired},
		{"an hour later", issued.Add(time.Hour), tok, errJoinExpired},
		{"another kiosk's token", issued, otherTok, errJoinInvalid},
		{"garbage", issued, "not a token", errJoinInvalid},
		{"empty", issued, "", errJoinInvalid},
		{"truncated", issued, tok[:21], errJoinInvalid},
		{"flipped character", issued, flip(tok, 10), errJoinInvalid},
		{"period changed", issued, flip(tok, 3), errJoinInvalid},
		{"padding bits set", issued, setPaddingBits(tok), errJoinInvalid},
	}
	for _, tt := range tests {
		clk.mu.Lock()
		clk.now = tt.at
		clk.mu.Unlock()
		if got := j.verify(tt.token); got != tt.want {
			t.Errorf("%s: verify = %v; want %v", tt.name, got, tt.want)
		}
	}
	// A token from the future (the clock moved back) is refused too.
	future := joinTokens{key: j.key, now: func() time.Time { return clk.Now().Add(time.Hour) }}
	ft, _ := future.current()
	if got := j.verify(ft); got != errJoinInvalid {
		t.Errorf("future token: verify = %v; want errJoinInvalid", got)
	}
}

// setPaddingBits respells tok with the unused low bits of its last
// character set: the same bytes to a lenient decoder.
func setPaddingBits(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|0x0f])
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func FuzzJoinTokenVerify(f *testing.F) {
	j := joinTokens{key: []byte("0123456789abcdef0123456789abcdef"), now: time.Now}
	tok, _ := j.current()
	for _, s := range []string{tok, "", "AAAAAAAAAAAAAAAAAAAAAA", "////", tok + "="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := j.verify(s)
		if err == nil && s != tok {
			// Another valid token can only be this period's or the last.
			prev := joinTokens{key: j.key, now: func() time.Time { return time.Now().Add(-joinPeriod) }}
			if p, _ := prev.current(); s != p {
				t.Fatalf("verify accepted %q, which this kiosk did not issue", s)
			}
		}
	})
}

func TestJoinCodes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 7, 0, time.UTC)}
	j := joinTokens{key: []byte("0123456789abcdef0123456789abcdef"), now: clk.Now}
	code := j.currentCode()
	if len(code) != codeLen {
		t.Fatalf("code %q has %d characters; want %d", code, len(code), codeLen)
	}
	for _, r := range code {
		if !strings.ContainsRune(codeAlphabet, r) {
			t.Errorf("code %q has %q, which is not in the alphabet", code, r)
		}
	}
	for _, lookalike := range "01OILUV8B5S2Z6G" {
		if strings.ContainsRune(codeAlphabet, lookalike) {
			t.Errorf("alphabet has the look-alike %q", lookalike)
		}
	}
	token, _ := j.current()
	issued := clk.Now()
	spaced := strings.ToLower(code[:3]) + " " + code[3:]
	tests := []struct {
		name      string
		at        time.Time
		typed     string
		wantToken string
		wantErr   error
	}{
		{"fresh", issued, code, token, nil},
		{"typed in lower case with a space", issued, spaced, token, nil},
		{"typed with a dash", issued, code[:3] + "-" + code[3:], token, nil},
		{"after one rotation: the same token", issued.Add(joinPeriod), code, token, nil},
		{"at expiry", issued.Add(joinValidFor), code, "", errJoinExpired},
		{"long expired", issued.Add(time.Hour), code, "", errJoinInvalid},
		{"wrong code", issued, flipCode(code), "", errJoinInvalid},
		{"too short", issued, code[:5], "", errJoinInvalid},
		{"too long", issued, code + "2", "", errJoinInvalid},
		{"empty", issued, "", "", errJoinInvalid},
	}
	for _, tt := range tests {
		clk.mu.Lock()
		clk.now = tt.at
		clk.mu.Unlock()
		got, err := j.verifyCode(tt.typed)
		if got != tt.wantToken || err != tt.wantErr {
			t.Errorf("%s: verifyCode(%q) = %q, %v; want %q, %v", tt.name, tt.typed, got, err, tt.wantToken, tt.wantErr)
		}
		if err == nil {
			if verr := j.verify(got); verr != nil {
				t.Errorf("%s: the token for a good code does not verify: %v", tt.name, verr)
			}
		}
	}
	// Codes rotate with the token: the next period has another.
	clk.mu.Lock()
	clk.now = issued.Add(joinPeriod)
	clk.mu.Unlock()
	if next := j.currentCode(); next == code {
		t.Errorf("code %q did not change after a rotation", code)
	}
}

func flipCode(c string) string {
	b := []byte(c)
	if b[0] == '2' {
		b[0] = '3'
	} else {
		b[0] = '2'
	}
	return string(b)
}

// TestJoinTokenHasOneSpelling: a token with a line break inside, which
// base64 decoders skip, is not the token.
func TestJoinTokenHasOneSpelling(t *testing.T) {
	j := joinTokens{key: []byte("0123456789abcdef0123456789abcdef"), now: time.Now}
	tok, _ := j.current()
	if err := j.verify(tok); err != nil {
		t.Fatalf("the token itself: %v", err)
	}
	for _, s := range []string{tok[:8] + "\n" + tok[8:], tok[:8] + "\r" + tok[8:], tok + "\n"} {
		if j.verify(s) == nil {
			t.Errorf("verify accepted %q", s)
		}
	}
}
