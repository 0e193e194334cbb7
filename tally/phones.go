package tally

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"fmt"
)

// Phones: what a phone can ask of the store, and the overlay through
// which a batch of phone changes sees and changes the slips.

type opKind uint8

const (
	opJoin opKind = iota
	opCast
	opLeave
	opSolo
)

// request is one change queued for the writer goroutine.
type request struct {
	kind   opKind
	secret string   // phone ops: the device secret, hashed by the writer
	device DeviceID // set by the writer
	admit  bool     // opJoin: a new phone may join (it showed a valid join token)
	choice Choice   // opCast
	round  int64    // opCast: the round the phone was shown; 0 means current

	// seriesID is the phone's keyed hash under the current round's series
	// key, set by the writer with device when the round has a series.
	seriesID DeviceID
	inSeries bool

	// change is what an opSolo request runs (runSolo).
	change *soloChange
	// holding: the change's lock was published while it waited in the
	// backlog, and s.holdLock counts it until the change runs.
	holding bool

	reply chan result
}

type result struct {
	slip Slip
	err  error
}

// Rejoin lets a phone already in the session join again, without a join
// token (after a reconnect or a QR rotation); a phone the session does not
// know gets ErrUnknownPhone. It returns the phone's current slip and, when
// the round belongs to a series in which the phone consented before, the
// day of that consent (R5).
func (s *Store) Rejoin(ctx context.Context, secret string) (Slip, error) {
	return s.submit(ctx, &request{kind: opJoin, secret: secret})
}

// Admit registers a phone in the session, new or known; the caller has
// checked that it showed a valid join token. It returns what Rejoin does.
func (s *Store) Admit(ctx context.Context, secret string) (Slip, error) {
	return s.submit(ctx, &request{kind: opJoin, secret: secret, admit: true})
}

// Cast records a joined phone's choice for round (0: the current round);
// ChoiceNone withdraws its slip. The choice is kept in memory only. A
// phone's first slip in a round returns once the database durably holds
// that the phone has a slip; a change of mind or a withdrawal returns at
// once. Casting the choice a phone already holds changes nothing, so a phone
// may safely resend a slip whose acknowledgement it never saw. After a
// restart, a Cast is how a phone reports its slip again.
func (s *Store) Cast(ctx context.Context, secret string, choice Choice, round int64) (Slip, error) {
	if choice > ChoiceRefuse {
		return Slip{}, fmt.Errorf("%w: choice %d", ErrInvalid, choice)
	}
	return s.submit(ctx, &request{kind: opCast, secret: secret, choice: choice, round: round})
}

// Leave removes a phone's slip and forgets the phone: its owner left the
// room. Leaving twice is not an error.
func (s *Store) Leave(ctx context.Context, secret string) (Slip, error) {
	return s.submit(ctx, &request{kind: opLeave, secret: secret})
}

func (s *Store) hash(secret string) DeviceID { return keyedHash(s.mem.deviceKey, secret) }

func keyedHash(key []byte, secret string) DeviceID {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	var d DeviceID
	m.Sum(d[:0])
	return d
}

// overlay is a batch's view of the phones and slips: the state in s.mem
// plus the batch's changes, which reach s.mem only on commit.
type overlay struct {
	mem      *memState
	phones   map[DeviceID]phoneState
	slips    map[DeviceID]Choice
	reported map[DeviceID]bool     // missing phones that sent their slip again
	drop     map[DeviceID]bool     // true: delete the phone's row; false: keep it after all
	series   map[DeviceID]DeviceID // series hashes learnt in this batch
	inserts  []DeviceID            // phones whose first slip needs their row written
	consents int
	refusals int
	missing  int
	issued   int
}

func (s *Store) newOverlay() *overlay {
	return &overlay{
		mem:      &s.mem,
		phones:   map[DeviceID]phoneState{},
		slips:    map[DeviceID]Choice{},
		reported: map[DeviceID]bool{},
		drop:     map[DeviceID]bool{},
		series:   map[DeviceID]DeviceID{},
		consents: s.mem.consents,
		refusals: s.mem.refusals,
		missing:  len(s.mem.missing),
		issued:   len(s.mem.phones),
	}
}

func (o *overlay) phone(d DeviceID) phoneState {
	if ps, ok := o.phones[d]; ok {
		return ps
	}
	return o.mem.phones[d]
}

func (o *overlay) slip(d DeviceID) Choice {
	if c, ok := o.slips[d]; ok {
		return c
	}
	return o.mem.slips[d]
}

func (o *overlay) inDrop(d DeviceID) bool {
	if v, ok := o.drop[d]; ok {
		return v
	}
	_, ok := o.mem.drop[d]
	return ok
}

// report notes that d, if it was missing since a restart, has sent its
// slip again.
func (o *overlay) report(d DeviceID) {
	if _, ok := o.mem.missing[d]; ok && !o.reported[d] {
		o.reported[d] = true
		o.missing--
	}
}

func (o *overlay) counts() Counts {
	c := o.mem.counts()
	c.Consents, c.Refusals, c.Missing = o.consents, o.refusals, o.missing
	return c
}

// apply validates one phone change and makes it in the overlay. A first
// slip in the round adds the phone to inserts: its row must be written
// before it is acknowledged.
func (o *overlay) apply(r *request) (Slip, error) {
	round := o.mem.round.ID
	if o.mem.closed {
		return Slip{}, ErrClosed
	}
	d := r.device
	ps := o.phone(d)
	switch r.kind {
	case opJoin:
		if ps == phoneGone {
			if !r.admit {
				return Slip{}, ErrUnknownPhone
			}
			o.phones[d] = phoneJoined
			o.issued++
		}
		// A phone missing since a restart hears "none": the kiosk does not
		// know its slip, and the phone sends it again.
		slip := Slip{Choice: o.slip(d), Round: round}
		if r.inSeries {
			o.series[d] = r.seriesID
			slip.SeriesDay = o.mem.seriesDays[r.seriesID]
		}
		return slip, nil
	case opCast:
		if ps == phoneGone {
			return Slip{}, ErrUnknownPhone
		}
		if r.round != 0 && r.round != round {
			return Slip{}, ErrStaleRound
		}
		if o.mem.round.Purpose == "" && r.choice != ChoiceNone {
			// Nobody can consent to a recording whose purpose they were not
			// told (R4): a slip needs a round the lecturer described.
			return Slip{}, fmt.Errorf("%w: the lecturer has not described the recording yet", ErrInvalid)
		}
		if o.mem.round.Mode == ModeLecturerOnly && r.choice != ChoiceNone {
			return Slip{}, fmt.Errorf("%w: only the lecturer is recorded; nobody in the room is asked", ErrInvalid)
		}
		if r.inSeries {
			o.series[d] = r.seriesID
		}
		o.report(d)
		switch {
		case r.choice != ChoiceNone && ps == phoneJoined:
			if o.inDrop(d) {
				o.drop[d] = false // its row is still on disk
			} else {
				o.inserts = append(o.inserts, d)
			}
			o.phones[d] = phoneSaved
		case r.choice == ChoiceNone && ps == phoneSaved:
			o.phones[d] = phoneJoined
			o.drop[d] = true
		}
		o.setSlip(d, r.choice)
		return Slip{Choice: r.choice, Round: round}, nil
	case opLeave:
		if ps == phoneGone {
			return Slip{Choice: ChoiceNone, Round: round}, nil
		}
		o.report(d)
		o.setSlip(d, ChoiceNone)
		if ps == phoneSaved {
			o.drop[d] = true
		}
		o.phones[d] = phoneGone
		o.issued--
		return Slip{Choice: ChoiceNone, Round: round}, nil
	}
	return Slip{}, fmt.Errorf("%w: unknown change", ErrInvalid)
}

func (o *overlay) setSlip(d DeviceID, c Choice) {
	old := o.slip(d)
	if old == c {
		return
	}
	o.tallyChoice(old, -1)
	o.tallyChoice(c, +1)
	o.slips[d] = c
}

func (o *overlay) tallyChoice(c Choice, delta int) {
	switch c {
	case ChoiceConsent:
		o.consents += delta
	case ChoiceRefuse:
		o.refusals += delta
	}
}

// writeInserts writes the rows of the phones whose first slip is in the
// overlay and that still hold one at its end.
func (o *overlay) writeInserts(ctx context.Context, tx *sql.Tx) error {
	for _, d := range o.inserts {
		if o.phone(d) != phoneSaved {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO phones (device) VALUES (?)`, d[:]); err != nil {
			return err
		}
	}
	return nil
}

// commit moves the overlay's changes into memory.
func (o *overlay) commit() {
	m := o.mem
	for d, id := range o.series {
		m.seriesIDs[d] = id
	}
	for d, ps := range o.phones {
		if ps == phoneGone {
			delete(m.phones, d)
			delete(m.seriesIDs, d)
		} else {
			m.phones[d] = ps
		}
	}
	for d, c := range o.slips {
		if c == ChoiceNone {
			delete(m.slips, d)
		} else {
			m.slips[d] = c
		}
	}
	for d := range o.reported {
		delete(m.missing, d)
	}
	for d, drop := range o.drop {
		if drop {
			m.drop[d] = struct{}{}
		} else {
			delete(m.drop, d)
		}
	}
	m.consents, m.refusals = o.consents, o.refusals
}
