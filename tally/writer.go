package tally

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
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
	admit  bool     // opJoin: a new phone may join (it showed a valid join token)
	choice Choice   // opCast
	round  int64    // opCast: the round the phone was shown; 0 means current

	// seriesID is the phone's keyed hash under the current round's series
	// key, set by the writer with device when the round has a series.
	seriesID DeviceID
	inSeries bool

	// lecturer ops run alone in a transaction; after a commit the writer
	// calls the returned apply to update memory.
	lecturer func(ctx context.Context, tx *sql.Tx) (apply func(), err error)
	// pre, if set, says what the counts will be if the lecturer op
	// succeeds (ok false: it will fail or it cannot tell). A change that
	// locks is published before the transaction, which may wait on the disk.
	pre func() (next Counts, ok bool)
	// holding: the op's lock was published while it waited in the backlog,
	// and s.holdLock counts it until the op runs.
	holding bool
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

// SetHeadcount sets the number of people present besides the lecturer. It
// returns ErrInvalid outside MinHeadcount..MaxHeadcount and ErrClosed while
// the session is closed.
func (s *Store) SetHeadcount(ctx context.Context, n int) error {
	if n < MinHeadcount || n > MaxHeadcount {
		return fmt.Errorf("%w: headcount must be a whole number from %d to %d", ErrInvalid, MinHeadcount, MaxHeadcount)
	}
	next := func() Counts {
		c := s.mem.counts()
		c.Headcount = n
		return c
	}
	pre := func() (Counts, bool) { return next(), !s.mem.closed }
	return s.lecturerPre(ctx, false, pre, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if s.mem.closed {
			return nil, ErrClosed
		}
		if n == s.mem.headcount {
			return func() {}, nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET headcount = ? WHERE id = ?`, n, s.mem.round.ID); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
			s.mem.round.ID, s.now().UTC().Format(stampFormat), n); err != nil {
			return nil, err
		}
		iv, err := s.markInterval(ctx, tx, s.mem.iv, next(), s.mem.round.ID, EndHeadcountChange)
		if err != nil {
			return nil, err
		}
		return func() { s.mem.headcount, s.mem.iv = n, iv }, nil
	})
}

// SetPaper sets the current round's paper slips: how many consents and
// refusals the lecturer counted in the paper box. It sets rather than adds,
// so a retried request changes nothing. Paper slips count in the rule like
// phone slips. Their split is kept in memory only and the database has their
// total: after a restart the lecturer enters the counts again. It returns
// ErrInvalid for counts outside 0..MaxHeadcount or in a lecturer-only round,
// and ErrClosed while the session is closed.
func (s *Store) SetPaper(ctx context.Context, consents, refusals int) error {
	if consents < 0 || refusals < 0 || consents > MaxHeadcount || refusals > MaxHeadcount {
		return fmt.Errorf("%w: paper counts must be whole numbers from 0 to %d", ErrInvalid, MaxHeadcount)
	}
	next := func() Counts {
		c := s.mem.counts()
		c.PaperConsents, c.PaperRefusals, c.PaperMissing = consents, refusals, 0
		return c
	}
	pre := func() (Counts, bool) {
		return next(), !s.mem.closed && s.mem.round.Mode != ModeLecturerOnly && s.mem.round.Purpose != ""
	}
	return s.lecturerPre(ctx, false, pre, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if s.mem.closed {
			return nil, ErrClosed
		}
		if s.mem.round.Mode == ModeLecturerOnly {
			return nil, fmt.Errorf("%w: a lecturer-only round takes no slips", ErrInvalid)
		}
		if s.mem.round.Purpose == "" {
			return nil, fmt.Errorf("%w: start a round with a purpose first", ErrInvalid)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET paper = ? WHERE id = ?`, consents+refusals, s.mem.round.ID); err != nil {
			return nil, err
		}
		iv, err := s.markInterval(ctx, tx, s.mem.iv, next(), s.mem.round.ID, EndPaperChange)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.paper, s.mem.paperMissing, s.mem.iv = paperCounts{consents, refusals}, 0, iv
		}, nil
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
	pre := func() (Counts, bool) {
		headcount := s.mem.headcount
		if s.mem.closed {
			headcount = 0
		}
		return Counts{Headcount: headcount, LecturerOnly: spec.Mode == ModeLecturerOnly}, true
	}
	err = s.lecturerPre(ctx, false, pre, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if !s.mem.closed {
			if err := s.endRound(ctx, tx); err != nil {
				return nil, err
			}
		}
		// The old round's slips stop counting: no phone holds one now.
		if _, err := tx.ExecContext(ctx, `DELETE FROM phones`); err != nil {
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
		if headcount > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
				next.ID, next.OpenedAt.Format(stampFormat), headcount); err != nil {
				return nil, err
			}
		}
		counts, _ := pre()
		iv, err := s.markInterval(ctx, tx, s.mem.iv, counts, next.ID, EndNewRound)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.round, s.mem.headcount = next, headcount
			s.mem.closed = false
			for d := range s.mem.phones {
				s.mem.phones[d] = phoneJoined
			}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper, s.mem.paperMissing = paperCounts{}, 0
			s.mem.missing, s.mem.drop = map[DeviceID]struct{}{}, map[DeviceID]struct{}{}
			s.mem.seriesKey, s.mem.seriesIDs, s.mem.seriesDays = seriesKey, map[DeviceID]DeviceID{}, days
			s.mem.iv = iv
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
// If the round belongs to a series and ends
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
	pre := func() (Counts, bool) {
		c := s.mem.counts()
		c.Closed = true
		return c, true
	}
	return s.lecturerPre(ctx, true, pre, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if !s.mem.closed {
			if err := s.endRound(ctx, tx); err != nil {
				return nil, err
			}
		}
		key := s.newKey()
		if _, err := tx.ExecContext(ctx, `DELETE FROM phones`); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('closed', '1'), ('device_key', ?)`, key); err != nil {
			return nil, err
		}
		next, _ := pre()
		iv, err := s.markInterval(ctx, tx, s.mem.iv, next, s.mem.round.ID, EndClosed)
		if err != nil {
			return nil, err
		}
		return func() {
			s.mem.closed = true
			s.mem.deviceKey = key
			s.mem.phones = map[DeviceID]phoneState{}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper, s.mem.paperMissing = paperCounts{}, 0
			s.mem.missing, s.mem.drop = map[DeviceID]struct{}{}, map[DeviceID]struct{}{}
			s.mem.seriesIDs = map[DeviceID]DeviceID{}
			s.mem.iv = iv
			clear(s.held)
		}, nil
	})
}

// ReleaseMissing lets go the phones that held a slip before a restart and
// have not sent it again: their slips are removed and they leave the
// session (they join again with a fresh join token), and paper slips not
// entered again since the restart are dropped, so that the lecturer asks
// the room again. With nothing missing it changes nothing.
func (s *Store) ReleaseMissing(ctx context.Context) error {
	return s.lecturerOp(ctx, false, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if len(s.mem.missing) == 0 && s.mem.paperMissing == 0 {
			return func() {}, nil
		}
		for d := range s.mem.missing {
			if _, err := tx.ExecContext(ctx, `DELETE FROM phones WHERE device = ?`, d[:]); err != nil {
				return nil, err
			}
		}
		if s.mem.paperMissing > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE rounds SET paper = ? WHERE id = ?`,
				s.mem.paper.consents+s.mem.paper.refusals, s.mem.round.ID); err != nil {
				return nil, err
			}
		}
		next := s.mem.counts()
		next.Missing, next.PaperMissing = 0, 0
		iv, err := s.markInterval(ctx, tx, s.mem.iv, next, s.mem.round.ID, EndSlipChanged)
		if err != nil {
			return nil, err
		}
		return func() {
			for d := range s.mem.missing {
				delete(s.mem.phones, d)
				delete(s.mem.seriesIDs, d)
				delete(s.held, d)
			}
			s.mem.missing, s.mem.paperMissing = map[DeviceID]struct{}{}, 0
			s.mem.iv = iv
		}, nil
	})
}

// markInterval writes in tx the end of the unlocked interval iv, if it
// ended earlier without being written, or if the change to next ends it,
// saying why; and the start of a new one, if next unlocks round (R8). It
// returns the interval after the change; the caller stores that in s.mem
// once tx has committed. Doing this in the change's own transaction means
// the record never misses an unlock that phones and recorders saw.
func (s *Store) markInterval(ctx context.Context, tx *sql.Tx, iv interval, next Counts, round int64, why string) (interval, error) {
	next.Unreachable = next.Unreachable || s.unreachable.Load()
	unlocked := Decide(next).Unlocked
	now := s.now().UTC().Format(stampFormat)
	if iv.open && iv.endWhy != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`,
			iv.endAt.UTC().Format(stampFormat), iv.endWhy); err != nil {
			return iv, err
		}
		iv = interval{}
	}
	if iv.open && (!unlocked || round != s.mem.round.ID) {
		if _, err := tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`, now, why); err != nil {
			return iv, err
		}
		iv.open = false
	}
	if unlocked && !iv.open {
		if _, err := tx.ExecContext(ctx, `INSERT INTO intervals (round, started_at) VALUES (?, ?)`, round, now); err != nil {
			return iv, err
		}
		iv.open = true
	}
	return iv, nil
}

// lecturerOp runs fn alone in a transaction on the writer goroutine and,
// after the commit, the function it returns. checkpoint: see request.
func (s *Store) lecturerOp(ctx context.Context, checkpoint bool, fn func(context.Context, *sql.Tx) (func(), error)) error {
	_, err := s.submit(ctx, &request{kind: opLecturer, lecturer: fn, checkpoint: checkpoint})
	return err
}

// lecturerPre is lecturerOp for a change that may lock: pre says what the
// counts will be, and a lock is published before the transaction begins.
// Closing the session checkpoints, as it deletes per-device rows.
func (s *Store) lecturerPre(ctx context.Context, checkpoint bool, pre func() (Counts, bool), fn func(context.Context, *sql.Tx) (func(), error)) error {
	_, err := s.submit(ctx, &request{kind: opLecturer, lecturer: fn, pre: pre, checkpoint: checkpoint})
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

// flushRetry is how soon a background write that found the file held by
// another process tries again. Background writes never wait on the file:
// no phone waits for them, and the writer must stay free to publish locks.
const flushRetry = 250 * time.Millisecond

// writer is the only goroutine that writes to the database or to s.mem.
func (s *Store) writer() {
	defer close(s.done)
	var retry, flushAgain <-chan time.Time
	purge := time.NewTicker(s.purgeEvery)
	defer purge.Stop()
	for {
		if len(s.backlog) > 0 {
			batch := s.backlog
			s.backlog = nil
			s.run(batch)
			continue
		}
		var first *request
		select {
		case first = <-s.reqs:
		case <-retry:
			retry = nil
			s.recover()
		case <-flushAgain:
			flushAgain = nil
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
		if flushAgain == nil && !s.flush() {
			flushAgain = time.After(flushRetry)
		}
		if s.mem.fault && retry == nil {
			retry = time.After(s.faultRetry)
		}
	}
}

func (s *Store) drain() {
	for _, r := range s.backlog {
		r.reply <- result{err: ErrStopped}
	}
	s.backlog = nil
	for {
		select {
		case r := <-s.reqs:
			r.reply <- result{err: ErrStopped}
		default:
			return
		}
	}
}

// run carries out a batch: runs of phone changes together; each lecturer
// change in a transaction of its own.
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
	// A change that locks is published first, and held while it waits:
	// BEGIN may wait on a file another process holds, and a lock never
	// waits on the disk. One that waited in the backlog was published then.
	holding := r.holding
	r.holding = false
	if !holding && r.pre != nil && !s.mem.fault {
		if next, ok := r.pre(); ok && !Decide(next).Unlocked {
			if s.State().Unlocked {
				s.publishCounts(next, len(s.mem.phones))
			}
			s.holdLock++
			holding = true
		}
	}
	finish := func(err error) {
		if holding {
			holding = false
			s.holdLock--
		}
		s.publish() // what the change left, or, if it failed, what was
		r.reply <- result{err: err}
	}
	if s.mem.fault {
		finish(ErrStorage)
		return
	}
	tx, err := s.begin(ctx, nil)
	if err != nil {
		if errors.Is(err, ErrStopped) {
			finish(ErrStopped)
			return
		}
		s.storageFailed(err)
		finish(ErrStorage)
		return
	}
	defer tx.Rollback()
	apply, err := r.lecturer(ctx, tx)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		if !isDomainError(err) {
			s.storageFailed(err)
			err = ErrStorage
		}
		finish(err)
		return
	}
	apply()
	if r.checkpoint {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			s.log.Warn("checkpoint after deleting failed; deleted rows stay in the WAL file until the next checkpoint", "err", err)
		}
	}
	finish(nil)
}

// endOnStop writes what is left to write when the kiosk shuts down, and
// ends the open unlocked interval: from then on recorders get no answer,
// which means locked. If the file is held, rows of phones that withdrew
// stay, and the next start waits for those phones: the safe side.
func (s *Store) endOnStop() {
	if s.mem.fault {
		return
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err == nil {
		defer tx.Rollback()
		err = s.writeDrops(ctx, tx)
		iv := s.mem.iv
		if err == nil && iv.open {
			at, why := s.now(), EndStopped
			if iv.endWhy != "" {
				at, why = iv.endAt, iv.endWhy
			}
			_, err = tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`,
				at.UTC().Format(stampFormat), why)
		}
		if err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		s.log.Error("could not record the end of the session's last changes; the next start waits for the phones and the record says the interval was interrupted", "err", err)
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

// isBusy reports whether err says another connection holds the file.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
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

// runPhones carries out a run of phone changes. Changes that need the
// disk before their answer (a phone's first slip in the round), and every
// other change of the same phones, share one transaction and are answered
// after its commit. All other changes (changes of mind, withdrawals,
// leaves, hellos) are made in memory and answered at once; what they leave
// to write (a row to delete, the end of an unlocked interval) is written
// afterwards, and an unlock waits for that.
func (s *Store) runPhones(batch []*request) {
	if len(batch) == 0 {
		return
	}
	for _, r := range batch {
		s.prepare(r)
	}
	dry := s.newOverlay()
	needsDisk := map[DeviceID]bool{}
	for _, r := range batch {
		n := len(dry.inserts)
		dry.apply(r)
		if len(dry.inserts) > n {
			needsDisk[r.device] = true
		}
	}
	var fast, slow []*request
	for _, r := range batch {
		if needsDisk[r.device] {
			slow = append(slow, r)
		} else {
			fast = append(fast, r)
		}
	}
	s.runInMemory(fast)
	s.runDurable(slow)
}

// prepare hashes a phone change's device secret, which then leaves it.
func (s *Store) prepare(r *request) {
	if r.secret != "" {
		r.device = s.hash(r.secret)
		if s.mem.seriesKey != nil {
			r.seriesID, r.inSeries = keyedHash(s.mem.seriesKey, r.secret), true
		}
		r.secret = ""
	}
}

// runInMemory makes changes that need no disk before their answer.
func (s *Store) runInMemory(batch []*request) {
	if len(batch) == 0 {
		return
	}
	o := s.newOverlay()
	results := make([]result, len(batch))
	for i, r := range batch {
		slip, err := o.apply(r)
		results[i] = result{slip: slip, err: err}
	}
	o.commit()
	if iv := &s.mem.iv; iv.open && iv.endWhy == "" && !Decide(s.mem.counts()).Unlocked {
		// Deliberately one reason for a change, a withdrawal and a leave,
		// so that the record never tells a refusal from a withdrawal.
		iv.endAt, iv.endWhy = s.now(), EndSlipChanged
	}
	if s.unrecordedUnlock() {
		// A change that unlocks is answered once the record has the
		// unlock, so that a phone that hears its ack sees the tally it
		// made; flush never waits for a held file, and with one the
		// unlock shows later.
		s.flush()
	}
	s.publish()
	for i, r := range batch {
		delete(s.held, r.device) // a newer change of the same phone
		r.reply <- results[i]
	}
}

// runDurable commits changes that need the disk in one transaction and
// answers each only after the commit. A lock they cause is published first.
// While the file is held by another process, the transaction waits without
// holding up the changes that need no disk (see begin).
func (s *Store) runDurable(batch []*request) {
	if len(batch) == 0 {
		return
	}
	fail := func(err error) {
		if err == ErrStorage {
			// Keep each phone's latest change so that it is made durable as
			// soon as storage works again; the phone is told it failed and
			// may resend.
			for _, r := range batch {
				s.held[r.device] = r
			}
		}
		for _, r := range batch {
			r.reply <- result{err: err}
		}
	}
	if s.mem.fault {
		fail(ErrStorage)
		return
	}
	ctx := context.Background()
	o := s.newOverlay()
	for _, r := range batch {
		o.apply(r)
	}
	unhold := func() {}
	if pending := o.counts(); !Decide(pending).Unlocked {
		if s.State().Unlocked {
			s.publishCounts(pending, o.issued)
		}
		// Nothing done while the transaction waits may unlock meanwhile.
		s.holdLock++
		held := true
		unhold = func() {
			if held {
				held = false
				s.holdLock--
			}
		}
	}
	defer unhold()
	devices := map[DeviceID]bool{}
	for _, r := range batch {
		devices[r.device] = true
	}
	tx, err := s.begin(ctx, devices)
	if err != nil {
		if errors.Is(err, ErrStopped) {
			fail(ErrStopped)
			return
		}
		s.storageFailed(err)
		fail(ErrStorage)
		return
	}
	defer tx.Rollback()
	// Changes made while the transaction waited concern other phones; work
	// the batch out again on memory as it is now.
	o = s.newOverlay()
	results := make([]result, len(batch))
	for i, r := range batch {
		slip, err := o.apply(r)
		results[i] = result{slip: slip, err: err}
	}
	err = o.writeInserts(ctx, tx)
	var iv interval
	if err == nil {
		iv, err = s.markInterval(ctx, tx, s.mem.iv, o.counts(), s.mem.round.ID, EndSlipChanged)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.storageFailed(err)
		fail(ErrStorage)
		return
	}
	o.commit()
	s.mem.iv = iv
	unhold()
	s.publish()
	for i, r := range batch {
		delete(s.held, r.device)
		r.reply <- results[i]
	}
}

// durableRetry is how often a transaction that found the file held by
// another process tries again; in between the writer goes on with changes
// that need no disk, so that a withdrawal never waits behind a commit.
const durableRetry = 10 * time.Millisecond

// begin starts the transaction of a durable batch, whose phones are
// devices. While the file is held by another process, it tries again every
// durableRetry for up to busyTimeoutMS, and meanwhile serves what arrives:
// changes of other phones that need no disk are made at once; everything
// else goes to the backlog, in order, and a lecturer's change that locks
// publishes its lock first.
func (s *Store) begin(ctx context.Context, devices map[DeviceID]bool) (*sql.Tx, error) {
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	restore := fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeoutMS)
	for {
		if _, err := s.db.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
			return nil, err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err == nil {
			// The one connection is the transaction's now.
			if _, err := tx.ExecContext(ctx, restore); err != nil {
				tx.Rollback()
				return nil, err
			}
			return tx, nil
		}
		s.db.ExecContext(ctx, restore)
		if !isBusy(err) || time.Now().After(deadline) {
			return nil, err
		}
		timer := time.NewTimer(durableRetry)
	wait:
		for {
			select {
			case r := <-s.reqs:
				s.serveWhileWaiting(r, devices)
			case <-timer.C:
				break wait
			case <-s.stop:
				timer.Stop()
				return nil, ErrStopped
			}
		}
	}
}

// serveWhileWaiting handles r while a durable batch for devices waits for
// the file.
func (s *Store) serveWhileWaiting(r *request, devices map[DeviceID]bool) {
	if r.kind == opLecturer {
		if r.pre != nil {
			if next, ok := r.pre(); ok && !Decide(next).Unlocked {
				if s.State().Unlocked {
					s.publishCounts(next, len(s.mem.phones))
				}
				r.holding = true
				s.holdLock++
			}
		}
		s.backlog = append(s.backlog, r)
		return
	}
	s.prepare(r)
	later := devices[r.device]
	for _, b := range s.backlog {
		later = later || (b.kind != opLecturer && b.device == r.device)
	}
	if !later {
		dry := s.newOverlay()
		dry.apply(r)
		later = len(dry.inserts) > 0
	}
	if later {
		s.backlog = append(s.backlog, r)
		return
	}
	s.runInMemory([]*request{r})
}

// pending reports whether anything is left to write: rows of phones that no
// longer hold a slip, the end of an unlocked interval, or the start of one
// that memory unlocked and the record does not have yet.
func (s *Store) pending() bool {
	iv := s.mem.iv
	return len(s.mem.drop) > 0 || (iv.open && iv.endWhy != "") || s.unrecordedUnlock()
}

// unrecordedUnlock reports whether memory unlocks while the record has no
// open interval for it (none, or one whose end is not yet written).
func (s *Store) unrecordedUnlock() bool {
	iv := s.mem.iv
	return Decide(s.mem.counts()).Unlocked && (!iv.open || iv.endWhy != "")
}

// writeDrops deletes in tx the rows of phones that no longer hold a slip.
func (s *Store) writeDrops(ctx context.Context, tx *sql.Tx) error {
	for d := range s.mem.drop {
		if _, err := tx.ExecContext(ctx, `DELETE FROM phones WHERE device = ?`, d[:]); err != nil {
			return err
		}
	}
	return nil
}

// flush writes what in-memory changes left to write, and then publishes:
// an unlock shows only once the record has it. It never waits for a file
// another process holds; it returns false, to be tried again soon.
func (s *Store) flush() bool {
	if s.mem.fault || !s.pending() {
		return true
	}
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		s.storageFailed(err)
		return true
	}
	defer s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeoutMS))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		if isBusy(err) {
			return false
		}
		s.storageFailed(err)
		return true
	}
	defer tx.Rollback()
	err = s.writeDrops(ctx, tx)
	var iv interval
	if err == nil {
		iv, err = s.markInterval(ctx, tx, s.mem.iv, s.mem.counts(), s.mem.round.ID, EndSlipChanged)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		if isBusy(err) {
			return false
		}
		s.storageFailed(err)
		return true
	}
	clear(s.mem.drop)
	s.mem.iv = iv
	s.publish()
	return true
}

// storageFailed locks the kiosk until a write succeeds again (R10).
func (s *Store) storageFailed(err error) {
	if !s.mem.fault {
		s.log.Error("storage failed; the kiosk is locked until a write succeeds", "err", err)
		if s.mem.iv.open && s.mem.iv.endWhy == "" {
			s.mem.faultAt = s.now()
		}
	}
	s.mem.fault = true
	s.publish()
}

// recover tries a write while the store is in fault. On success it first
// makes durable the phone changes that failed, then unlocks as the rule
// says, once the record has it (flush).
func (s *Store) recover() {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err == nil {
		defer tx.Rollback()
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)`, s.now().UTC().Format(stampFormat))
		if err == nil && s.mem.iv.open {
			// The interval ended when the kiosk locked: at a change not yet
			// written, or when storage failed.
			at, why := s.mem.faultAt, EndFault
			if s.mem.iv.endWhy != "" {
				at, why = s.mem.iv.endAt, s.mem.iv.endWhy
			}
			_, err = tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`,
				at.UTC().Format(stampFormat), why)
		}
		if err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		return
	}
	s.mem.fault = false
	s.mem.iv, s.mem.faultAt = interval{}, time.Time{}
	if len(s.held) > 0 {
		batch := make([]*request, 0, len(s.held))
		for _, r := range s.held {
			r.reply = make(chan result, 1) // nobody waits any more
			batch = append(batch, r)
		}
		clear(s.held)
		s.runPhones(batch)
		if s.mem.fault {
			return
		}
	}
	s.log.Info("storage works again")
	s.publish()
}
