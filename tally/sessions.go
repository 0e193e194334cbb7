package tally

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// lecturerSessionsTable holds signed-in lecturer browsers. Only the SHA-256
// of each session's cookie is kept, so the file cannot sign anyone in; no
// address or user agent is kept either. The same statement is in
// schema.sql, for new databases.
const lecturerSessionsTable = `CREATE TABLE IF NOT EXISTS lecturer_sessions (
	hash       BLOB PRIMARY KEY,
	expires_at TEXT NOT NULL
) WITHOUT ROWID;`

// LecturerSession is one signed-in lecturer browser: the SHA-256 of its
// cookie, and when it stops working.
type LecturerSession struct {
	Hash    [sha256.Size]byte
	Expires time.Time
}

// LecturerSessions deletes the lecturer sessions that expired at or before
// now and returns the others. Sessions outlive a restart of the kiosk: a
// lecturer's console stays signed in.
func (s *Store) LecturerSessions(ctx context.Context, now time.Time) ([]LecturerSession, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM lecturer_sessions WHERE expires_at <= ?`, now.UTC().Format(stampFormat)); err != nil {
		return nil, fmt.Errorf("%w: lecturer sessions: %v", ErrStorage, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT hash, expires_at FROM lecturer_sessions`)
	if err != nil {
		return nil, fmt.Errorf("%w: lecturer sessions: %v", ErrStorage, err)
	}
	defer rows.Close()
	var out []LecturerSession
	for rows.Next() {
		var h []byte
		var exp string
		if err := rows.Scan(&h, &exp); err != nil {
			return nil, fmt.Errorf("%w: lecturer sessions: %v", ErrStorage, err)
		}
		t, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil || len(h) != sha256.Size {
			continue // not a row this kiosk wrote: it signs nobody in
		}
		var ls LecturerSession
		copy(ls.Hash[:], h)
		ls.Expires = t
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: lecturer sessions: %v", ErrStorage, err)
	}
	return out, nil
}

// AddLecturerSession stores a new lecturer session. It returns an error
// wrapping ErrStorage when the session could not be made durable; the
// caller must then not sign the browser in.
func (s *Store) AddLecturerSession(ctx context.Context, ls LecturerSession) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO lecturer_sessions (hash, expires_at) VALUES (?, ?)`,
		ls.Hash[:], ls.Expires.UTC().Format(stampFormat))
	if err != nil {
		return fmt.Errorf("%w: lecturer session: %v", ErrStorage, err)
	}
	return nil
}

// EndLecturerSessions deletes every lecturer session but keep's (nil: every
// one). Ending sessions that do not exist is not an error.
func (s *Store) EndLecturerSessions(ctx context.Context, keep *[sha256.Size]byte) error {
	var err error
	if keep == nil {
		_, err = s.db.ExecContext(ctx, `DELETE FROM lecturer_sessions`)
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM lecturer_sessions WHERE hash != ?`, keep[:])
	}
	if err != nil {
		return fmt.Errorf("%w: lecturer sessions: %v", ErrStorage, err)
	}
	return nil
}

// EndLecturerSession deletes the lecturer session whose cookie hashes to
// hash. Ending one that does not exist is not an error.
func (s *Store) EndLecturerSession(ctx context.Context, hash [sha256.Size]byte) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM lecturer_sessions WHERE hash = ?`, hash[:]); err != nil {
		return fmt.Errorf("%w: lecturer session: %v", ErrStorage, err)
	}
	return nil
}
