package kiosk

import (
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
