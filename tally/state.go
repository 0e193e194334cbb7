package tally

import (
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"time"
)

// The in-memory model: choices, rounds, the state everyone sees, and
// what the writer holds of phones and slips. Choices live here only.

// Choice is what a slip says.
type Choice uint8

const (
	ChoiceNone Choice = iota // no slip: never given, withdrawn, or left
	ChoiceConsent
	ChoiceRefuse
)

// String returns the wire name of the choice: "none", "consent" or "refuse".
func (c Choice) String() string {
	switch c {
	case ChoiceConsent:
		return "consent"
	case ChoiceRefuse:
		return "refuse"
	default:
		return "none"
	}
}

// ParseChoice is the inverse of String. It returns ErrInvalid for anything else.
func ParseChoice(s string) (Choice, error) {
	switch s {
	case "consent":
		return ChoiceConsent, nil
	case "refuse":
		return ChoiceRefuse, nil
	case "none":
		return ChoiceNone, nil
	}
	return ChoiceNone, fmt.Errorf("%w: choice %q", ErrInvalid, s)
}

// Round is one question put to the room: a purpose and the notice shown
// before anyone chooses (R3, R4). Slips count only in the round they were
// given for.
type Round struct {
	ID      int64
	Purpose string
	// Notice is the canonical notice: a JSON string for a notice given as
	// text, or a JSON object with sorted keys for a structured one.
	Notice     string
	NoticeHash string // NoticeHash of the purpose, notice and mode
	Template   string // the language tag of the notice's template; "" for en
	Series     string // the series the round belongs to; "" for none
	Mode       Mode
	OpenedAt   time.Time
}

// State is what the kiosk may show of the tally. It deliberately has no
// field for the split between consents and refusals (R6, R7).
type State struct {
	// Version changes whenever anything else in State changes, and is never
	// reused, not even across restarts. Compare it for equality only.
	Version   uint64
	Round     Round
	Headcount int
	Received  int // slips in the current round
	Issued    int // phones that joined the session
	Paper     int // paper slips in the current round, included in Received
	// Missing is the phones that held a slip before the kiosk restarted and
	// have not sent it again, included in Received; PaperMissing the paper
	// slips whose counts the lecturer has not entered again since.
	Missing      int
	PaperMissing int
	Closed       bool
	Fault        bool
	Verdict
}

// Slip is a phone's slip as the kiosk holds it.
type Slip struct {
	Choice Choice
	Round  int64
	// SeriesDay is set by Join when the round belongs to a series in which
	// this phone consented before: the day (YYYY-MM-DD) of that round (R5).
	SeriesDay string
}

// DeviceID is the keyed hash of a phone's device secret. The secret itself
// is never stored.
type DeviceID [sha256.Size]byte

// phoneState says whether a phone is in the session and whether the
// database knows it. A phone is written only with its first slip in a
// round: a phone without a slip has nothing to lose in a restart (it scans
// the QR code again), and sparing that write halves the fsyncs of a hall
// arriving.
type phoneState uint8

const (
	phoneGone   phoneState = iota // not in the session (or left)
	phoneJoined                   // joined; in memory only
	phoneSaved                    // joined, and in the phones table: it holds a slip
)

// interval is what the database knows of the current unlocked interval
// (R8). A change of mind that locks writes nothing before its answer: it
// sets endAt and endWhy, and the end is written with the next transaction,
// or by itself soon after. A fault sets them too; the end is written once
// storage works again.
type interval struct {
	open   bool      // a row with ended_by NULL is in the database
	endAt  time.Time // non-zero: the kiosk locked then, for endWhy; not yet written
	endWhy string
}

// memState is everything the writer holds in memory. It has two parts,
// so that a change that commits while phones change the slips swaps in
// only what it owns: the round's part, which only solo changes set,
// and the hall, which phone changes set (see outcome).
type memState struct {
	roundState
	hall
	fault bool
	// unreachable is the Store's flag that phones have lost their way to
	// the kiosk (SetUnreachable): it changes outside the writer, and every
	// count the rule reads must see it, so counts reads it here.
	unreachable *atomic.Bool
	// iv is the unlocked interval of the current round as the database
	// has it.
	iv interval
}

// roundState is the round and what the lecturer set for it.
type roundState struct {
	round     Round
	headcount int
	closed    bool
	deviceKey []byte
	paper     paperCounts // in memory only; the database has their total
	// paperMissing: the paper total of before a restart, until the
	// lecturer enters the counts again.
	paperMissing int
	// seriesKey is the current round's series key, nil without a series.
	// seriesDays are the phones remembered for the round's series, by
	// series hash, with the day each consented: a join looks here, so that
	// joining needs no transaction.
	seriesKey  []byte
	seriesDays map[DeviceID]string
}

// hall is the phones and their slips.
type hall struct {
	phones   map[DeviceID]phoneState // never phoneGone
	slips    map[DeviceID]Choice     // in memory only, never written (R6)
	consents int
	refusals int
	// missing: phones in the phones table whose slip is not known since a
	// restart.
	missing map[DeviceID]struct{}
	// drop: rows of the phones table to delete, of phones that no longer
	// hold a slip. Until the delete commits a crash leaves them missing,
	// which locks: the safe side.
	drop map[DeviceID]struct{}
	// seriesIDs maps each phone seen with its secret in this round to its
	// keyed hash under the series key; it is never written unless the
	// round ends with everyone's consent, and is lost on restart (phones
	// say hello again when they reconnect).
	seriesIDs map[DeviceID]DeviceID
	// held: phone changes not yet durable because of a fault, made once
	// storage works again.
	held map[DeviceID]*request
}

func newHall() hall {
	return hall{
		phones: map[DeviceID]phoneState{}, slips: map[DeviceID]Choice{},
		missing: map[DeviceID]struct{}{}, drop: map[DeviceID]struct{}{},
		seriesIDs: map[DeviceID]DeviceID{}, held: map[DeviceID]*request{},
	}
}

type paperCounts struct{ consents, refusals int }

func (m *memState) counts() Counts {
	return Counts{
		Headcount: m.headcount, Consents: m.consents, Refusals: m.refusals,
		PaperConsents: m.paper.consents, PaperRefusals: m.paper.refusals,
		Missing: len(m.missing), PaperMissing: m.paperMissing,
		LecturerOnly: m.round.Mode == ModeLecturerOnly,
		Closed:       m.closed, Fault: m.fault,
		Unreachable: m.unreachable.Load(), // nil panics: every memState shares the flag
	}
}
