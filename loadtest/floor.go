package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// The floor is the simplest server that keeps the kiosk's promise to a
// phone: a bare gorilla/websocket handler that commits each slip to SQLite
// (WAL, synchronous=FULL), one transaction per slip, before acknowledging
// it. Whatever the kiosk adds (rules, fan-out, rounds) costs something on
// top; whatever it saves (grouped commits) shows as a ratio below 1.
//
// So that one driver plays both, the floor also answers the few HTTP calls
// the harness makes (headcount, join URL, unlock long-poll, runtime
// figures), each in the plainest way that keeps to the contract.

const (
	// floorMaxMessage bounds a phone's frame; hello and slip are well under
	// 200 bytes, and the kiosk's contract allows no bigger message.
	floorMaxMessage = 512
	// floorWriteWait bounds an ack write so that a stuck phone cannot hold
	// its handler goroutine for ever.
	floorWriteWait = 10 * time.Second
	// floorMaxWait caps an unlock long-poll, as recorders ask for seconds,
	// not hours.
	floorMaxWait = 60 * time.Second
)

// floorDSN opens path with WAL and synchronous=FULL. The pragmas go in
// _pragma keys because modernc.org/sqlite silently ignores any other key.
func floorDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: the commit is on disk before the ack, which is the promise the
	// floor is measuring the cost of.
	q.Add("_pragma", "synchronous(FULL)")
	// Only one connection writes; this only matters if another process
	// opens the same file.
	q.Add("_pragma", "busy_timeout(5000)")
	return "file:" + path + "?" + q.Encode()
}

// floor is the reference server. Its zero value is not usable; use newFloor.
type floor struct {
	db        *sql.DB
	token     string
	joinToken string
	publicURL string
	upgrader  websocket.Upgrader

	mu        sync.Mutex
	headcount int
	consents  int
	refusals  int
	choices   map[[32]byte]string // sha256 of the device secret → choice
	version   int64
	changed   chan struct{} // closed and replaced whenever version changes

	// slips, when not nil, makes this the grouped floor: handlers hand
	// their slips to one committer instead of each committing its own.
	slips chan floorSlip
	quit  chan struct{}
	done  chan struct{}
	// commits counts committed transactions, so a test can tell grouped
	// from one each.
	commits atomic.Int64
}

// floorSlip is one slip waiting for the grouped floor's committer.
type floorSlip struct {
	device [32]byte
	choice string
	saved  chan error
}

// groupWaiting bounds the slips queued for the committer; a handler beyond
// it waits to queue, which is the back-pressure a full queue should give.
const groupWaiting = 8192

// newFloor opens (creating) the floor's database at path. The caller must
// Close it.
func newFloor(ctx context.Context, path, token, publicURL string) (*floor, error) {
	return openFloor(ctx, path, token, publicURL, false)
}

// newGroupedFloor is the floor with group commit: the best a design with
// one SQLite writer can do. One goroutine takes every slip waiting,
// commits them in one transaction (one fsync), then acks them all, so a
// queue of slips costs one fsync rather than one each. The caller must
// Close it.
func newGroupedFloor(ctx context.Context, path, token, publicURL string) (*floor, error) {
	return openFloor(ctx, path, token, publicURL, true)
}

func openFloor(ctx context.Context, path, token, publicURL string, grouped bool) (*floor, error) {
	db, err := sql.Open("sqlite", floorDSN(path))
	if err != nil {
		return nil, err
	}
	// One connection serialises the slips, as SQLite has one writer anyway:
	// every slip waits for the fsync of the one before it. That queue is
	// exactly what a group commit removes.
	db.SetMaxOpenConns(1)
	if err := checkPragmas(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	_, err = db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS slips (
		device BLOB PRIMARY KEY,
		choice TEXT NOT NULL,
		at     INTEGER NOT NULL
	) WITHOUT ROWID`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create table: %w", err)
	}
	var jt [18]byte
	rand.Read(jt[:])
	f := &floor{
		db:        db,
		token:     token,
		joinToken: base64.RawURLEncoding.EncodeToString(jt[:]),
		publicURL: publicURL,
		choices:   map[[32]byte]string{},
		changed:   make(chan struct{}),
	}
	if grouped {
		f.slips = make(chan floorSlip, groupWaiting)
		f.quit = make(chan struct{})
		f.done = make(chan struct{})
		go f.committer()
	}
	return f, nil
}

// checkPragmas reads back the settings the floor depends on, because a
// misspelt DSN key would silently measure a different, faster database.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if mode != "wal" || sync != 2 {
		return fmt.Errorf("floor database: journal_mode=%s synchronous=%d; want wal and 2 (FULL)", mode, sync)
	}
	return nil
}

// Close stops the committer, if any, and closes the database.
func (f *floor) Close() error {
	if f.quit != nil {
		close(f.quit)
		<-f.done
	}
	return f.db.Close()
}

// handler returns the floor's routes.
func (f *floor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /api/headcount", f.lecturer(f.handleHeadcount))
	// The floor keeps no rounds: a round costs the kiosk one transaction
	// before the hall arrives, nothing the floor needs to match.
	mux.HandleFunc("POST /api/round", f.lecturer(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{})
	}))
	mux.HandleFunc("GET /api/join", f.lecturer(f.handleJoin))
	mux.HandleFunc("GET /api/runtime", f.lecturer(f.handleRuntime))
	mux.HandleFunc("GET /api/unlock", f.handleUnlock)
	mux.HandleFunc("GET /ws", f.handleWS)
	return mux
}

func (f *floor) lecturer(h http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + f.token)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (f *floor) handleHeadcount(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Headcount int `json:"headcount"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.Headcount < 1 {
		http.Error(w, "bad headcount", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.headcount = req.Headcount
	f.bumpLocked()
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"headcount": req.Headcount})
}

func (f *floor) handleJoin(w http.ResponseWriter, r *http.Request) {
	base := f.publicURL
	if base == "" {
		base = "http://" + r.Host
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"url":        base + "/j/" + f.joinToken,
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
}

func (f *floor) handleRuntime(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{
		"goroutines": runtime.NumGoroutine(),
		"open_files": countFDs(os.Getpid()),
	})
}

// state returns the unlock answer and the channel that closes when it next
// changes. The caller must hold f.mu.
func (f *floor) stateLocked() (unlocked bool, reason string, version int64, changed <-chan struct{}) {
	received := f.consents + f.refusals
	switch {
	case f.headcount < 1:
		reason = "no-headcount"
	case received < f.headcount:
		reason = "waiting"
	case received > f.headcount:
		reason = "overcount"
	case f.refusals > 0:
		reason = "refused"
	default:
		unlocked = true
	}
	return unlocked, reason, f.version, f.changed
}

func (f *floor) bumpLocked() {
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *floor) handleUnlock(w http.ResponseWriter, r *http.Request) {
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	seen := r.URL.Query().Get("seen")
	f.mu.Lock()
	unlocked, reason, version, changed := f.stateLocked()
	f.mu.Unlock()
	if wait > 0 && seen == strconv.FormatInt(version, 10) {
		timer := time.NewTimer(min(time.Duration(wait)*time.Second, floorMaxWait))
		defer timer.Stop()
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		unlocked, reason, version, _ = f.stateLocked()
		f.mu.Unlock()
	}
	status := http.StatusLocked
	if unlocked {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]any{"unlocked": unlocked, "reason": reason, "version": version})
}

// phoneMsg is every field a phone may send.
type phoneMsg struct {
	Type   string `json:"type"`
	Join   string `json:"join"`
	Device string `json:"device"`
	Choice string `json:"choice"`
}

// handleWS serves one phone: it reads frames and answers each slip after its
// transaction commits. The one goroutine both reads and writes, which
// gorilla allows (one reader, one writer) and which keeps the floor bare.
func (f *floor) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := f.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(floorMaxMessage)
	var device [32]byte
	joined := false
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var m phoneMsg
		if err := json.Unmarshal(data, &m); err != nil {
			f.send(conn, map[string]string{"type": "error", "code": "bad-message", "message": "not a message"})
			continue
		}
		switch {
		case m.Type == "hello" && m.Join == f.joinToken && len(m.Device) >= 22 && len(m.Device) <= 128:
			// Only a hash is kept, as the kiosk must not store device
			// secrets either; the cost is the same for both.
			device = sha256.Sum256([]byte(m.Device))
			joined = true
		case m.Type == "slip" && joined && (m.Choice == "consent" || m.Choice == "refuse"):
			if err := f.save(r.Context(), device, m.Choice); err != nil {
				f.send(conn, map[string]string{"type": "error", "code": "storage", "message": "not saved"})
				continue
			}
			if err := f.send(conn, map[string]any{"type": "ack", "choice": m.Choice, "round": 1}); err != nil {
				return
			}
		default:
			f.send(conn, map[string]string{"type": "error", "code": "refused", "message": "not accepted"})
		}
	}
}

func (f *floor) send(conn *websocket.Conn, v any) error {
	conn.SetWriteDeadline(time.Now().Add(floorWriteWait))
	return conn.WriteJSON(v)
}

// save stores one slip durably and counts it: in a transaction of its own,
// or, in the grouped floor, in the committer's next one.
func (f *floor) save(ctx context.Context, device [32]byte, choice string) error {
	if f.slips == nil {
		return f.commit(ctx, []floorSlip{{device: device, choice: choice}})
	}
	s := floorSlip{device: device, choice: choice, saved: make(chan error, 1)}
	select {
	case f.slips <- s:
	case <-ctx.Done():
		return ctx.Err()
	case <-f.quit:
		return errors.New("floor stopping")
	}
	select {
	case err := <-s.saved:
		return err
	case <-f.quit:
		return errors.New("floor stopping")
	}
}

// committer is the grouped floor's one writer. It never waits to fill a
// group: it begins a transaction for the first slip, and every slip that
// is waiting by then (queued during the previous commit, or while BEGIN
// waited for the connection) joins it. So a lone slip pays no more than in
// the plain floor, and a queue costs one fsync.
func (f *floor) committer() {
	defer close(f.done)
	var group []floorSlip
	for {
		group = group[:0]
		select {
		case s := <-f.slips:
			group = append(group, s)
		case <-f.quit:
			return
		}
		ctx := context.Background()
		tx, err := f.db.BeginTx(ctx, nil)
	more:
		for {
			select {
			case s := <-f.slips:
				group = append(group, s)
			default:
				break more
			}
		}
		if err == nil {
			err = f.write(ctx, tx, group)
		}
		for _, s := range group {
			s.saved <- err
		}
	}
}

// commit stores slips in a transaction of their own.
func (f *floor) commit(ctx context.Context, slips []floorSlip) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return f.write(ctx, tx, slips)
}

// write stores slips in tx, commits, and only then counts them.
func (f *floor) write(ctx context.Context, tx *sql.Tx, slips []floorSlip) error {
	defer tx.Rollback()
	at := time.Now().Unix()
	for _, s := range slips {
		_, err := tx.ExecContext(ctx, `INSERT INTO slips (device, choice, at) VALUES (?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET choice = excluded.choice, at = excluded.at`,
			s.device[:], s.choice, at)
		if err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	f.commits.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range slips {
		f.countLocked(s.device, s.choice)
	}
	f.bumpLocked()
	return nil
}

func (f *floor) countLocked(device [32]byte, choice string) {
	switch f.choices[device] {
	case "consent":
		f.consents--
	case "refuse":
		f.refusals--
	}
	f.choices[device] = choice
	if choice == "consent" {
		f.consents++
	} else {
		f.refusals++
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// runFloor serves the floor until ctx ends. It takes the kiosk's flags, so
// the harness starts both the same way.
func runFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadtest floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	data := fs.String("data", "floor.db", "SQLite database file")
	token := fs.String("admin-token", "", "lecturer token")
	publicURL := fs.String("public-url", "", "base URL of join links (default: the request's host)")
	grouped := fs.Bool("group", false, "commit every waiting slip in one transaction (the grouped floor)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("floor: -admin-token is required")
	}
	f, err := openFloor(ctx, *data, *token, *publicURL, *grouped)
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: f.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Websockets are hijacked and outlive Shutdown; the process exits right
	// after, which closes them.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
