package tally

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer: the one goroutine that owns the in-memory state and the
// database, the runner of lecturer changes, and the loop that batches
// phone changes.

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

// A lecturerChange is one operation the writer runs alone in a
// transaction: a change the lecturer makes, the relay's reach, a purge, or
// a read of the record. runLecturer runs every one the same way: refuse,
// publish the lock it causes, write, mark the unlocked interval, commit,
// apply to memory, publish.
type lecturerChange struct {
	// refuse says why the change cannot be made now (nil: it can). It is
	// asked before anything is published or written.
	refuse func() error
	// next is what the counts are after the change; nil for a change that
	// does not touch them. A change whose next locks is published before
	// its transaction begins, which may wait on the disk (R10).
	next func() Counts
	// write makes the change in tx and returns what to set in memory once
	// tx has committed (nil: nothing).
	write func(ctx context.Context, tx *sql.Tx) (apply func(), err error)
	// endWhy, for a change with next, is why the record's unlocked
	// interval ends if the change ends it (R8).
	endWhy string
	// newRound, if set, is the round the counts are for after the change
	// (NewRound's, known once write has run); otherwise the current one.
	newRound func() int64
	// checkpoint: after the commit, copy the WAL into the database file and
	// truncate it, so that deleted rows are gone from the files on disk and
	// not only from the tables (R9).
	checkpoint bool
	// phonesMeanwhile: phone changes may be made while the change commits,
	// because it sets nothing in memory that a phone change sets. A
	// withdrawal then never waits behind its fsync. A change that replaces
	// the phones and their slips (a new round, closing, letting missing
	// phones go) leaves it false and locks ahead instead.
	phonesMeanwhile bool
}

// change queues c for the writer and waits for its outcome.
func (s *Store) change(ctx context.Context, c *lecturerChange) error {
	_, err := s.submit(ctx, &request{kind: opLecturer, change: c})
	return err
}

// read runs fn in a transaction of its own on the writer goroutine: the
// record and the series are read where they are written.
func (s *Store) read(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.change(ctx, &lecturerChange{phonesMeanwhile: true, write: func(ctx context.Context, tx *sql.Tx) (func(), error) {
		return nil, fn(ctx, tx)
	}})
}

// refuseClosed refuses a change while the session is closed.
func (s *Store) refuseClosed() error {
	if s.mem.closed {
		return ErrClosed
	}
	return nil
}

// lockAhead publishes the lock r's change will cause, before anything
// waits on the disk, and counts it in s.holdLock. It reports whether it
// did.
func (s *Store) lockAhead(r *request) bool {
	c := r.change
	if c.next == nil || (c.refuse != nil && c.refuse() != nil) {
		return false
	}
	next := c.next()
	if Decide(next).Unlocked {
		return false
	}
	if s.State().Unlocked {
		s.publishCounts(next, len(s.mem.phones))
	}
	s.holdLock++
	return true
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
			s.runLecturer(&request{kind: opLecturer, change: &lecturerChange{write: s.purgeOp(nil), checkpoint: true, phonesMeanwhile: true}, reply: make(chan result, 1)})
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
	c := r.change
	holding := r.holding
	r.holding = false
	if !holding && !s.mem.fault {
		holding = s.lockAhead(r)
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
	if c.refuse != nil {
		if err := c.refuse(); err != nil {
			finish(err)
			return
		}
	}
	tx, err := s.beginChange(ctx, nil)
	if err != nil {
		finish(err)
		return
	}
	defer tx.Rollback()
	apply, err := c.write(ctx, tx)
	iv := s.mem.iv
	if err == nil && c.next != nil && c.endWhy != "" {
		round := s.mem.round.ID
		if c.newRound != nil {
			round = c.newRound()
		}
		iv, err = s.markInterval(ctx, tx, s.mem.iv, c.next(), round, c.endWhy)
	}
	if err == nil {
		if c.phonesMeanwhile {
			err = s.commitServing(tx, nil)
		} else {
			err = s.commit(tx)
		}
	}
	if err != nil {
		if !isDomainError(err) {
			s.storageFailed(err)
			err = ErrStorage
		}
		finish(err)
		return
	}
	if apply != nil {
		apply()
	}
	s.mem.iv = iv
	s.noteLockInRecord()
	if c.checkpoint {
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
			err = s.commit(tx)
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
