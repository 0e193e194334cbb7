// Package tally is the kiosk's domain: rounds, the phones' slips, paper
// slips, series, the unlock rule and what of it is kept on disk. The
// kiosk package turns HTTP and websockets into calls on a Store; nothing
// here knows about either.
//
// Where to look:
//
//   - rule.go: Decide, the unlock rule, a pure function of Counts (R1, R7, R10).
//   - state.go: the in-memory model (choices, rounds, State, the phones).
//   - store.go: Open, Options, State and the subscription to changes.
//   - load.go: what Open reads back from the file.
//   - schema.sql and migrate.go: the file's tables, and bringing a file of
//     an older schema up to date.
//   - errors.go: the errors a change can end in.
//   - phones.go: what a phone can ask (Rejoin, Admit, Cast, Leave) and the
//     overlay through which a batch of phone changes sees the slips.
//   - batch.go: phone changes in memory, and first slips committed together.
//   - rounds.go: the lecturer's changes: headcount, paper, rounds, series,
//     closing the session, letting missing phones go.
//   - writer.go: the one goroutine that owns the in-memory state and the
//     database, and runs every change in turn; solo changes (the
//     lecturer's, the relay's reach, purges, reads of the record: plan,
//     lock ahead, write).
//   - commit.go: the one commit path every transaction of the writer's
//     ends on (finish): mark the record's unlocked interval, commit, swap
//     in what the change leaves, publish. (Open's read of the file, in
//     load.go, commits its own before the writer starts.)
//   - recovery.go: what is left to write after a fault, and getting back.
//   - record.go: the accountability record (R8) and the retention (R9).
//   - sessions.go: lecturer sign-ins, stored as hashes.
//   - reach.go: phones that lost their way to the kiosk (the relay).
//   - notice.go: the notice's fields and its templates.
//
// The invariants every change must keep (docs/SECURITY.md has the tests
// that prove them):
//
//   - Choices live in memory only. The database and its WAL hold that a
//     phone (by a keyed hash) has a slip in a round, never what it says,
//     the split, or the order of changes of mind (R6, R7). After a restart
//     the kiosk is locked with reason restarted until every phone that
//     held a slip has reported again, or the lecturer lets them go.
//   - A lock is published before any I/O. A withdrawal, a refusal, a
//     raised headcount or a fault locks at once, whatever the disk does:
//     while a transaction waits for the file or for its commit, the writer
//     goes on making phone changes that need no disk and publishing the
//     locks of lecturer changes (stall_test.go). Only an unlock may wait
//     for a commit (R2, R10).
//   - An ack waits for what must be durable: a phone's first slip in a
//     round is acknowledged once its record is committed; a change of mind
//     touches no disk and is acknowledged at once.
//   - Any doubt means locked: a fault, a restart, an unreachable kiosk
//     (R10).
//
// Requirement numbers (R1–R10) are defined in docs/REQUIREMENTS.md.
package tally
