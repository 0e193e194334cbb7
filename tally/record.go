package tally

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Why an unlocked interval ended (R8). A slip that was changed, withdrawn or
// whose phone left is one reason, EndSlipChanged, so that the record never
// tells a refusal from a withdrawal.
const (
	EndSlipChanged     = "slip-changed"
	EndHeadcountChange = "headcount-change"
	EndPaperChange     = "paper-change"
	EndNewRound        = "new-round"
	EndClosed          = "closed"
	EndFault           = "fault"
	// EndStopped: the kiosk was shut down.
	EndStopped = "stopped"
	// EndInterrupted: the kiosk stopped without a shutdown (a crash, a
	// power cut); when the interval ended is unknown.
	EndInterrupted = "interrupted"
)

// OutcomeUnlocked is a round's outcome when it ended unlocked; any other
// outcome is the Reason it was locked for.
const OutcomeUnlocked = "unlocked"

// Interval is a stretch of time in which a round was unlocked.
type Interval struct {
	Start time.Time
	End   *time.Time // nil while open, or when interrupted
	Why   string     // one of the End reasons; "" while open
}

// HeadcountChange is a headcount the lecturer set, and when (R8). A
// lecturer who changes the headcount can see, from when the kiosk locked,
// things the record should not hide: so the record shows every change.
type HeadcountChange struct {
	At        time.Time
	Headcount int
}

// RoundRecord is the accountability record of one round (R8). It holds no
// device data, no time of any single slip, and never the split of consents
// and refusals: paper slips appear only as their total.
type RoundRecord struct {
	Round      int64
	Purpose    string
	Notice     json.RawMessage // the canonical notice: a string or an object
	NoticeHash string
	Template   string
	Series     string
	Mode       Mode
	OpenedAt   time.Time
	ClosedAt   *time.Time // nil while the round is current
	Headcount  int        // the last headcount set
	// Received is the slips in (phone and paper) when the round ended, or
	// now for the current round; nil for rounds from before it was kept.
	Received *int
	Paper    int // paper slips among Received
	// Outcome is OutcomeUnlocked or the reason the round was locked when it
	// ended (or now, for the current round).
	Outcome   string
	Current   bool
	Intervals []Interval
	// Headcounts is every headcount set in the round, oldest first: the
	// one it opened with (if any) and each change.
	Headcounts []HeadcountChange
}

// Record returns the record of round, or of every round kept when round is
// 0, oldest first. It returns ErrNotFound if round is not kept.
func (s *Store) Record(ctx context.Context, round int64) ([]RoundRecord, error) {
	var out []RoundRecord
	err := s.read(ctx, func(ctx context.Context, tx *sql.Tx) error {
		recs, err := s.readRecord(ctx, tx, round)
		if err != nil {
			return err
		}
		if round != 0 && len(recs) == 0 {
			return fmt.Errorf("%w: round %d is not in the record", ErrNotFound, round)
		}
		out = recs
		return nil
	})
	return out, err
}

func (s *Store) readRecord(ctx context.Context, tx *sql.Tx, round int64) ([]RoundRecord, error) {
	// A round without a purpose is the empty one a new kiosk starts with:
	// nobody was asked anything, and slips need a purpose.
	q := `SELECT id, purpose, notice, notice_hash, template, series, mode, opened_at, closed_at, headcount, received, paper, outcome FROM rounds WHERE purpose != ''`
	args := []any{}
	if round != 0 {
		q += ` AND id = ?`
		args = append(args, round)
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []RoundRecord
	byID := map[int64]int{}
	for rows.Next() {
		var r RoundRecord
		var notice, opened string
		var closed, outcome sql.NullString
		var received sql.NullInt64
		if err := rows.Scan(&r.Round, &r.Purpose, &notice, &r.NoticeHash, &r.Template, &r.Series, &r.Mode,
			&opened, &closed, &r.Headcount, &received, &r.Paper, &outcome); err != nil {
			return nil, err
		}
		r.Notice = json.RawMessage(notice)
		if !json.Valid(r.Notice) {
			r.Notice, _ = json.Marshal(notice)
		}
		if r.OpenedAt, err = parseStamp(opened); err != nil {
			return nil, err
		}
		if closed.Valid {
			t, err := parseStamp(closed.String)
			if err != nil {
				return nil, err
			}
			r.ClosedAt = &t
		}
		if received.Valid {
			n := int(received.Int64)
			r.Received = &n
		}
		r.Outcome = outcome.String
		if r.Round == s.mem.round.ID && !s.mem.closed {
			c := s.mem.counts()
			n := c.Received()
			r.Received, r.Paper, r.Current = &n, c.PaperConsents+c.PaperRefusals, true
			r.Headcount = c.Headcount
			if v := Decide(c); v.Unlocked {
				r.Outcome = OutcomeUnlocked
			} else {
				r.Outcome = string(v.Reason)
			}
		}
		r.Intervals = []Interval{}
		r.Headcounts = []HeadcountChange{}
		byID[r.Round] = len(recs)
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()

	q = `SELECT round, started_at, ended_at, ended_by FROM intervals`
	if round != 0 {
		q += ` WHERE round = ?`
	}
	irows, err := tx.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer irows.Close()
	for irows.Next() {
		var id int64
		var start string
		var end, why sql.NullString
		if err := irows.Scan(&id, &start, &end, &why); err != nil {
			return nil, err
		}
		i, ok := byID[id]
		if !ok {
			continue
		}
		iv := Interval{Why: why.String}
		if iv.Start, err = parseStamp(start); err != nil {
			return nil, err
		}
		if end.Valid {
			t, err := parseStamp(end.String)
			if err != nil {
				return nil, err
			}
			iv.End = &t
		}
		recs[i].Intervals = append(recs[i].Intervals, iv)
	}
	if err := irows.Err(); err != nil {
		return nil, err
	}
	irows.Close()

	q = `SELECT round, at, headcount FROM headcounts`
	if round != 0 {
		q += ` WHERE round = ?`
	}
	err = eachRowArgs(ctx, tx, q+` ORDER BY rowid`, args, func(rows *sql.Rows) error {
		var id int64
		var at string
		var h HeadcountChange
		if err := rows.Scan(&id, &at, &h.Headcount); err != nil {
			return err
		}
		i, ok := byID[id]
		if !ok {
			return nil
		}
		if h.At, err = parseStamp(at); err != nil {
			return err
		}
		recs[i].Headcounts = append(recs[i].Headcounts, h)
		return nil
	})
	return recs, err
}

func parseStamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// SeriesInfo describes a series the kiosk remembers consents for.
type SeriesInfo struct {
	Name       string
	Purpose    string // of the series' latest round still kept
	NoticeHash string
	StartedOn  string // YYYY-MM-DD
	LastOn     string // the last day a round of it ended with everyone's consent
}

// Series lists the series the kiosk remembers, by name.
func (s *Store) Series(ctx context.Context) ([]SeriesInfo, error) {
	var out []SeriesInfo
	err := s.read(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return eachRow(ctx, tx, `SELECT name, notice_hash, started_on, last_on,
			coalesce((SELECT purpose FROM rounds WHERE rounds.series = series.name ORDER BY id DESC LIMIT 1), '')
			FROM series ORDER BY name`, func(rows *sql.Rows) error {
			var si SeriesInfo
			if err := rows.Scan(&si.Name, &si.NoticeHash, &si.StartedOn, &si.LastOn, &si.Purpose); err != nil {
				return err
			}
			out = append(out, si)
			return nil
		})
	})
	return out, err
}

// EndSeries forgets a series: its key and every phone remembered for it are
// deleted (R5, R9). Rounds already recorded keep the series' name. It
// returns ErrNotFound if there is no such series.
func (s *Store) EndSeries(ctx context.Context, name string) error {
	return s.change(ctx, &soloChange{
		plan: func(now *memState) (outcome, error) {
			out := now.keep()
			if now.round.Series == name {
				// The current round's series: what memory holds of it goes
				// too, so its phones are no longer told they consented before.
				out.seriesKey, out.seriesDays = nil, map[DeviceID]string{}
				h := now.hall
				h.seriesIDs = map[DeviceID]DeviceID{}
				out.hall = &h
			}
			return out, nil
		},
		write: func(ctx context.Context, tx *sql.Tx, _ *outcome) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM series_phones WHERE series = ?`, name); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM series WHERE name = ?`, name)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return fmt.Errorf("%w: no series %q", ErrNotFound, name)
			}
			return nil
		},
		checkpoint: true,
	})
}

// Purge deletes what is older than the retention (R9): rounds that ended
// before it, with their intervals; series not used since; and series
// memory of phones from before it. The current round is kept unless the
// session is closed and it too ended before the retention. It returns how
// many rounds it deleted. The store purges at Open and then daily.
func (s *Store) Purge(ctx context.Context) (int, error) {
	var n int
	err := s.change(ctx, s.purgeChange(&n))
	return n, err
}

// purgeChange is the change Purge makes; it sets *deleted, if not nil, to
// how many rounds it deleted.
func (s *Store) purgeChange(deleted *int) *soloChange {
	return &soloChange{
		plan:       func(now *memState) (outcome, error) { return now.keep(), nil },
		write:      func(ctx context.Context, tx *sql.Tx, out *outcome) error { return s.purge(ctx, tx, out, deleted) },
		checkpoint: true,
	}
}

func (s *Store) purge(ctx context.Context, tx *sql.Tx, out *outcome, deleted *int) error {
	cutoff := s.now().Add(-s.retention)
	stamp, day := cutoff.UTC().Format(stampFormat), cutoff.Format(dayFormat)
	keep := s.mem.round.ID
	if s.mem.closed {
		keep = 0 // a closed session's last round is an ended round like any other
	}
	old := `SELECT id FROM rounds WHERE closed_at IS NOT NULL AND closed_at < ? AND id != ?`
	for _, table := range []string{"intervals", "headcounts"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE round IN (`+old+`)`, stamp, keep); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM rounds WHERE id IN (`+old+`)`, stamp, keep)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM series_phones WHERE day < ?`,
		`DELETE FROM series_phones WHERE series IN (SELECT name FROM series WHERE last_on < ?)`,
		`DELETE FROM series WHERE last_on < ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, day); err != nil {
			return err
		}
	}
	if out.seriesDays, err = loadSeriesDays(ctx, tx, s.mem.round.Series); err != nil {
		return err
	}
	if keep == 0 {
		// The current round of a closed session was purged: the kiosk needs
		// a round to show, so it gets an empty one, still closed.
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rounds WHERE id = ?`, s.mem.round.ID).Scan(new(int))
		if errors.Is(err, sql.ErrNoRows) {
			if out.round, err = s.insertRound(ctx, tx, RoundSpec{Mode: ModeRoom}, 0); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE rounds SET closed_at = opened_at WHERE id = ?`, out.round.ID); err != nil {
				return err
			}
			out.seriesKey, out.seriesDays = nil, map[DeviceID]string{}
		} else if err != nil {
			return err
		}
	}
	if deleted != nil {
		*deleted = int(n)
	}
	return nil
}
