package tally

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
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

// Choice is what a slip says.
type Choice uint8

const (
	ChoiceNone Choice = iota // no slip: never given, withdrawn, or left
	ChoiceConsent
	ChoiceRefuse
)

// String returns the wire name of the choice: "none", "consent" or "refuse".
func (c Choice) String() string {
	switch c {
	case ChoiceConsent:
		return "consent"
	case ChoiceRefuse:
		return "refuse"
	default:
		return "none"
	}
}

// ParseChoice is the inverse of String. It returns ErrInvalid for anything else.
func ParseChoice(s string) (Choice, error) {
	switch s {
	case "consent":
		return ChoiceConsent, nil
	case "refuse":
		return ChoiceRefuse, nil
	case "none":
		return ChoiceNone, nil
	}
	return ChoiceNone, fmt.Errorf("%w: choice %q", ErrInvalid, s)
}

// Round is one question put to the room: a purpose and the notice shown
// before anyone chooses (R3, R4). Slips count only in the round they were
// given for.
type Round struct {
	ID      int64
	Purpose string
	// Notice is the canonical notice: a JSON string for a notice given as
	// text, or a JSON object with sorted keys for a structured one.
	Notice     string
	NoticeHash string // NoticeHash of the purpose, notice and mode
	Lang       string // the template language of the notice; "" for en
	Series     string // the series the round belongs to; "" for none
	Mode       Mode
	OpenedAt   time.Time
}

// State is what the kiosk may show of the tally. It deliberately has no
// field for the split between consents and refusals (R6, R7).
type State struct {
	// Version changes whenever anything else in State changes, and is never
	// reused, not even across restarts. Compare it for equality only.
	Version   uint64
	Round     Round
	Headcount int
	Received  int // slips in the current round
	Issued    int // phones that joined the session
	Paper     int // paper slips in the current round, included in Received
	// Missing is the phones that held a slip before the kiosk restarted and
	// have not sent it again, included in Received; PaperMissing the paper
	// slips whose counts the lecturer has not entered again since.
	Missing      int
	PaperMissing int
	Closed       bool
	Fault        bool
	Verdict
}

// Slip is a phone's slip as the kiosk holds it.
type Slip struct {
	Choice Choice
	Round  int64
	// SeriesDay is set by Join when the round belongs to a series in which
	// this phone consented before: the day (YYYY-MM-DD) of that round (R5).
	SeriesDay string
}

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

// DeviceID is the keyed hash of a phone's device secret. The secret itself
// is never stored.
type DeviceID [sha256.Size]byte

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
	kioskKey   []byte
	boot       uint64

	reqs     chan *request
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	// mem and held are owned by the writer goroutine.
	mem  memState
	held map[DeviceID]*request // phone changes not yet durable because of a fault
	// backlog: changes that arrived while a transaction waited for a held
	// file and must follow it, in order. holdLock counts pending changes
	// whose lock is published; while it is above 0 nothing publishes an
	// unlock.
	backlog  []*request
	holdLock int

	// unreachable: phones have lost their way to the kiosk (SetUnreachable).
	// Every state the writer computes reads it, so it needs no queue.
	unreachable atomic.Bool

	mu      sync.Mutex // guards cur, seq and changed
	cur     State
	seq     uint64
	changed chan struct{}
}

// phoneState says whether a phone is in the session and whether the
// database knows it. A phone is written only with its first slip in a
// round: a phone without a slip has nothing to lose in a restart (it scans
// the QR code again), and sparing that write halves the fsyncs of a hall
// arriving.
type phoneState uint8

const (
	phoneGone   phoneState = iota // not in the session (or left)
	phoneJoined                   // joined; in memory only
	phoneSaved                    // joined, and in the phones table: it holds a slip
)

// interval is what the database knows of the current unlocked interval
// (R8). A change of mind that locks writes nothing before its answer: it
// sets endAt and endWhy, and the end is written with the next transaction,
// or by itself soon after.
type interval struct {
	open   bool      // a row with ended_by NULL is in the database
	endAt  time.Time // non-zero: the kiosk locked then, for endWhy; not yet written
	endWhy string
}

type memState struct {
	round     Round
	headcount int
	closed    bool
	fault     bool
	deviceKey []byte
	phones    map[DeviceID]phoneState // never phoneGone
	slips     map[DeviceID]Choice     // in memory only, never written (R6)
	consents  int
	refusals  int
	paper     paperCounts // in memory only; the database has their total

	// missing: phones in the phones table whose slip is not known since a
	// restart. paperMissing: the paper total of before a restart, until the
	// lecturer enters the counts again.
	missing      map[DeviceID]struct{}
	paperMissing int
	// drop: rows of the phones table to delete, of phones that no longer
	// hold a slip. Until the delete commits a crash leaves them missing,
	// which locks: the safe side.
	drop map[DeviceID]struct{}

	// iv is the unlocked interval of the current round as the database
	// has it. faultAt is when storage failed while one was open: the
	// interval ended then, which can only be written once storage works.
	iv      interval
	faultAt time.Time

	// seriesKey is the current round's series key, nil without a series.
	// seriesIDs maps each phone seen with its secret in this round to its
	// keyed hash under that key; it is never written unless the round ends
	// with everyone's consent, and is lost on restart (phones say hello
	// again when they reconnect).
	seriesKey []byte
	seriesIDs map[DeviceID]DeviceID
	// seriesDays are the phones remembered for the current round's series,
	// by series hash, with the day each consented: a join looks here, so
	// that joining needs no transaction.
	seriesDays map[DeviceID]string
}

type paperCounts struct{ consents, refusals int }

func (m *memState) counts() Counts {
	return Counts{
		Headcount: m.headcount, Consents: m.consents, Refusals: m.refusals,
		PaperConsents: m.paper.consents, PaperRefusals: m.paper.refusals,
		Missing: len(m.missing), PaperMissing: m.paperMissing,
		LecturerOnly: m.round.Mode == ModeLecturerOnly,
		Closed:       m.closed, Fault: m.fault,
	}
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
	// One connection: SQLite has one writer anyway, and every read happens at
	// start-up, so there is nothing to gain from a pool.
	db.SetMaxOpenConns(1)
	s := &Store{
		db:         db,
		now:        opt.Now,
		retention:  opt.Retention,
		purgeEvery: opt.PurgeEvery,
		rand:       opt.Rand,
		log:        opt.Log,
		faultRetry: opt.FaultRetry,
		reqs:       make(chan *request, maxBatch),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		held:       map[DeviceID]*request{},
		changed:    make(chan struct{}),
	}
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
	s.mem.seriesIDs = map[DeviceID]DeviceID{}
	if s.mem.round.Series != "" {
		err = tx.QueryRowContext(ctx, `SELECT key FROM series WHERE name = ?`, s.mem.round.Series).Scan(&s.mem.seriesKey)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	if s.mem.seriesDays, err = loadSeriesDays(ctx, tx, s.mem.round.Series); err != nil {
		return err
	}

	s.mem.phones = map[DeviceID]phoneState{}
	s.mem.slips = map[DeviceID]Choice{}
	s.mem.missing = map[DeviceID]struct{}{}
	s.mem.drop = map[DeviceID]struct{}{}
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
	if s.mem.iv, err = s.markInterval(ctx, tx, interval{}, s.mem.counts(), s.mem.round.ID, EndInterrupted); err != nil {
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
	err := tx.QueryRowContext(ctx, `SELECT id, purpose, notice, notice_hash, lang, series, mode, headcount, opened_at FROM rounds ORDER BY id DESC LIMIT 1`).
		Scan(&r.ID, &r.Purpose, &r.Notice, &r.NoticeHash, &r.Lang, &r.Series, &r.Mode, &s.mem.headcount, &opened)
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

// insertRound writes a new round, whose spec is normalized, in tx.
func (s *Store) insertRound(ctx context.Context, tx *sql.Tx, spec RoundSpec, headcount int) (Round, error) {
	now := s.now().UTC()
	notice := spec.canonicalNotice()
	hash := noticeHash(spec.Purpose, notice, spec.Mode)
	res, err := tx.ExecContext(ctx, `INSERT INTO rounds (purpose, notice, notice_hash, lang, series, mode, headcount, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		spec.Purpose, notice, hash, spec.Lang, spec.Series, spec.Mode, headcount, now.Format(stampFormat))
	if err != nil {
		return Round{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Round{}, err
	}
	return Round{ID: id, Purpose: spec.Purpose, Notice: notice, NoticeHash: hash, Lang: spec.Lang,
		Series: spec.Series, Mode: spec.Mode, OpenedAt: now}, nil
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
	c.Unreachable = c.Unreachable || s.unreachable.Load()
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
	close(s.changed)
	s.changed = make(chan struct{})
}
