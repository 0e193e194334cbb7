package tally

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed schema.sql
var schemaSQL string

const (
	// MinHeadcount and MaxHeadcount bound the headcount a lecturer may set;
	// the largest hall seats about 1,000, so 100,000 only catches typos.
	MinHeadcount = 1
	MaxHeadcount = 100_000

	// maxBatch bounds one group commit: a burst of thousands of slips becomes
	// a handful of fsyncs, while the first slips of a burst are not held back
	// behind one huge transaction.
	maxBatch = 512

	// busyTimeoutMS is how long a transaction waits for a file another
	// process holds before the store calls it a fault. Nothing that locks
	// waits for it: locks are published first.
	busyTimeoutMS = 5000

	// DefaultFaultRetry is how often a store that could not commit tries
	// again, so that the kiosk recovers by itself once the disk does.
	DefaultFaultRetry = 2 * time.Second
)

// Options tune a Store; the zero value is ready for use.
type Options struct {
	// Now is the clock; tests set it. Defaults to time.Now.
	Now func() time.Time
	// Retention is how long ended rounds (the accountability record) and
	// series memory are kept (R9). Zero means DefaultRetention.
	Retention time.Duration
	// PurgeEvery is how often the store purges what is older than the
	// retention, besides at Open. Zero means once a day.
	PurgeEvery time.Duration
	// Rand is where the store's keys come from. Defaults to crypto/rand;
	// tests that compare database files byte for byte set a fixed stream.
	Rand io.Reader
	// Log receives the store's faults and recoveries. Nil discards them.
	Log *slog.Logger
	// FaultRetry is how often a store that could not commit tries again.
	// Zero means DefaultFaultRetry; tests set it short.
	FaultRetry time.Duration

	hooks testHooks
}

// testHooks let this package's tests stop the writer inside a commit and
// see every state published; both are nil outside tests.
type testHooks struct {
	beforeCommit func()
	published    func(State)
}

// DefaultRetention is about one semester: the routines keep a recording
// until the teaching has ended and the exam is held (001 "Sletting av
// opptak", 002 §8.1), and the record of what was consented to is needed as
// long as the recording it vouches for. A series (a course) also runs about
// a semester. A lecturer who needs the record longer keeps its printout with
// the recording.
const DefaultRetention = 180 * 24 * time.Hour

// stampFormat is how times are stored: fixed width in UTC, so that text
// comparison in SQL orders them correctly.
const stampFormat = "2006-01-02T15:04:05.000000000Z"

// dayFormat is the only precision series memory keeps.
const dayFormat = "2006-01-02"

// Store is the kiosk's memory: the current round, the joined phones and
// their slips. Choices live in memory only; SQLite keeps the rounds, the
// record, and which phones hold a slip in the current round (R6). All
// changes go through one goroutine. A phone's first slip in a round is
// acknowledged only once its transaction committed (that is what a restart
// needs); a change of mind or a withdrawal touches no disk before its
// answer. Every change that locks is published before any transaction.
type Store struct {
	db         *sql.DB
	now        func() time.Time
	retention  time.Duration
	purgeEvery time.Duration
	rand       io.Reader
	log        *slog.Logger
	faultRetry time.Duration
	hooks      testHooks
	kioskKey   []byte
	boot       uint64

	reqs     chan *request
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	// mem is owned by the writer goroutine.
	mem memState
	// backlog: changes that arrived while a transaction waited for a held
	// file or for its commit, and must follow it, in order. holdLock counts
	// pending changes whose lock is published; while it is above 0 nothing
	// publishes an unlock.
	backlog  []*request
	holdLock int
	// committing: a transaction is committing while the writer serves
	// what arrives; nothing may use the database's one connection.
	committing bool

	// unreachable: phones have lost their way to the kiosk (SetUnreachable).
	// Every count the rule reads has it (memState.counts), so it needs no
	// queue.
	unreachable atomic.Bool

	mu      sync.Mutex // guards cur, seq and changed
	cur     State
	seq     uint64
	changed chan struct{}
}

// DSN returns the data source name the store opens path with. Every pragma
// is given with modernc's _pragma key, because the driver silently ignores
// keys it does not know.
func DSN(path string) string {
	pragmas := []string{
		// WAL lets a commit be a single append plus fsync.
		"journal_mode(WAL)",
		// FULL: a commit is on disk before the ack that waits for it is sent.
		"synchronous(FULL)",
		// Deleted rows are overwritten, so closing a session really removes
		// per-device data from the file (R9).
		"secure_delete(ON)",
		// The store has a single connection, so waiting on a lock only happens
		// when another process opened the same file.
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
	}
	if runtime.GOOS == "darwin" {
		// On macOS fsync does not reach stable storage; F_FULLFSYNC does.
		pragmas = append(pragmas, "fullfsync(1)", "checkpoint_fullfsync(1)")
	}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and restores the
// state it holds. The caller must Close the store.
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and the few reads after
	// start-up (the record, series, sign-ins) are rare and short, so there is
	// nothing to gain from a pool.
	db.SetMaxOpenConns(1)
	s := &Store{
		db:         db,
		now:        opt.Now,
		retention:  opt.Retention,
		purgeEvery: opt.PurgeEvery,
		rand:       opt.Rand,
		log:        opt.Log,
		faultRetry: opt.FaultRetry,
		hooks:      opt.hooks,
		reqs:       make(chan *request, maxBatch),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
	}
	s.mem.unreachable = &s.unreachable
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.faultRetry <= 0 {
		s.faultRetry = DefaultFaultRetry
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	if s.purgeEvery <= 0 {
		s.purgeEvery = 24 * time.Hour
	}
	if err := s.load(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.publish()
	go s.writer()
	if _, err := s.Purge(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: purge: %w", path, err)
	}
	return s, nil
}

// DeriveKey derives a 32-byte secret, one per label ("join-token",
// "relay-room"), from the kiosk's own key, which is created once and kept
// in the database, so that derived keys survive a restart. Nothing that
// must stay secret from whoever holds the database file may be derived
// from it: the seal's keys are not.
func (s *Store) DeriveKey(label string) []byte {
	m := hmac.New(sha256.New, s.kioskKey)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Close stops the writer, failing changes still queued with ErrStopped, and
// closes the database.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.db.Close()
}

// Retention returns how long ended rounds and series memory are kept.
func (s *Store) Retention() time.Duration { return s.retention }

// State returns the current state.
func (s *Store) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Changed returns the current state and a channel that is closed at the next
// change.
func (s *Store) Changed() (State, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// Wait returns the state as soon as its version differs from seen, or when
// ctx is done, whichever is first.
func (s *Store) Wait(ctx context.Context, seen uint64) State {
	for {
		st, ch := s.Changed()
		if st.Version != seen {
			return st
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.State()
		}
	}
}

// publish makes the writer's state visible, except an unlock that the
// record does not have yet: that shows once flush has written it (R8).
func (s *Store) publish() {
	if s.unrecordedUnlock() || (s.holdLock > 0 && Decide(s.mem.counts()).Unlocked) {
		return
	}
	s.publishCounts(s.mem.counts(), len(s.mem.phones))
}

// publishCounts makes a state visible. The writer calls it with the counts
// in memory, and also with counts a change will leave before its
// transaction, when those lock the kiosk: locking never waits on the disk,
// unlocking does.
func (s *Store) publishCounts(c Counts, issued int) {
	next := State{
		Round:     s.mem.round,
		Headcount: c.Headcount,
		Received:  c.Received(),
		Paper:     c.PaperConsents + c.PaperRefusals,
		Missing:   c.Missing, PaperMissing: c.PaperMissing,
		Issued:  issued,
		Closed:  c.Closed,
		Fault:   c.Fault,
		Verdict: Decide(c),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next.Version = s.cur.Version
	if s.seq > 0 && next == s.cur {
		return
	}
	s.seq++
	// The boot counter in the high bits keeps versions unique across
	// restarts: a long-polling recorder that saw "unlocked" before a crash
	// must not mistake a different state after it for the one it saw.
	next.Version = s.boot<<32 | s.seq
	s.cur = next
	if s.hooks.published != nil {
		s.hooks.published(next)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}
