package tally

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
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

	// seriesID is the phone's keyed hash under the current round's series
	// key, set by the writer with device when the round has a series.
	seriesID DeviceID
	inSeries bool

	// lecturer ops run alone in a transaction; after a commit the writer
	// calls the returned apply to update memory.
	lecturer func(ctx context.Context, tx *sql.Tx) (apply func(), err error)
	// checkpoint: after the commit, copy the WAL into the database file and
	// truncate it, so that deleted rows are gone from the files on disk and
	// not only from the tables (R9).
	checkpoint bool

	reply chan result
}

type result struct {
	slip Slip
	err  error
}

// Join registers a phone in the session. A phone already in the session may
// join again without a fresh token (after a reconnect or a QR rotation);
// a new phone needs fresh, meaning it showed a valid join token. It returns
// the phone's current slip and, when the round belongs to a series in which
// the phone consented before, the day of that consent (R5).
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
	return s.lecturerOp(ctx, false, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if s.mem.closed {
			return nil, ErrClosed
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET headcount = ? WHERE id = ?`, n, s.mem.round.ID); err != nil {
			return nil, err
		}
		next := s.mem.counts()
		next.Headcount = n
		open, err := s.markInterval(ctx, tx, s.mem.open, next, s.mem.round.ID, EndHeadcountChange)
		if err != nil {
			return nil, err
		}
		return func() { s.mem.headcount, s.mem.open = n, open }, nil
	})
}

// SetPaper sets the current round's paper slips: how many consents and
// refusals the lecturer counted in the paper box. It sets rather than adds,
// so a retried request changes nothing. Paper slips count in the rule like
// phone slips; when the round ends only their total is kept. It returns
// ErrInvalid for counts outside 0..MaxHeadcount or in a lecturer-only round,
// and ErrClosed while the session is closed.
func (s *Store) SetPaper(ctx context.Context, consents, refusals int) error {
	if consents < 0 || refusals < 0 || consents > MaxHeadcount || refusals > MaxHeadcount {
		return fmt.Errorf("%w: paper counts must be whole numbers from 0 to %d", ErrInvalid, MaxHeadcount)
	}
	return s.lecturerOp(ctx, false, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if s.mem.closed {
			return nil, ErrClosed
		}
		if s.mem.round.Mode == ModeLecturerOnly {
			return nil, fmt.Errorf("%w: a lecturer-only round takes no slips", ErrInvalid)
		}
		if s.mem.round.Purpose == "" {
			return nil, fmt.Errorf("%w: start a round with a purpose first", ErrInvalid)
		}
		var err error
		if consents == 0 && refusals == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM paper`)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO paper (round, consents, refusals) VALUES (?, ?, ?)`, s.mem.round.ID, consents, refusals)
		}
		if err != nil {
			return nil, err
		}
		next := s.mem.counts()
		next.PaperConsents, next.PaperRefusals = consents, refusals
		open, err := s.markInterval(ctx, tx, s.mem.open, next, s.mem.round.ID, EndPaperChange)
		if err != nil {
			return nil, err
		}
		return func() { s.mem.paper, s.mem.open = paperCounts{consents, refusals}, open }, nil
	})
}

// NewRound starts a new round with the given purpose and notice. Every
// earlier slip, phone or paper, stops counting (R3); the headcount and the
// joined phones stay. A closed session opens again with it. A round that
// names a series must have the series' purpose, notice and mode, or
// NewRound returns ErrSeriesMismatch; a new series name starts a series.
func (s *Store) NewRound(ctx context.Context, spec RoundSpec) (Round, error) {
	spec, err := spec.normalize()
	if err != nil {
		return Round{}, err
	}
	if spec.Purpose == "" {
		return Round{}, fmt.Errorf("%w: purpose is required", ErrInvalid)
	}
	var round Round
	err = s.lecturerOp(ctx, false, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if !s.mem.closed {
			if err := s.endRound(ctx, tx); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM slips`); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'closed'`); err != nil {
			return nil, err
		}
		var seriesKey []byte
		if spec.Series != "" {
			var err error
			hash := noticeHash(spec.Purpose, spec.canonicalNotice(), spec.Mode)
			if seriesKey, err = s.joinSeries(ctx, tx, spec.Series, hash); err != nil {
				return nil, err
			}
		}
		days, err := loadSeriesDays(ctx, tx, spec.Series)
		if err != nil {
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
		counts := Counts{Headcount: headcount, LecturerOnly: spec.Mode == ModeLecturerOnly}
		open, err := s.markInterval(ctx, tx, s.mem.open, counts, next.ID, EndNewRound)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.round, s.mem.headcount = next, headcount
			s.mem.closed = false
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper = paperCounts{}
			s.mem.seriesKey, s.mem.seriesIDs, s.mem.seriesDays = seriesKey, map[DeviceID]DeviceID{}, days
			s.mem.open = open
			round = next
		}, nil
	})
	return round, err
}

// joinSeries returns the key of the named series, starting the series if it
// does not exist. It returns ErrSeriesMismatch if the series was started
// with another purpose, notice or mode.
func (s *Store) joinSeries(ctx context.Context, tx *sql.Tx, name, hash string) ([]byte, error) {
	var key []byte
	var have string
	err := tx.QueryRowContext(ctx, `SELECT key, notice_hash FROM series WHERE name = ?`, name).Scan(&key, &have)
	switch {
	case err == nil && have != hash:
		return nil, fmt.Errorf("%w: series %q was started with another purpose or notice; end it, or name a new series", ErrSeriesMismatch, name)
	case err == nil:
		return key, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	key = s.newKey()
	today := s.now().Format(dayFormat)
	_, err = tx.ExecContext(ctx, `INSERT INTO series (name, notice_hash, key, started_on, last_on) VALUES (?, ?, ?, ?, ?)`, name, hash, key, today, today)
	return key, err
}

// loadSeriesDays reads the phones remembered for the named series; none
// for "".
func loadSeriesDays(ctx context.Context, tx *sql.Tx, series string) (map[DeviceID]string, error) {
	days := map[DeviceID]string{}
	if series == "" {
		return days, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT device, day FROM series_phones WHERE series = ?`, series)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d []byte
		var day string
		if err := rows.Scan(&d, &day); err != nil {
			return nil, err
		}
		days[deviceID(d)] = day
	}
	return days, rows.Err()
}

// endRound writes the aggregate record of the current round as it ends
// (R8): when, the slips received, the outcome and the total of paper slips.
// The paper split is deleted. If the round belongs to a series and ends
// with everyone's consent, every phone whose keyed series hash is known is
// remembered for the series with today's date (R5). Remembering only such
// rounds means the series memory never holds more than the record already
// says: that everyone who handed in a slip consented.
func (s *Store) endRound(ctx context.Context, tx *sql.Tx) error {
	now := s.now()
	c := s.mem.counts()
	v := Decide(c)
	outcome := string(v.Reason)
	if v.Unlocked {
		outcome = OutcomeUnlocked
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rounds SET closed_at = ?, received = ?, outcome = ?, paper = ? WHERE id = ?`,
		now.UTC().Format(stampFormat), c.Received(), outcome, c.PaperConsents+c.PaperRefusals, s.mem.round.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM paper`); err != nil {
		return err
	}
	if !v.Unlocked || s.mem.round.Mode != ModeRoom || s.mem.seriesKey == nil {
		return nil
	}
	day := now.Format(dayFormat)
	res, err := tx.ExecContext(ctx, `UPDATE series SET last_on = ? WHERE name = ?`, day, s.mem.round.Series)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // the series was ended meanwhile: remember nobody
	}
	for d, choice := range s.mem.slips {
		id, ok := s.mem.seriesIDs[d]
		if !ok || choice != ChoiceConsent {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO series_phones (series, device, day) VALUES (?, ?, ?)`,
			s.mem.round.Series, id[:], day); err != nil {
			return err
		}
	}
	return nil
}

// CloseSession ends the session: the kiosk locks, the current round's record
// is written, every phone and slip is deleted, and the key that hashes
// device secrets is replaced so the next session's hashes cannot be linked
// to this one's (R9).
func (s *Store) CloseSession(ctx context.Context) error {
	return s.lecturerOp(ctx, true, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if !s.mem.closed {
			if err := s.endRound(ctx, tx); err != nil {
				return nil, err
			}
		}
		key := s.newKey()
		for _, q := range []string{`DELETE FROM slips`, `DELETE FROM phones`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('closed', '1'), ('device_key', ?)`, key); err != nil {
			return nil, err
		}
		next := s.mem.counts()
		next.Closed = true
		open, err := s.markInterval(ctx, tx, s.mem.open, next, s.mem.round.ID, EndClosed)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.closed = true
			s.mem.deviceKey = key
			s.mem.phones = map[DeviceID]phoneState{}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper = paperCounts{}
			s.mem.seriesIDs = map[DeviceID]DeviceID{}
			s.mem.open = open
			clear(s.held)
		}, nil
	})
}

// markInterval writes in tx the end of the open unlocked interval, if the
// change to next ends it, saying why; and the start of a new one, if next
// unlocks round (R8). open says whether an interval is open now. It returns
// whether one is open after the change; the caller stores that in s.mem
// once tx has committed. Doing this in the change's own transaction means
// the record never misses an unlock that phones and recorders saw.
func (s *Store) markInterval(ctx context.Context, tx *sql.Tx, open bool, next Counts, round int64, why string) (bool, error) {
	unlocked := Decide(next).Unlocked
	now := s.now().UTC().Format(stampFormat)
	if open && (!unlocked || round != s.mem.round.ID) {
		if _, err := tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`, now, why); err != nil {
			return open, err
		}
		open = false
	}
	if unlocked && !open {
		if _, err := tx.ExecContext(ctx, `INSERT INTO intervals (round, started_at) VALUES (?, ?)`, round, now); err != nil {
			return open, err
		}
		open = true
	}
	return open, nil
}

// lecturerOp runs fn alone in a transaction on the writer goroutine and,
// after the commit, the function it returns. checkpoint: see request.
func (s *Store) lecturerOp(ctx context.Context, checkpoint bool, fn func(context.Context, *sql.Tx) (func(), error)) error {
	_, err := s.submit(ctx, &request{kind: opLecturer, lecturer: fn, checkpoint: checkpoint})
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
	purge := time.NewTicker(s.purgeEvery)
	defer purge.Stop()
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-retry:
			retry = nil
			s.recover()
		case <-purge.C:
			// A failed purge is retried at the next tick; the error was
			// logged when storage failed.
			s.runLecturer(&request{kind: opLecturer, lecturer: s.purgeOp(nil), checkpoint: true, reply: make(chan result, 1)})
		case <-s.stop:
			s.drain()
			s.endOnStop()
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
	if r.checkpoint {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			slog.Warn("checkpoint after deleting failed; deleted rows stay in the WAL file until the next checkpoint", "err", err)
		}
	}
	r.reply <- result{}
}

// endOnStop ends the open unlocked interval when the kiosk shuts down: from
// then on recorders get no answer, which means locked.
func (s *Store) endOnStop() {
	if !s.mem.open || s.mem.fault {
		return
	}
	ctx := context.Background()
	_, err := s.db.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`,
		s.now().UTC().Format(stampFormat), EndStopped)
	if err != nil {
		slog.Error("could not record the end of the unlocked interval; the record will say it was interrupted", "err", err)
	}
}

// isDomainError tells a refusal of one change, which leaves storage
// healthy, from a failure of storage.
func isDomainError(err error) bool {
	for _, e := range []error{ErrInvalid, ErrClosed, ErrUnknownPhone, ErrStaleRound, ErrSeriesMismatch, ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Store) hash(secret string) DeviceID { return keyedHash(s.mem.deviceKey, secret) }

func keyedHash(key []byte, secret string) DeviceID {
	m := hmac.New(sha256.New, key)
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
	series   map[DeviceID]DeviceID // series hashes learnt in this batch
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
		if ps == phoneGone {
			if !r.fresh {
				return Slip{}, ErrUnknownPhone
			}
			o.phones[r.device] = phoneJoined
			o.issued++
		}
		slip := Slip{Choice: o.slip(r.device), Round: round}
		if r.inSeries {
			o.series[r.device] = r.seriesID
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
			o.series[r.device] = r.seriesID
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
			if s.mem.seriesKey != nil {
				r.seriesID, r.inSeries = keyedHash(s.mem.seriesKey, r.secret), true
			}
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
		series:   map[DeviceID]DeviceID{},
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
	// Work the batch out in memory first. Locking never waits on the disk,
	// and BEGIN itself may wait on a file another process holds: if the
	// batch would lock, say so before it. A batch of joins only writes
	// nothing and needs no transaction at all.
	dry := s.newOverlay()
	results := make([]result, len(batch))
	for i, r := range batch {
		slip, err := dry.apply(ctx, nil, r)
		results[i] = result{slip: slip, err: err}
	}
	if !dry.dirty {
		dry.commit()
		s.publish()
		return results, true
	}
	if pending := dry.counts(); !Decide(pending).Unlocked && s.State().Unlocked {
		s.publishCounts(pending, dry.issued)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.storageFailed(err)
		return nil, false
	}
	defer tx.Rollback()
	o := s.newOverlay()
	for i, r := range batch {
		slip, err := o.apply(ctx, tx, r)
		if err != nil && !isDomainError(err) {
			s.storageFailed(err)
			return nil, false
		}
		results[i] = result{slip: slip, err: err}
	}
	open, err := s.markInterval(ctx, tx, s.mem.open, o.counts(), s.mem.round.ID, EndSlipChanged)
	if err != nil {
		s.storageFailed(err)
		return nil, false
	}
	if err := tx.Commit(); err != nil {
		s.storageFailed(err)
		return nil, false
	}
	o.commit()
	s.mem.open = open
	s.publish()
	return results, true
}

// storageFailed locks the kiosk until a write succeeds again (R10).
func (s *Store) storageFailed(err error) {
	if !s.mem.fault {
		slog.Error("storage failed; the kiosk is locked until a write succeeds", "err", err)
		if s.mem.open {
			s.mem.faultAt = s.now()
		}
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
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)`, s.now().UTC().Format(stampFormat))
		if err == nil && s.mem.open {
			// The interval ended when storage failed: the kiosk locked then.
			_, err = tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`,
				s.mem.faultAt.UTC().Format(stampFormat), EndFault)
		}
		if err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		return
	}
	s.mem.fault = false
	s.mem.open, s.mem.faultAt = false, time.Time{}
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
	if !s.mem.open && Decide(s.mem.counts()).Unlocked {
		// The tally unlocks again without any held change: that starts an
		// interval of its own.
		if err := s.syncInterval(); err != nil {
			s.storageFailed(err)
			return
		}
	}
	slog.Info("storage works again")
	s.publish()
}

// syncInterval records the start of an unlocked interval when the tally
// unlocks by itself rather than by a change.
func (s *Store) syncInterval() error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	open, err := s.markInterval(ctx, tx, s.mem.open, s.mem.counts(), s.mem.round.ID, EndFault)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.mem.open = open
	return nil
}
