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
// database, the runner of solo changes, and the loop that batches phone
// changes.

// A soloChange is one operation the writer runs alone in a transaction,
// where phone changes go in batches: a change the lecturer makes, the
// relay's reach, a purge, or a read of the record. runSolo runs every one
// the same way: plan, publish the lock the plan causes, write, finish.
type soloChange struct {
	// plan works out the memory the change leaves from the memory now, or
	// says why the change cannot be made. It only reads: it runs again
	// before the transaction, on the memory as it is then, and a change
	// whose plan locks publishes that lock before anything waits on the
	// disk (R10). It never changes a map it was given; a change that
	// changes the phones or slips gives out.hall maps of its own.
	plan func(now *memState) (outcome, error)
	// write makes the change in tx; it may complete what plan could not
	// know (the new round's ID, a fresh key). Nil: nothing to write.
	write func(ctx context.Context, tx *sql.Tx, out *outcome) error
	// checkpoint: after the commit, copy the WAL into the database file and
	// truncate it, so that deleted rows are gone from the files on disk and
	// not only from the tables (R9).
	checkpoint bool
}

// change queues c for the writer and waits for its outcome.
func (s *Store) change(ctx context.Context, c *soloChange) error {
	_, err := s.submit(ctx, &request{kind: opSolo, change: c})
	return err
}

// read runs fn in a transaction of its own on the writer goroutine: the
// record and the series are read where they are written.
func (s *Store) read(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.change(ctx, &soloChange{
		plan:  func(now *memState) (outcome, error) { return now.keep(), nil },
		write: func(ctx context.Context, tx *sql.Tx, _ *outcome) error { return fn(ctx, tx) },
	})
}

// lockAhead publishes the lock r's change will cause, before anything
// waits on the disk, and counts it in s.holdLock. It reports whether it
// did.
func (s *Store) lockAhead(r *request) bool {
	out, err := r.change.plan(&s.mem)
	if err != nil {
		return false
	}
	next, issued := s.countsAfter(&out)
	if Decide(next).Unlocked {
		return false
	}
	if s.State().Unlocked {
		s.publishCounts(next, issued)
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
			s.runSolo(&request{kind: opSolo, change: s.purgeChange(nil), reply: make(chan result, 1)})
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
		if r.kind != opSolo {
			continue
		}
		s.runPhones(batch[start:i])
		s.runSolo(r)
		start = i + 1
	}
	s.runPhones(batch[start:])
}

func (s *Store) runSolo(r *request) {
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
	done := func(err error) {
		if holding {
			holding = false
			s.holdLock--
		}
		s.publish() // what the change left, or, if it failed, what was
		r.reply <- result{err: err}
	}
	if s.mem.fault {
		done(ErrStorage)
		return
	}
	if _, err := c.plan(&s.mem); err != nil {
		done(err)
		return
	}
	tx, err := s.beginChange(ctx, nil)
	if err != nil {
		done(err)
		return
	}
	defer tx.Rollback()
	// Phone changes made while BEGIN waited are in memory now: plan on it.
	out, err := c.plan(&s.mem)
	if err == nil && c.write != nil {
		err = c.write(ctx, tx, &out)
	}
	if err == nil {
		// A change that leaves the phones and slips alone lets phones
		// change them while it commits, so that a withdrawal never waits
		// behind its fsync. One that replaces them cannot, and locked
		// ahead instead.
		err = s.finish(ctx, tx, &out, out.hall == nil)
	}
	if err != nil {
		if !isDomainError(err) {
			s.storageFailed(err)
			err = ErrStorage
		}
		done(err)
		return
	}
	if c.checkpoint {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			s.log.Warn("checkpoint after deleting failed; deleted rows stay in the WAL file until the next checkpoint", "err", err)
		}
	}
	done(nil)
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
		err = s.commitDrops(ctx, tx, EndStopped, true)
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
