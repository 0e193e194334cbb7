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
	return s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			if now.closed {
				return outcome{}, ErrClosed
			}
			out := now.keep()
			out.headcount, out.endWhy = n, EndHeadcountChange
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, _ *outcome) error {
			if n == s.mem.headcount {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE rounds SET headcount = ? WHERE id = ?`, n, s.mem.round.ID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
				s.mem.round.ID, s.now().UTC().Format(stampFormat), n)
			return err
		},
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
	return s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			switch {
			case now.closed:
				return outcome{}, ErrClosed
			case now.round.Mode == ModeLecturerOnly:
				return outcome{}, fmt.Errorf("%w: a lecturer-only round takes no slips", ErrInvalid)
			case now.round.Purpose == "":
				return outcome{}, fmt.Errorf("%w: start a round with a purpose first", ErrInvalid)
			}
			out := now.keep()
			out.paper, out.paperMissing, out.endWhy = paperCounts{consents, refusals}, 0, EndPaperChange
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, _ *outcome) error {
			_, err := tx.ExecContext(ctx, `UPDATE rounds SET paper = ? WHERE id = ?`, consents+refusals, s.mem.round.ID)
			return err
		},
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
	var opened Round
	err = s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			out := outcome{endWhy: EndNewRound}
			// The round's ID, series key and remembered phones are known once
			// write has run.
			out.round = Round{Mode: spec.Mode}
			out.headcount, out.deviceKey = now.headcount, now.deviceKey
			if now.closed {
				out.headcount = 0 // a new session: the room must be counted again
			}
			// The old round's slips stop counting: no phone holds one now.
			h := newHall()
			for d := range now.phones {
				h.phones[d] = phoneJoined
			}
			h.held = now.held
			out.hall = &h
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, out *outcome) error {
			if err := s.endSession(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'closed'`); err != nil {
				return err
			}
			if spec.Series != "" {
				var err error
				hash := noticeHash(spec.Purpose, spec.canonicalNotice(), spec.Mode)
				if out.seriesKey, err = s.joinSeries(ctx, tx, spec.Series, hash); err != nil {
					return err
				}
			}
			var err error
			if out.seriesDays, err = loadSeriesDays(ctx, tx, spec.Series); err != nil {
				return err
			}
			if out.round, err = s.insertRound(ctx, tx, spec, out.headcount); err != nil {
				return err
			}
			if out.headcount > 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO headcounts (round, at, headcount) VALUES (?, ?, ?)`,
					out.round.ID, out.round.OpenedAt.Format(stampFormat), out.headcount); err != nil {
					return err
				}
			}
			opened = out.round
			return nil
		},
	})
	if err != nil {
		return Round{}, err
	}
	return opened, nil
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

// endSession ends the round, unless the session is closed and so has no
// round open, and forgets every phone.
func (s *Store) endSession(ctx context.Context, tx *sql.Tx) error {
	if !s.mem.closed {
		if err := s.endRound(ctx, tx); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM phones`)
	return err
}

// endRound writes the aggregate record of the current round as it ends
// (R8): when, the slips received, the outcome and the total of paper slips.
// If the round belongs to a series and ends with everyone's consent, every
// phone whose keyed series hash is known is remembered for the series with
// today's date (R5). Remembering only such rounds means the series memory
// never holds more than the record already says: that everyone who handed
// in a slip consented.
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
	return s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			out := now.keep()
			out.closed, out.paper, out.paperMissing, out.endWhy = true, paperCounts{}, 0, EndClosed
			h := newHall()
			out.hall = &h
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, out *outcome) error {
			if err := s.endSession(ctx, tx); err != nil {
				return err
			}
			out.deviceKey = s.newKey()
			_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('closed', '1'), ('device_key', ?)`, out.deviceKey)
			return err
		},
		checkpoint: true,
	})
}

// ReleaseMissing lets go the phones that held a slip before a restart and
// have not sent it again: their slips are removed and they leave the
// session (they join again with a fresh join token), and paper slips not
// entered again since the restart are dropped, so that the lecturer asks
// the room again. With nothing missing it changes nothing.
func (s *Store) ReleaseMissing(ctx context.Context) error {
	return s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			out := now.keep()
			out.endWhy = EndSlipChanged
			if len(now.missing) == 0 && now.paperMissing == 0 {
				return out, nil
			}
			out.paperMissing = 0
			h := now.hall
			h.phones, h.seriesIDs, h.held = without(now.phones, now.missing), without(now.seriesIDs, now.missing), without(now.held, now.missing)
			h.missing = map[DeviceID]struct{}{}
			out.hall = &h
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, _ *outcome) error {
			for d := range s.mem.missing {
				if _, err := tx.ExecContext(ctx, `DELETE FROM phones WHERE device = ?`, d[:]); err != nil {
					return err
				}
			}
			if s.mem.paperMissing > 0 {
				_, err := tx.ExecContext(ctx, `UPDATE rounds SET paper = ? WHERE id = ?`,
					s.mem.paper.consents+s.mem.paper.refusals, s.mem.round.ID)
				return err
			}
			return nil
		},
	})
}

// without returns a copy of m without the phones in gone.
func without[V any](m map[DeviceID]V, gone map[DeviceID]struct{}) map[DeviceID]V {
	out := make(map[DeviceID]V, len(m))
	for d, v := range m {
		if _, ok := gone[d]; !ok {
			out[d] = v
		}
	}
	return out
}

// insertRound writes a new round, whose spec is normalized, in tx.
func (s *Store) insertRound(ctx context.Context, tx *sql.Tx, spec RoundSpec, headcount int) (Round, error) {
	now := s.now().UTC()
	notice := spec.canonicalNotice()
	hash := noticeHash(spec.Purpose, notice, spec.Mode)
	res, err := tx.ExecContext(ctx, `INSERT INTO rounds (purpose, notice, notice_hash, template, series, mode, headcount, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
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
