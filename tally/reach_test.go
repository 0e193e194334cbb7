package tally

import (
	"context"
	"testing"
	"time"
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

// TestRelayLossEndsTheIntervalAsUnreachable: when phones lose their way to
// the kiosk while the writer is busy, a phone change it serves before
// SetUnreachable's own change must not end the record's unlocked interval
// as a slip change: the record says the relay was lost (R8).
func TestRelayLossEndsTheIntervalAsUnreachable(t *testing.T) {
	ctx := context.Background()
	ss := openStalling(t)
	must[Round](t)(ss.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students"}))
	mustDo(t, ss.SetHeadcount(ctx, 2))
	castAll(t, ss.Store, 2, ChoiceConsent)
	if !ss.State().Unlocked {
		t.Fatal("all consent: want unlocked")
	}
	ss.stallCommit(t)
	lost := make(chan error, 1)
	go func() { lost <- ss.SetUnreachable(ctx, true) }()
	for !ss.unreachable.Load() {
		time.Sleep(time.Millisecond) // until SetUnreachable has set the flag
	}
	// A phone sends its slip again, as pages do when they reconnect; the
	// writer serves it while it commits.
	must[Slip](t)(ss.Cast(ctx, phone(0), ChoiceConsent, 0))
	ss.letGo()
	mustDo(t, <-lost)
	ivs := record(t, ss.Store, ss.State().Round.ID).Intervals
	if len(ivs) != 1 || ivs[0].Why != EndUnreachable {
		t.Errorf("the record: %+v; want the one interval ended by unreachable", ivs)
	}
}

// TestRoundEndedWhileUnreachable: a round that ends while phones cannot
// reach the kiosk ended locked, whatever the slips said, since a
// withdrawal may not have got through: the record says unreachable, and a
// series does not remember its phones' consent from it (R5, R8).
func TestRoundEndedWhileUnreachable(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	first := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students", Series: "INF100"}))
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	mustDo(t, s.SetUnreachable(ctx, true))
	second := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students", Series: "INF100"}))
	if rec := record(t, s, first.ID); rec.Outcome != string(ReasonUnreachable) {
		t.Errorf("the round that ended while unreachable: outcome %q; want %q", rec.Outcome, ReasonUnreachable)
	}
	mustDo(t, s.SetUnreachable(ctx, false))
	if slip := must[Slip](t)(s.Rejoin(ctx, phone(0))); slip.Round != second.ID || slip.SeriesDay != "" {
		t.Errorf("a phone in the next round of the series: %+v; want no earlier consent offered", slip)
	}
}
