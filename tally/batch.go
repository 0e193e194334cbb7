package tally

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Phone batches: changes made in memory and answered at once, and first
// slips that share one transaction and are answered after its commit.

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
	s.noteLockInRecord()
	if s.unrecordedUnlock() && !s.committing {
		// A change that unlocks is answered once the record has the
		// unlock, so that a phone that hears its ack sees the tally it
		// made; flush never waits for a held file, and with one the
		// unlock shows later. While another transaction commits, the
		// writer's loop flushes once it has.
		s.flush()
	}
	s.publish()
	for i, r := range batch {
		delete(s.mem.held, r.device) // a newer change of the same phone
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
				s.mem.held[r.device] = r
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
	tx, err := s.beginChange(ctx, devices)
	if err != nil {
		fail(err)
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
	if err == nil {
		// Nothing runs on the writer between here and the publish that
		// ends finish: the lock held while the transaction waited ends with
		// it.
		unhold()
		out := s.mem.keep()
		out.phones, out.endWhy = o, EndSlipChanged
		err = s.finish(ctx, tx, &out, false)
	}
	if err != nil {
		s.storageFailed(err)
		fail(ErrStorage)
		return
	}
	for i, r := range batch {
		delete(s.mem.held, r.device)
		r.reply <- results[i]
	}
}

// noteLockInRecord notes that the record's unlocked interval ended now, if
// memory locks while the record has it open and no end is noted yet; the
// end is written with the next transaction (R8).
func (s *Store) noteLockInRecord() {
	v := Decide(s.mem.counts())
	if iv := &s.mem.iv; iv.open && iv.endWhy == "" && !v.Unlocked {
		// Deliberately one reason for a change, a withdrawal and a leave,
		// so that the record never tells a refusal from a withdrawal. A
		// lock because phones cannot reach the kiosk says so, though it is
		// noted here when a phone change runs before SetUnreachable's own.
		iv.endAt, iv.endWhy = s.now(), EndSlipChanged
		if v.Reason == ReasonUnreachable {
			iv.endWhy = EndUnreachable
		}
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
	// Wall time, not the store's clock: this bounds a real wait.
	deadline := time.Now().Add(busyTimeoutMS * time.Millisecond)
	for {
		tx, err := s.beginNow(ctx)
		if err == nil {
			return tx, nil
		}
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

// beginNow begins a transaction without waiting for a file that another
// process holds: that is SQLITE_BUSY at once (isBusy). Transactions begin
// IMMEDIATE, so once one has begun the file is the store's, and the
// statements in it keep the usual busy timeout.
func (s *Store) beginNow(ctx context.Context) (*sql.Tx, error) {
	restore := fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeoutMS)
	if _, err := s.db.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.db.ExecContext(ctx, restore)
		return nil, err
	}
	// The one connection is the transaction's now.
	if _, err := tx.ExecContext(ctx, restore); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// beginChange begins the transaction of a change that is answered after
// its commit. When it cannot, it returns what to answer: ErrStopped, or
// ErrStorage once the store is marked at fault.
func (s *Store) beginChange(ctx context.Context, devices map[DeviceID]bool) (*sql.Tx, error) {
	tx, err := s.begin(ctx, devices)
	switch {
	case err == nil:
		return tx, nil
	case errors.Is(err, ErrStopped):
		return nil, ErrStopped
	}
	s.storageFailed(err)
	return nil, ErrStorage
}

// serveWhileWaiting handles r while a durable batch for devices waits for
// the file.
func (s *Store) serveWhileWaiting(r *request, devices map[DeviceID]bool) {
	if r.kind == opSolo {
		r.holding = s.lockAhead(r)
		s.backlog = append(s.backlog, r)
		return
	}
	s.prepare(r)
	later := devices[r.device]
	for _, b := range s.backlog {
		later = later || (b.kind != opSolo && b.device == r.device)
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
