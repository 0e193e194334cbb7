package tally

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Rounds: the lecturer's changes (headcount, paper slips, a new round,
// series, closing the session, letting missing phones go).

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
	return s.change(ctx, &lecturerChange{refuse: s.refuseClosed, next: next, endWhy: EndHeadcountChange, phonesMeanwhile: true, write: func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if n == s.mem.headcount {
			return nil, nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET headcount = ? WHERE id = ?`, n, s.mem.round.ID); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
			s.mem.round.ID, s.now().UTC().Format(stampFormat), n); err != nil {
			return nil, err
		}
		return func() { s.mem.headcount = n }, nil
	}})
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
	refuse := func() error {
		switch {
		case s.mem.closed:
			return ErrClosed
		case s.mem.round.Mode == ModeLecturerOnly:
			return fmt.Errorf("%w: a lecturer-only round takes no slips", ErrInvalid)
		case s.mem.round.Purpose == "":
			return fmt.Errorf("%w: start a round with a purpose first", ErrInvalid)
		}
		return nil
	}
	return s.change(ctx, &lecturerChange{refuse: refuse, next: next, endWhy: EndPaperChange, phonesMeanwhile: true, write: func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET paper = ? WHERE id = ?`, consents+refusals, s.mem.round.ID); err != nil {
			return nil, err
		}
		return func() { s.mem.paper, s.mem.paperMissing = paperCounts{consents, refusals}, 0 }, nil
	}})
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
	next := func() Counts {
		headcount := s.mem.headcount
		if s.mem.closed {
			headcount = 0
		}
		return Counts{Headcount: headcount, LecturerOnly: spec.Mode == ModeLecturerOnly}
	}
	var opened Round
	write := func(ctx context.Context, tx *sql.Tx) (func(), error) {
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
		opened, err = s.insertRound(ctx, tx, spec, headcount)
		if err != nil {
			return nil, err
		}
		if headcount > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
				opened.ID, opened.OpenedAt.Format(stampFormat), headcount); err != nil {
				return nil, err
			}
		}
		return func() {
			s.mem.round, s.mem.headcount = opened, headcount
			s.mem.closed = false
			for d := range s.mem.phones {
				s.mem.phones[d] = phoneJoined
			}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper, s.mem.paperMissing = paperCounts{}, 0
			s.mem.missing, s.mem.drop = map[DeviceID]struct{}{}, map[DeviceID]struct{}{}
			s.mem.seriesKey, s.mem.seriesIDs, s.mem.seriesDays = seriesKey, map[DeviceID]DeviceID{}, days
			round = opened
		}, nil
	}
	err = s.change(ctx, &lecturerChange{next: next, write: write, endWhy: EndNewRound, newRound: func() int64 { return opened.ID }})
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
	next := func() Counts {
		c := s.mem.counts()
		c.Closed = true
		return c
	}
	return s.change(ctx, &lecturerChange{next: next, endWhy: EndClosed, checkpoint: true, write: func(ctx context.Context, tx *sql.Tx) (func(), error) {
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
		return func() {
			s.mem.closed = true
			s.mem.deviceKey = key
			s.mem.phones = map[DeviceID]phoneState{}
			s.mem.slips = map[DeviceID]Choice{}
			s.mem.consents, s.mem.refusals = 0, 0
			s.mem.paper, s.mem.paperMissing = paperCounts{}, 0
			s.mem.missing, s.mem.drop = map[DeviceID]struct{}{}, map[DeviceID]struct{}{}
			s.mem.seriesIDs = map[DeviceID]DeviceID{}
			clear(s.held)
		}, nil
	}})
}

// ReleaseMissing lets go the phones that held a slip before a restart and
// have not sent it again: their slips are removed and they leave the
// session (they join again with a fresh join token), and paper slips not
// entered again since the restart are dropped, so that the lecturer asks
// the room again. With nothing missing it changes nothing.
func (s *Store) ReleaseMissing(ctx context.Context) error {
	next := func() Counts {
		c := s.mem.counts()
		c.Missing, c.PaperMissing = 0, 0
		return c
	}
	return s.change(ctx, &lecturerChange{next: next, endWhy: EndSlipChanged, write: func(ctx context.Context, tx *sql.Tx) (func(), error) {
		if len(s.mem.missing) == 0 && s.mem.paperMissing == 0 {
			return nil, nil
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
		return func() {
			for d := range s.mem.missing {
				delete(s.mem.phones, d)
				delete(s.mem.seriesIDs, d)
				delete(s.held, d)
			}
			s.mem.missing, s.mem.paperMissing = map[DeviceID]struct{}{}, 0
		}, nil
	}})
}

// insertRound writes a new round, whose spec is normalized, in tx.
func (s *Store) insertRound(ctx context.Context, tx *sql.Tx, spec RoundSpec, headcount int) (Round, error) {
	now := s.now().UTC()
	notice := spec.canonicalNotice()
	hash := noticeHash(spec.Purpose, notice, spec.Mode)
	res, err := tx.ExecContext(ctx, `INSERT INTO rounds (purpose, notice, notice_hash, lang, series, mode, headcount, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		spec.Purpose, notice, hash, spec.Template, spec.Series, spec.Mode, headcount, now.Format(stampFormat))
	if err != nil {
		return Round{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Round{}, err
	}
	return Round{ID: id, Purpose: spec.Purpose, Notice: notice, NoticeHash: hash, Template: spec.Template,
		Series: spec.Series, Mode: spec.Mode, OpenedAt: now}, nil
}
