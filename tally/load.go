package tally

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Loading: what Open reads back from the file, and the helpers that read
// rows and keys.

func (s *Store) load(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	migrated, err := migrate(ctx, tx)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}

	if s.kioskKey, err = s.metaKey(ctx, tx, "kiosk_key"); err != nil {
		return err
	}
	if s.mem.deviceKey, err = s.metaKey(ctx, tx, "device_key"); err != nil {
		return err
	}
	var boot string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'boot'`).Scan(&boot)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	n, _ := strconv.ParseUint(boot, 10, 32)
	s.boot = n + 1
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('boot', ?)`, strconv.FormatUint(s.boot, 10)); err != nil {
		return err
	}
	var closed string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'closed'`).Scan(&closed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	s.mem.closed = closed == "1"

	if err := s.loadRound(ctx, tx); errors.Is(err, sql.ErrNoRows) {
		if s.mem.round, err = s.insertRound(ctx, tx, RoundSpec{Mode: ModeRoom}, 0); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if !s.mem.closed {
		// The split of paper slips was in memory only: the lecturer enters
		// it again.
		err = tx.QueryRowContext(ctx, `SELECT paper FROM rounds WHERE id = ?`, s.mem.round.ID).Scan(&s.mem.paperMissing)
		if err != nil {
			return err
		}
	}
	if s.mem.round.Series != "" {
		err = tx.QueryRowContext(ctx, `SELECT key FROM series WHERE name = ?`, s.mem.round.Series).Scan(&s.mem.seriesKey)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	if s.mem.seriesDays, err = loadSeriesDays(ctx, tx, s.mem.round.Series); err != nil {
		return err
	}

	s.mem.hall = newHall()
	// Every phone that held a slip is missing until it sends it again: the
	// kiosk never wrote what it said.
	if err := eachRow(ctx, tx, `SELECT device FROM phones`, func(rows *sql.Rows) error {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			return err
		}
		s.mem.phones[deviceID(d)] = phoneSaved
		s.mem.missing[deviceID(d)] = struct{}{}
		return nil
	}); err != nil {
		return err
	}
	// An interval still open was left by a kiosk that stopped without a
	// shutdown: when it ended is unknown, so the record says so rather than
	// claim a time (R8). If the tally still unlocks, a new interval starts.
	if _, err := tx.ExecContext(ctx, `UPDATE intervals SET ended_by = ? WHERE ended_by IS NULL`, EndInterrupted); err != nil {
		return err
	}
	if s.mem.iv, err = s.markInterval(ctx, tx, interval{}, Decide(s.mem.counts()).Unlocked, s.mem.round.ID, EndInterrupted); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if migrated {
		// What the migration deleted (earlier kiosks' choices and keys)
		// must leave the WAL too, not only the tables.
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("checkpoint after migrating: %w", err)
		}
	}
	return nil
}

func (s *Store) loadRound(ctx context.Context, tx *sql.Tx) error {
	var r Round
	var opened string
	err := tx.QueryRowContext(ctx, `SELECT id, purpose, notice, notice_hash, template, series, mode, headcount, opened_at FROM rounds ORDER BY id DESC LIMIT 1`).
		Scan(&r.ID, &r.Purpose, &r.Notice, &r.NoticeHash, &r.Template, &r.Series, &r.Mode, &s.mem.headcount, &opened)
	if err != nil {
		return err
	}
	r.OpenedAt, err = time.Parse(time.RFC3339Nano, opened)
	if err != nil {
		return fmt.Errorf("round %d: %w", r.ID, err)
	}
	s.mem.round = r
	return nil
}

func (s *Store) metaKey(ctx context.Context, tx *sql.Tx, name string) ([]byte, error) {
	var key []byte
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, name).Scan(&key)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	key = s.newKey()
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, name, key); err != nil {
		return nil, err
	}
	return key, nil
}

// newKey returns 32 bytes from the store's random source.
func (s *Store) newKey() []byte {
	key := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, key); err != nil {
		panic("tally: no randomness for a key: " + err.Error())
	}
	return key
}

func eachRow(ctx context.Context, tx *sql.Tx, query string, fn func(*sql.Rows) error) error {
	return eachRowArgs(ctx, tx, query, nil, fn)
}

func eachRowArgs(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func deviceID(b []byte) DeviceID {
	var d DeviceID
	copy(d[:], b)
	return d
}
