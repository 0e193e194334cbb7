package tally

// Reason says why the kiosk is locked. It is empty while the kiosk is unlocked.
// The values are part of the external contract of GET /api/unlock.
type Reason string

const (
	ReasonNone        Reason = ""
	ReasonNoHeadcount Reason = "no-headcount"
	ReasonWaiting     Reason = "waiting"
	ReasonRefused     Reason = "refused"
	ReasonOvercount   Reason = "overcount"
	ReasonClosed      Reason = "closed"
	// ReasonFault means the kiosk could not make a slip durable, so it cannot
	// vouch for the tally (R10).
	ReasonFault Reason = "fault"
	// ReasonUnreachable means phones reach the kiosk through a relay and the
	// kiosk has lost it: nobody could withdraw (R2, R10).
	ReasonUnreachable Reason = "unreachable"
	// ReasonRestarted means the kiosk restarted and keeps no choice on disk:
	// it waits for the phones that held a slip to send it again, or for the
	// lecturer to let them go (R6, R10).
	ReasonRestarted Reason = "restarted"
)

// Counts is everything the unlock rule looks at. Consents, Refusals and the
// paper counts are the split that must never leave the tally package (R6, R7).
type Counts struct {
	Headcount int
	Consents  int // phone slips that consent
	Refusals  int // phone slips that refuse
	// PaperConsents and PaperRefusals are the slips from the paper box, for
	// people without a phone; they count exactly like phone slips.
	PaperConsents int
	PaperRefusals int
	// Missing is the phones that held a slip before a restart and have not
	// sent it again; PaperMissing the paper slips counted before a restart,
	// whose split the kiosk never kept. Both count as received, and both
	// lock until they are known again.
	Missing      int
	PaperMissing int
	// LecturerOnly: only the lecturer's screen and voice are recorded, which
	// needs no consent from the room (000, 001).
	LecturerOnly bool
	Closed       bool
	Fault        bool
	// Unreachable: the kiosk runs through a relay and has lost it.
	Unreachable bool
}

// Received is the number of slips in, phone and paper, whatever they say.
func (c Counts) Received() int {
	return c.Consents + c.Refusals + c.PaperConsents + c.PaperRefusals + c.Missing + c.PaperMissing
}

// Verdict is the outcome of the unlock rule.
type Verdict struct {
	Unlocked bool
	Reason   Reason
}

// Decide is the unlock rule (R1, R7, R10). It unlocks only while a headcount
// is set, every person present has handed in a slip, every slip consents, and
// nothing is in doubt. A refusal or an overcount is named only once the slips
// received reach the headcount; before that the reason is "waiting", so that
// the room cannot tell an early refusal from a slip not yet handed in.
//
// After a restart, slips whose choice is not known again lock with
// "restarted", whatever the others say: nothing unlocks on a state no phone
// has confirmed.
//
// A lecturer-only round unlocks without slips, since nobody in the room is
// recorded; a fault or a closed session still locks it. Losing the relay
// locks every other round: a phone that cannot reach the kiosk cannot
// withdraw.
func Decide(c Counts) Verdict {
	switch {
	case c.Fault:
		return Verdict{Reason: ReasonFault}
	case c.Closed:
		return Verdict{Reason: ReasonClosed}
	case c.Missing > 0 || c.PaperMissing > 0:
		return Verdict{Reason: ReasonRestarted}
	case c.LecturerOnly:
		return Verdict{Unlocked: true}
	case c.Unreachable:
		return Verdict{Reason: ReasonUnreachable}
	case c.Headcount < 1:
		return Verdict{Reason: ReasonNoHeadcount}
	case c.Received() < c.Headcount:
		return Verdict{Reason: ReasonWaiting}
	case c.Received() > c.Headcount:
		return Verdict{Reason: ReasonOvercount}
	case c.Refusals > 0 || c.PaperRefusals > 0:
		return Verdict{Reason: ReasonRefused}
	default:
		return Verdict{Unlocked: true}
	}
}
