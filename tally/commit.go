package tally

import (
	"context"
	"database/sql"
	"time"
)

// The one commit path. Every transaction of the writer's, whatever asked
// for it (a lecturer's change, a batch of first slips, what in-memory
// changes left to write, the write that ends a fault, the last write
// before stopping), ends the same way: finish marks the record's unlocked
// interval, commits, swaps the memory the change leaves in, and publishes.

// An outcome is the memory a transaction leaves once it commits. It always
// has the round's part; it has the hall only if the change replaces the
// phones and slips (hall) or makes phone changes in them (phones). A
// change that has neither leaves the hall to the phones, which may change
// it while the change commits.
type outcome struct {
	roundState
	hall   *hall    // non-nil: the phones and slips after the change
	phones *overlay // non-nil: phone changes to make in them
	// endWhy is why the record's unlocked interval ends if the change ends
	// it (R8); "" for a change that cannot lock or unlock (a read, a
	// purge), which leaves the interval alone.
	endWhy string
	// lockedAfter: the kiosk is locked after the change whatever the
	// counts say (storage is only just working again, or it stops), so the
	// change may end the interval but never starts one.
	lockedAfter bool
}

// keep is the outcome of a change that changes nothing in memory; changes
// start from it.
func (m *memState) keep() outcome { return outcome{roundState: m.roundState} }

// countsAfter is what the counts are once out is in memory, and how many
// phones are in the session then. Whether phones reach the kiosk is read
// as it is now: SetUnreachable sets it before its change runs.
func (s *Store) countsAfter(out *outcome) (Counts, int) {
	m := memState{roundState: out.roundState, hall: s.mem.hall, fault: s.mem.fault, unreachable: s.mem.unreachable}
	if out.hall != nil {
		m.hall = *out.hall
	}
	c, issued := m.counts(), len(m.phones)
	if o := out.phones; o != nil {
		c.Consents, c.Refusals, c.Missing, issued = o.consents, o.refusals, o.missing, o.issued
	}
	return c, issued
}

// finish ends a transaction whose rows the change has written: it marks
// the unlocked interval for the memory out leaves, commits (serving what
// arrives meanwhile if serve, see commitServing), moves out into memory and
// publishes. On an error nothing in memory has changed; the caller says
// what the error means.
func (s *Store) finish(ctx context.Context, tx *sql.Tx, out *outcome, serve bool) error {
	iv := s.mem.iv
	if out.endWhy != "" {
		c, _ := s.countsAfter(out)
		unlocked := !out.lockedAfter && Decide(c).Unlocked
		var err error
		if iv, err = s.markInterval(ctx, tx, iv, unlocked, out.round.ID, out.endWhy); err != nil {
			return err
		}
	}
	var err error
	if serve {
		err = s.commitServing(tx, nil)
	} else {
		err = s.commit(tx)
	}
	if err != nil {
		return err
	}
	s.mem.roundState = out.roundState
	if out.hall != nil {
		s.mem.hall = *out.hall
	}
	if out.phones != nil {
		out.phones.commit()
	}
	s.mem.iv = iv
	s.noteLockInRecord()
	s.publish()
	return nil
}

// markInterval writes in tx the end of the unlocked interval iv, if it
// ended earlier without being written, or if the change ends it (it locks,
// or round is a new round), saying why; and the start of a new one, if
// the kiosk is unlocked after the change (R8). It returns the interval
// after the change. Doing this in the change's own transaction means the
// record never misses an unlock that phones and recorders saw.
func (s *Store) markInterval(ctx context.Context, tx *sql.Tx, iv interval, unlocked bool, round int64, why string) (interval, error) {
	if iv.open && iv.endWhy != "" {
		if err := endInterval(ctx, tx, iv.endAt, iv.endWhy); err != nil {
			return iv, err
		}
		iv = interval{}
	}
	now := s.now()
	if iv.open && (!unlocked || round != s.mem.round.ID) {
		if err := endInterval(ctx, tx, now, why); err != nil {
			return iv, err
		}
		iv.open = false
	}
	if unlocked && !iv.open {
		if _, err := tx.ExecContext(ctx, `INSERT INTO intervals (round, started_at) VALUES (?, ?)`, round, now.UTC().Format(stampFormat)); err != nil {
			return iv, err
		}
		iv.open = true
	}
	return iv, nil
}

// endInterval writes the end of the open unlocked interval.
func endInterval(ctx context.Context, tx *sql.Tx, at time.Time, why string) error {
	_, err := tx.ExecContext(ctx, `UPDATE intervals SET ended_at = ?, ended_by = ? WHERE ended_by IS NULL`, at.UTC().Format(stampFormat), why)
	return err
}

// commit commits one of the writer's transactions.
func (s *Store) commit(tx *sql.Tx) error {
	if s.hooks.beforeCommit != nil {
		s.hooks.beforeCommit()
	}
	return tx.Commit()
}

// commitServing commits tx and, while the disk takes its time, serves what
// arrives as begin does while it waits for the file: phone changes that
// need no disk are made at once, unless they concern devices, whose
// changes must follow this one; a lecturer's change that locks publishes
// its lock and waits in the backlog. An fsync can take seconds on a slow
// disk, and a withdrawal or a refusal must not wait for it (R2).
func (s *Store) commitServing(tx *sql.Tx, devices map[DeviceID]bool) error {
	done := make(chan error, 1)
	go func() { done <- s.commit(tx) }()
	s.committing = true
	defer func() { s.committing = false }()
	for {
		select {
		case err := <-done:
			return err
		case r := <-s.reqs:
			s.serveWhileWaiting(r, devices)
		}
	}
}
