package tally

import (
	"context"
	"database/sql"
)

// Recovery: what is left to write after a fault, and how the store gets
// back to working once the disk does.

// writeDrops deletes in tx the rows of phones that no longer hold a slip,
// and returns the phone changes that says: nothing left to drop.
func (s *Store) writeDrops(ctx context.Context, tx *sql.Tx) (*overlay, error) {
	o := s.newOverlay()
	for d := range s.mem.drop {
		if _, err := tx.ExecContext(ctx, `DELETE FROM phones WHERE device = ?`, d[:]); err != nil {
			return nil, err
		}
		o.drop[d] = false
	}
	return o, nil
}

// commitDrops deletes in tx the rows of phones that no longer hold a slip,
// ends the open unlocked interval for why, and commits; lockedAfter keeps
// the kiosk locked once it is written.
func (s *Store) commitDrops(ctx context.Context, tx *sql.Tx, why string, lockedAfter bool) error {
	defer tx.Rollback()
	dropped, err := s.writeDrops(ctx, tx)
	if err != nil {
		return err
	}
	out := s.mem.keep()
	out.phones, out.endWhy, out.lockedAfter = dropped, why, lockedAfter
	return s.finish(ctx, tx, &out, false)
}

// flush writes what in-memory changes left to write, and then publishes:
// an unlock shows only once the record has it. It never waits for a file
// another process holds; it returns false, to be tried again soon.
func (s *Store) flush() bool {
	if s.mem.fault || !s.pending() {
		return true
	}
	ctx := context.Background()
	tx, err := s.beginNow(ctx)
	if err == nil {
		err = s.commitDrops(ctx, tx, EndSlipChanged, false)
	}
	if isBusy(err) {
		return false
	}
	if err != nil {
		s.storageFailed(err)
	}
	return true
}

// storageFailed locks the kiosk until a write succeeds again (R10). An
// unlocked interval ends now; its end is written once storage works.
func (s *Store) storageFailed(err error) {
	if !s.mem.fault {
		s.log.Error("storage failed; the kiosk is locked until a write succeeds", "err", err)
		if iv := &s.mem.iv; iv.open && iv.endWhy == "" {
			iv.endAt, iv.endWhy = s.now(), EndFault
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
		if err == nil {
			// The interval ended when the kiosk locked: at a change not yet
			// written, or when storage failed.
			out := s.mem.keep()
			out.endWhy, out.lockedAfter = EndFault, true
			err = s.finish(ctx, tx, &out, false)
		}
	}
	if err != nil {
		return
	}
	s.mem.fault = false
	if len(s.mem.held) > 0 {
		batch := make([]*request, 0, len(s.mem.held))
		for _, r := range s.mem.held {
			r.reply = make(chan result, 1) // nobody waits any more
			batch = append(batch, r)
		}
		clear(s.mem.held)
		s.runPhones(batch)
		if s.mem.fault {
			return
		}
	}
	s.log.Info("storage works again")
	s.publish()
}
