package tally

import "testing"

func TestDecide(t *testing.T) {
	locked := func(r Reason) Verdict { return Verdict{Reason: r} }
	unlocked := Verdict{Unlocked: true}
	tests := []struct {
		name string
		in   Counts
		want Verdict
	}{
		{"nothing set", Counts{}, locked(ReasonNoHeadcount)},
		{"headcount 0 with slips", Counts{Headcount: 0, Consents: 3}, locked(ReasonNoHeadcount)},
		{"negative headcount", Counts{Headcount: -1}, locked(ReasonNoHeadcount)},
		{"headcount set, no slips", Counts{Headcount: 3}, locked(ReasonWaiting)},
		{"one slip missing", Counts{Headcount: 3, Consents: 2}, locked(ReasonWaiting)},
		{"early refusal reads waiting", Counts{Headcount: 3, Consents: 1, Refusals: 1}, locked(ReasonWaiting)},
		{"all refused but one missing", Counts{Headcount: 3, Refusals: 2}, locked(ReasonWaiting)},
		{"all consent", Counts{Headcount: 3, Consents: 3}, unlocked},
		{"headcount 1, one consent", Counts{Headcount: 1, Consents: 1}, unlocked},
		{"all in, one refusal", Counts{Headcount: 3, Consents: 2, Refusals: 1}, locked(ReasonRefused)},
		{"all in, all refuse", Counts{Headcount: 3, Refusals: 3}, locked(ReasonRefused)},
		{"overcount of consents", Counts{Headcount: 3, Consents: 4}, locked(ReasonOvercount)},
		{"overcount with a refusal", Counts{Headcount: 3, Consents: 3, Refusals: 1}, locked(ReasonOvercount)},
		{"after a leave the count fits again", Counts{Headcount: 3, Consents: 3}, unlocked},
		{"closed session", Counts{Headcount: 3, Consents: 3, Closed: true}, locked(ReasonClosed)},
		{"fault", Counts{Headcount: 3, Consents: 3, Fault: true}, locked(ReasonFault)},
		{"fault outranks closed", Counts{Closed: true, Fault: true}, locked(ReasonFault)},
		{"maximum headcount met", Counts{Headcount: MaxHeadcount, Consents: MaxHeadcount}, unlocked},

		// Paper slips count exactly like phone slips.
		{"paper only, all consent", Counts{Headcount: 2, PaperConsents: 2}, unlocked},
		{"phones and paper make up the room", Counts{Headcount: 3, Consents: 2, PaperConsents: 1}, unlocked},
		{"a paper slip missing", Counts{Headcount: 3, Consents: 1, PaperConsents: 1}, locked(ReasonWaiting)},
		{"early paper refusal reads waiting", Counts{Headcount: 3, Consents: 1, PaperRefusals: 1}, locked(ReasonWaiting)},
		{"all in, one paper refusal", Counts{Headcount: 3, Consents: 2, PaperRefusals: 1}, locked(ReasonRefused)},
		{"all in, paper refusal and phone refusal", Counts{Headcount: 3, Refusals: 1, PaperConsents: 1, PaperRefusals: 1}, locked(ReasonRefused)},
		{"paper makes an overcount", Counts{Headcount: 2, Consents: 2, PaperConsents: 1}, locked(ReasonOvercount)},
		{"paper refusal makes an overcount", Counts{Headcount: 2, Consents: 2, PaperRefusals: 1}, locked(ReasonOvercount)},
		{"paper without headcount", Counts{PaperConsents: 3}, locked(ReasonNoHeadcount)},

		// Lecturer-only rounds need no slips, but closed and fault still lock.
		{"lecturer-only, nothing else set", Counts{LecturerOnly: true}, unlocked},
		{"lecturer-only ignores a refusal", Counts{LecturerOnly: true, Headcount: 3, Refusals: 1}, unlocked},
		{"lecturer-only ignores an overcount", Counts{LecturerOnly: true, Headcount: 1, Consents: 2}, unlocked},
		{"lecturer-only, closed", Counts{LecturerOnly: true, Closed: true}, locked(ReasonClosed)},
		{"lecturer-only, fault", Counts{LecturerOnly: true, Fault: true}, locked(ReasonFault)},

		// Through a relay that is lost, phones cannot withdraw.
		{"relay lost, all consent", Counts{Headcount: 3, Consents: 3, Unreachable: true}, locked(ReasonUnreachable)},
		{"relay lost outranks no headcount", Counts{Unreachable: true}, locked(ReasonUnreachable)},
		{"relay lost, closed", Counts{Closed: true, Unreachable: true}, locked(ReasonClosed)},
		{"relay lost, lecturer-only needs no phone", Counts{LecturerOnly: true, Unreachable: true}, unlocked},
		// After a restart, slips not reported again lock whatever the rest say.
		{"restarted, one phone missing", Counts{Headcount: 3, Consents: 2, Missing: 1}, locked(ReasonRestarted)},
		{"restarted, every phone missing", Counts{Headcount: 3, Missing: 3}, locked(ReasonRestarted)},
		{"restarted, paper missing", Counts{Headcount: 3, Consents: 2, PaperMissing: 1}, locked(ReasonRestarted)},
		{"restarted before the headcount is met", Counts{Headcount: 5, Consents: 1, Missing: 1}, locked(ReasonRestarted)},
		{"restarted with a known refusal reads restarted", Counts{Headcount: 2, Refusals: 1, Missing: 1}, locked(ReasonRestarted)},
		{"restarted with an overcount reads restarted", Counts{Headcount: 1, Consents: 1, Missing: 1}, locked(ReasonRestarted)},
		{"restarted without headcount", Counts{Missing: 1}, locked(ReasonRestarted)},
		{"restarted, closed", Counts{Missing: 1, Closed: true}, locked(ReasonClosed)},
		{"restarted, fault", Counts{Missing: 1, Fault: true}, locked(ReasonFault)},
		{"restarted outranks lecturer-only", Counts{LecturerOnly: true, Missing: 1}, locked(ReasonRestarted)},
		{"every phone reported again", Counts{Headcount: 2, Consents: 2}, unlocked},
		{"restarted and relay lost reads restarted", Counts{Headcount: 2, Consents: 1, Missing: 1, Unreachable: true}, locked(ReasonRestarted)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.in); got != tt.want {
				t.Errorf("Decide(%+v) = %+v; want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	c := Counts{Headcount: 1000, Consents: 999, Refusals: 1}
	for b.Loop() {
		_ = Decide(c)
	}
}
