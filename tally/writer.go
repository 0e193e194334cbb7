package tally

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"
)

type opKind uint8

const (
	opJoin opKind = iota
	opCast
	opLeave
	opLecturer
)

// request is one change queued for the writer goroutine.
type request struct {
	kind   opKind
	secret string   // phone ops: the device secret, hashed by the writer
	device DeviceID // set by the writer
	fresh  bool     // opJoin: the phone showed a valid join token
	choice Choice   // opCast
	round  int64    // opCast: the round the phone was shown; 0 means current

	// lecturer ops run alone in a transaction; after a commit the writer
	// calls the returned apply to update memory.
	lecturer func(ctx context.Context, tx *sql.Tx) (apply func(), err error)

	reply chan result
}

type result struct {
	slip Slip
	err  error
}

// Join registers a phone in the session. A phone already in the session may
// join again without a fresh token (after a reconnect or a QR rotation);
// a new phone needs fresh, meaning it showed a valid join token. It returns
// the phone's current slip.
func (s *Store) Join(ctx context.Context, secret string, fresh bool) (Slip, error) {
	return s.submit(ctx, &request{kind: opJoin, secret: secret, fresh: fresh})
}

// Cast records a joined phone's choice for round (0: the current round);
// ChoiceNone withdraws its slip. It returns once the slip is durable.
// Casting the choice a phone already holds changes nothing, so a phone may
// safely resend a slip whose acknowledgement it never saw.
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

// SetHeadcount sets the number of people present besides the lecturer. It
// returns ErrInvalid outside MinHeadcount..MaxHeadcount and ErrClosed while
// the session is closed.
func (s *Store) SetHeadcount(ctx context.Context, n int) error {
	if n < MinHeadcount || n > MaxHeadcount {
		return fmt.Errorf("%w: headcount must be a whole number from %d to %d", ErrInvalid, MinHeadcount, MaxHeadcount)
	}
	return s.lecturerOp(ctx, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if s.mem.closed {
			return nil, ErrClosed
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET headcount = ? WHERE id = ?`, n, s.mem.round.ID); err != nil {
			return nil, err
		}
		return func() { s.mem.headcount = n }, nil
	})
}

// NewRound starts a new round with the given purpose and notice. Every
// earlier slip stops counting (R3); the headcount and the joined phones stay.
// A closed session opens again with it.
func (s *Store) NewRound(ctx context.Context, spec RoundSpec) (Round, error) {
	if err := validSpec(spec); err != nil {
		return Round{}, err
	}
	var round Round
	err := s.lecturerOp(ctx, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM slips`); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'closed'`); err != nil {
			return nil, err
		}
		headcount := s.mem.headcount
		if s.mem.closed {
			headcount = 0 // a new session: the room must be counted again
		}
		next, err := s.insertRound(ctx, tx, spec, headcount)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.round, s.mem.headcount = next, headcount
			s.mem.closed = false
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			round = next
		}, nil
	})
	return round, err
}

func validSpec(spec RoundSpec) error {
	switch {
	case !utf8.ValidString(spec.Purpose) || !utf8.ValidString(spec.Notice):
		return fmt.Errorf("%w: purpose and notice must be UTF-8 text", ErrInvalid)
	case utf8.RuneCountInString(spec.Purpose) > MaxPurposeLen:
		return fmt.Errorf("%w: purpose longer than %d characters", ErrInvalid, MaxPurposeLen)
	case utf8.RuneCountInString(spec.Notice) > MaxNoticeLen:
		return fmt.Errorf("%w: notice longer than %d characters", ErrInvalid, MaxNoticeLen)
	}
	return nil
}

// CloseSession ends the session: the kiosk locks, every phone and slip is
// deleted, and the key that hashes device secrets is replaced so the next
// session's hashes cannot be linked to this one's (R9).
func (s *Store) CloseSession(ctx context.Context) error {
	return s.lecturerOp(ctx, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		key := make([]byte, 32)
		rand.Read(key)
		for _, q := range []string{`DELETE FROM slips`, `DELETE FROM phones`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('closed', '1'), ('device_key', ?)`, key); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET closed_at = ? WHERE closed_at IS NULL`, s.now().UTC().Format(time.RFC3339Nano)); err != nil {
			return nil, err
		}
		return func() {
			s.mem.closed = true
			s.mem.deviceKey = key
			s.mem.phones = map[DeviceID]phoneState{}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			clear(s.held)
		}, nil
	})
}

func (s *Store) lecturerOp(ctx context.Context, fn func(context.Context, *sql.Tx) (func(), error)) error {
	_, err := s.submit(ctx, &request{kind: opLecturer, lecturer: fn})
	return err
}

func (s *Store) submit(ctx context.Context, r *request) (Slip, error) {
	r.reply = make(chan result, 1)
	select {
	case s.reqs <- r:
	case <-s.stop:
		return Slip{}, ErrStopped
	case <-ctx.Done():
		return Slip{}, ctx.Err()
	}
	select {
	case res := <-r.reply:
		return res.slip, res.err
	case <-s.done:
		return Slip{}, ErrStopped
	case <-ctx.Done():
		// The change may still commit; the caller cannot know, as with a
		// lost acknowledgement, and resending is safe.
		return Slip{}, ctx.Err()
	}
}

// writer is the only goroutine that writes to the database or to s.mem.
func (s *Store) writer() {
	defer close(s.done)
	var retry <-chan time.Time
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-retry:
			retry = nil
			s.recover()
		case <-s.stop:
			s.drain()
			return
		}
		if first != nil {
			batch := []*request{first}
		more:
			for len(batch) < maxBatch {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				default:
					break more
				}
			}
			s.run(batch)
		}
		if s.mem.fault && retry == nil {
			retry = time.After(faultRetry)
		}
	}
}

func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			r.reply <- result{err: ErrStopped}
		default:
			return
		}
	}
}

// run commits a batch: runs of phone changes share one transaction; each
// lecturer change has one of its own.
func (s *Store) run(batch []*request) {
	start := 0
	for i, r := range batch {
		if r.kind != opLecturer {
			continue
		}
		s.runPhones(batch[start:i])
		s.runLecturer(r)
		start = i + 1
	}
	s.runPhones(batch[start:])
}

func (s *Store) runLecturer(r *request) {
	ctx := context.Background()
	if s.mem.fault {
		r.reply <- result{err: ErrStorage}
		return
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.storageFailed(err)
		r.reply <- result{err: ErrStorage}
		return
	}
	defer tx.Rollback()
	apply, err := r.lecturer(ctx, tx)
	if err == nil {
		err = tx.Commit()
		if err != nil {
			s.storageFailed(err)
			r.reply <- result{err: ErrStorage}
			return
		}
	}
	if err != nil {
		if isDomainError(err) {
			r.reply <- result{err: err}
			return
		}
		s.storageFailed(err)
		r.reply <- result{err: ErrStorage}
		return
	}
	apply()
	s.publish()
	r.reply <- result{}
}

// isDomainError tells a refusal of one change, which leaves storage
// healthy, from a failure of storage.
func isDomainError(err error) bool {
	for _, e := range []error{ErrInvalid, ErrClosed, ErrUnknownPhone, ErrStaleRound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Store) hash(secret string) DeviceID {
	m := hmac.New(sha256.New, s.mem.deviceKey)
	m.Write([]byte(secret))
	var d DeviceID
	m.Sum(d[:0])
	return d
}

// overlay is a batch's view of the phones and slips: the committed state in
// s.mem plus the batch's changes, which reach s.mem only after the commit.
type overlay struct {
	mem      *memState
	phones   map[DeviceID]phoneState
	slips    map[DeviceID]Choice
	consents int
	refusals int
	issued   int
	dirty    bool // the batch wrote to the database
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

func (o *overlay) counts() Counts {
	c := o.mem.counts()
	c.Consents, c.Refusals = o.consents, o.refusals
	return c
}

// apply validates one phone change and writes it in tx. A domain error
// concerns that change only; any other error fails the transaction. With a
// nil tx it is a dry run that changes only the overlay.
func (o *overlay) apply(ctx context.Context, tx *sql.Tx, r *request) (Slip, error) {
	round := o.mem.round.ID
	if o.mem.closed {
		return Slip{}, ErrClosed
	}
	ps := o.phone(r.device)
	switch r.kind {
	case opJoin:
		if ps != phoneGone {
			return Slip{Choice: o.slip(r.device), Round: round}, nil
		}
		if !r.fresh {
			return Slip{}, ErrUnknownPhone
		}
		o.phones[r.device] = phoneJoined
		o.issued++
		return Slip{Choice: ChoiceNone, Round: round}, nil
	case opCast:
		if ps == phoneGone {
			return Slip{}, ErrUnknownPhone
		}
		if r.round != 0 && r.round != round {
			return Slip{}, ErrStaleRound
		}
		if ps == phoneJoined && r.choice != ChoiceNone {
			if err := o.exec(ctx, tx, `INSERT OR IGNORE INTO phones (device) VALUES (?)`, r.device[:]); err != nil {
				return Slip{}, err
			}
			o.phones[r.device] = phoneSaved
		}
		return Slip{Choice: r.choice, Round: round}, o.setSlip(ctx, tx, r.device, r.choice)
	case opLeave:
		if ps == phoneGone {
			return Slip{Choice: ChoiceNone, Round: round}, nil
		}
		if err := o.setSlip(ctx, tx, r.device, ChoiceNone); err != nil {
			return Slip{}, err
		}
		if ps == phoneSaved {
			if err := o.exec(ctx, tx, `DELETE FROM phones WHERE device = ?`, r.device[:]); err != nil {
				return Slip{}, err
			}
		}
		o.phones[r.device] = phoneGone
		o.issued--
		return Slip{Choice: ChoiceNone, Round: round}, nil
	}
	return Slip{}, fmt.Errorf("%w: unknown change", ErrInvalid)
}

func (o *overlay) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	o.dirty = true
	if tx == nil {
		return nil // a dry run
	}
	_, err := tx.ExecContext(ctx, query, args...)
	return err
}

func (o *overlay) setSlip(ctx context.Context, tx *sql.Tx, d DeviceID, c Choice) error {
	old := o.slip(d)
	if old == c {
		return nil
	}
	var err error
	if c == ChoiceNone {
		err = o.exec(ctx, tx, `DELETE FROM slips WHERE device = ?`, d[:])
	} else {
		err = o.exec(ctx, tx, `INSERT INTO slips (device, choice) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET choice = excluded.choice`, d[:], c)
	}
	if err != nil {
		return err
	}
	o.tallyChoice(old, -1)
	o.tallyChoice(c, +1)
	o.slips[d] = c
	return nil
}

func (o *overlay) tallyChoice(c Choice, delta int) {
	switch c {
	case ChoiceConsent:
		o.consents += delta
	case ChoiceRefuse:
		o.refusals += delta
	}
}

// commit moves the batch's changes into memory after the transaction committed.
func (o *overlay) commit() {
	m := o.mem
	for d, ps := range o.phones {
		if ps == phoneGone {
			delete(m.phones, d)
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
	m.consents, m.refusals = o.consents, o.refusals
}

// runPhones commits a run of phone changes in one transaction and answers
// each only after the commit.
func (s *Store) runPhones(batch []*request) {
	if len(batch) == 0 {
		return
	}
	for _, r := range batch {
		if r.secret != "" {
			r.device = s.hash(r.secret)
			r.secret = ""
		}
	}
	results, ok := s.commitPhones(batch)
	if !ok {
		// Keep each phone's latest change so that it is made durable as soon
		// as storage works again; the phone is told it failed and may resend.
		for _, r := range batch {
			if r.kind != opLecturer {
				s.held[r.device] = r
			}
		}
		for _, r := range batch {
			r.reply <- result{err: ErrStorage}
		}
		return
	}
	for i, r := range batch {
		delete(s.held, r.device)
		r.reply <- results[i]
	}
}

func (s *Store) newOverlay() *overlay {
	return &overlay{
		mem:      &s.mem,
		phones:   map[DeviceID]phoneState{},
		slips:    map[DeviceID]Choice{},
		consents: s.mem.consents,
		refusals: s.mem.refusals,
		issued:   len(s.mem.phones),
	}
}

// commitPhones applies batch in one transaction. It returns false, having
// changed nothing, when storage failed.
func (s *Store) commitPhones(batch []*request) ([]result, bool) {
	ctx := context.Background()
	if s.mem.fault {
		return nil, false
	}
	// Locking never waits on the disk, and BEGIN itself may wait on a file
	// another process holds: if the batch would lock, say so before it.
	if s.State().Unlocked {
		dry := s.newOverlay()
		for _, r := range batch {
			dry.apply(ctx, nil, r)
		}
		if pending := dry.counts(); !Decide(pending).Unlocked {
			s.publishCounts(pending, dry.consents+dry.refusals, dry.issued)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.storageFailed(err)
		return nil, false
	}
	defer tx.Rollback()
	o := s.newOverlay()
	results := make([]result, len(batch))
	for i, r := range batch {
		slip, err := o.apply(ctx, tx, r)
		if err != nil && !isDomainError(err) {
			s.storageFailed(err)
			return nil, false
		}
		results[i] = result{slip: slip, err: err}
	}
	if !o.dirty {
		o.commit() // joins only: nothing to make durable
		s.publish()
		return results, true
	}
	if pending := o.counts(); !Decide(pending).Unlocked && s.State().Unlocked {
		s.publishCounts(pending, o.consents+o.refusals, o.issued)
	}
	if err := tx.Commit(); err != nil {
		s.storageFailed(err)
		return nil, false
	}
	o.commit()
	s.publish()
	return results, true
}

// storageFailed locks the kiosk until a write succeeds again (R10).
func (s *Store) storageFailed(err error) {
	if !s.mem.fault {
		slog.Error("storage failed; the kiosk is locked until a write succeeds", "err", err)
	}
	s.mem.fault = true
	s.publish()
}

// recover tries a write while the store is in fault. On success it first
// makes durable the phone changes that failed, then unlocks as the rule says.
func (s *Store) recover() {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err == nil {
		defer tx.Rollback()
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)`, s.now().UTC().Format(time.RFC3339))
		if err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		return
	}
	s.mem.fault = false
	if len(s.held) > 0 {
		batch := make([]*request, 0, len(s.held))
		for _, r := range s.held {
			r.reply = make(chan result, 1) // nobody waits any more
			batch = append(batch, r)
		}
		if _, ok := s.commitPhones(batch); !ok {
			return
		}
		clear(s.held)
	}
	slog.Info("storage works again")
	s.publish()
}
