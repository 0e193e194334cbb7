package tally

import (
	"context"
	"testing"
)

// TestUnreachableKeepsTheCountTrue: while phones cannot reach the kiosk it
// is locked, and what it publishes still follows every slip: a withdrawal,
// a fresh consent and a refusal made meanwhile (phones on the LAN, or a
// relay that came back for some) show at once. Once phones reach it again
// it unlocks as the rule says, and the record has no interval for the gap.
func TestUnreachableKeepsTheCountTrue(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	if st := s.State(); !st.Unlocked {
		t.Fatalf("all consent: %+v; want unlocked", st)
	}

	mustDo(t, s.SetUnreachable(ctx, true))
	want := func(step string, received int) {
		t.Helper()
		st := s.State()
		if st.Unlocked || st.Reason != ReasonUnreachable || st.Received != received {
			t.Errorf("%s while unreachable: unlocked %v (%s), received %d; want locked (unreachable), %d", step, st.Unlocked, st.Reason, st.Received, received)
		}
	}
	want("the relay lost", 2)
	must[Slip](t)(s.Leave(ctx, phone(0)))
	want("a withdrawal", 1)
	must[Slip](t)(s.Admit(ctx, phone(0)))
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0))
	want("a fresh consent", 2)
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceRefuse, 0))
	want("a refusal", 2)
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceConsent, 0))
	want("consent again", 2)

	mustDo(t, s.SetUnreachable(ctx, false))
	if st := s.State(); !st.Unlocked || st.Received != 2 {
		t.Errorf("reachable again, all consent: %+v; want unlocked, 2 received", st)
	}
	ivs := record(t, s, s.State().Round.ID).Intervals
	if len(ivs) != 2 || ivs[0].Why != EndUnreachable || ivs[1].End != nil {
		t.Errorf("the record: %+v; want an interval ended by unreachable, then an open one", ivs)
	}
}
