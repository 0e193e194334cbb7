package tally

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"
)

// TestLecturerSessionsSurviveReopen: a stored session is there after the
// store is closed and opened again on the same file; expired ones are not,
// and ending them leaves the ones kept.
func TestLecturerSessionsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	a := LecturerSession{Hash: sha256.Sum256([]byte("a")), Expires: clk.Now().Add(time.Hour)}
	b := LecturerSession{Hash: sha256.Sum256([]byte("b")), Expires: clk.Now().Add(2 * time.Hour)}
	c := LecturerSession{Hash: sha256.Sum256([]byte("c")), Expires: clk.Now().Add(3 * time.Hour)}
	for _, ls := range []LecturerSession{a, b, c} {
		mustDo(t, s.AddLecturerSession(ctx, ls))
	}
	s.Close()

	s = openAt(t, path, clk)
	got, err := s.LecturerSessions(ctx, clk.Now().Add(90*time.Minute))
	if err != nil || len(got) != 2 {
		t.Fatalf("LecturerSessions after reopen, 90 minutes on = %v, %v; want b and c", got, err)
	}
	for _, ls := range got {
		if ls.Hash == a.Hash {
			t.Error("an expired session was returned")
		}
		if ls.Hash == b.Hash && !ls.Expires.Equal(b.Expires) {
			t.Errorf("b expires %v; want %v", ls.Expires, b.Expires)
		}
	}
	mustDo(t, s.EndLecturerSessions(ctx, &b.Hash))
	if got, _ := s.LecturerSessions(ctx, clk.Now()); len(got) != 1 || got[0].Hash != b.Hash {
		t.Errorf("after ending all but b: %v; want only b", got)
	}
	mustDo(t, s.EndLecturerSession(ctx, b.Hash))
	mustDo(t, s.EndLecturerSessions(ctx, nil))
	if got, _ := s.LecturerSessions(ctx, clk.Now()); len(got) != 0 {
		t.Errorf("after ending every session: %v; want none", got)
	}
}

// TestMigrateAddsLecturerSessions opens a database of schema 1, which has
// no lecturer_sessions table.
func TestMigrateAddsLecturerSessions(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	_, err := s.DB().Exec(`DROP TABLE lecturer_sessions; ALTER TABLE rounds RENAME COLUMN template TO lang; PRAGMA user_version = 1`)
	mustDo(t, err)
	s.Close()

	s = openAt(t, path, clk)
	var v int
	mustDo(t, s.DB().QueryRow(`PRAGMA user_version`).Scan(&v))
	if v != schemaVersion {
		t.Errorf("user_version = %d; want %d", v, schemaVersion)
	}
	mustDo(t, s.AddLecturerSession(ctx, LecturerSession{Hash: sha256.Sum256([]byte("x")), Expires: clk.Now().Add(time.Hour)}))
}
