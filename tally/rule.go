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
)

// Counts is everything the unlock rule looks at. Consents and Refusals are
// the split that must never leave the tally package (R6, R7).
type Counts struct {
	Headcount int
	Consents  int
	Refusals  int
	Closed    bool
	Fault     bool
}

// Received is the number of slips in, whatever they say.
func (c Counts) Received() int { return c.Consents + c.Refusals }

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
func Decide(c Counts) Verdict {
	switch {
	case c.Fault:
		return Verdict{Reason: ReasonFault}
	case c.Closed:
		return Verdict{Reason: ReasonClosed}
	case c.Headcount < 1:
		return Verdict{Reason: ReasonNoHeadcount}
	case c.Received() < c.Headcount:
		return Verdict{Reason: ReasonWaiting}
	case c.Received() > c.Headcount:
		return Verdict{Reason: ReasonOvercount}
	case c.Refusals > 0:
		return Verdict{Reason: ReasonRefused}
	default:
		return Verdict{Unlocked: true}
	}
}
