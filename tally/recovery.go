package tally

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Recovery: what is left to write after a fault, and how the store gets
// back to working once the disk does.

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
		err = s.commit(tx)
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
			err = s.commit(tx)
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
