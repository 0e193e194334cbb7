package tally

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// files is what the store leaves on disk at one moment: the database, its
// WAL and its shared-memory index, as a crash at that moment would leave
// them (SQLite writes to the files directly; a SIGKILL loses only what was
// never written).
type files struct{ db, wal, shm []byte }

func snapshot(t *testing.T, path string) files {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return b
	}
	return files{read(path), read(path + "-wal"), read(path + "-shm")}
}

// walFrame is one page image in a WAL file.
type walFrame struct {
	page uint32
	data []byte
}

// walFrames parses a WAL file into its page images, leaving out the salts
// and checksums that SQLite draws at random for each WAL: two runs with the
// same writes have the same frames.
func walFrames(t *testing.T, wal []byte) []walFrame {
	t.Helper()
	if len(wal) == 0 {
		return nil
	}
	if len(wal) < 32 {
		t.Fatalf("WAL of %d bytes has no header", len(wal))
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	salt1 := binary.BigEndian.Uint32(wal[16:20])
	var out []walFrame
	for off := 32; off+24+pageSize <= len(wal); off += 24 + pageSize {
		h := wal[off : off+24]
		if binary.BigEndian.Uint32(h[8:12]) != salt1 {
			break // a frame left over from before the WAL was reset
		}
		out = append(out, walFrame{binary.BigEndian.Uint32(h[0:4]), wal[off+24 : off+24+pageSize]})
	}
	return out
}

// sameFiles reports how two snapshots differ: the database byte for byte,
// the WAL page image for page image.
func sameFiles(t *testing.T, a, b files) error {
	t.Helper()
	if !bytes.Equal(a.db, b.db) {
		return fmt.Errorf("the database files differ (%d and %d bytes)", len(a.db), len(b.db))
	}
	fa, fb := walFrames(t, a.wal), walFrames(t, b.wal)
	if len(fa) != len(fb) {
		return fmt.Errorf("the WALs hold %d and %d frames", len(fa), len(fb))
	}
	for i := range fa {
		if fa[i].page != fb[i].page || !bytes.Equal(fa[i].data, fb[i].data) {
			return fmt.Errorf("WAL frame %d differs (pages %d and %d)", i, fa[i].page, fb[i].page)
		}
	}
	return nil
}

// sessionScript is one lecture: which phones answer first, in what order,
// and what each answer and change of mind says.
type sessionScript struct {
	order   []int    // phones in the order they hand in their first slip
	first   []Choice // by phone
	changes [][2]int // (phone, choice) changes of mind after every first slip
}

// playSession plays script on a new store whose keys and clock are the same
// in every run, and returns the files at four moments: after the first
// slips, after the changes of mind and a withdrawal, after the session is
// closed, and after the store is closed.
func playSession(t *testing.T, script sessionScript) []files {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	at := time.Date(2026, 3, 2, 10, 15, 0, 0, time.UTC)
	s, err := Open(ctx, path, Options{
		Now:  func() time.Time { return at },
		Rand: rand.NewChaCha8([32]byte{7}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A barrier: the writer has finished everything queued before it,
	// background writes included.
	settle := func() { must[[]RoundRecord](t)(s.Record(ctx, 0)) }
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "lecture video"}))
	// Headcount 10 for 4 phones: the kiosk stays locked (waiting) whatever
	// the phones say, so the record is the same in every run.
	mustDo(t, s.SetHeadcount(ctx, 10))
	for _, i := range script.order {
		must[Slip](t)(s.Admit(ctx, phone(i)))
		must[Slip](t)(s.Cast(ctx, phone(i), script.first[i], 0))
	}
	settle()
	var out []files
	out = append(out, snapshot(t, path))
	for _, c := range script.changes {
		must[Slip](t)(s.Cast(ctx, phone(c[0]), Choice(c[1]), 0))
	}
	must[Slip](t)(s.Cast(ctx, phone(2), ChoiceNone, 0)) // a withdrawal
	settle()
	out = append(out, snapshot(t, path))
	mustDo(t, s.CloseSession(ctx))
	settle()
	out = append(out, snapshot(t, path))
	mustDo(t, s.Close())
	out = append(out, snapshot(t, path))
	return out
}

// TestFilesHoldNoChoice plays the same lecture three times with the same
// keys and clock: the same phones answer, but what they say differs, and so
// do their changes of mind. If the files told a consent from a refusal, or
// kept any trace of a change of mind, they would differ between the runs.
// They must be the same at every moment: while the session is live (which
// is what a crash would leave), after it is closed, and after the store is
// closed. A third run in which the phones also answer in another order must
// leave the same files once the session is closed.
func TestFilesHoldNoChoice(t *testing.T) {
	C, R := ChoiceConsent, ChoiceRefuse
	a := playSession(t, sessionScript{
		order:   []int{0, 1, 2, 3},
		first:   []Choice{C, R, C, R},
		changes: [][2]int{{0, int(R)}, {1, int(C)}, {3, int(C)}, {3, int(R)}, {3, int(C)}},
	})
	b := playSession(t, sessionScript{
		order:   []int{0, 1, 2, 3},
		first:   []Choice{R, C, R, C},
		changes: [][2]int{{0, int(C)}, {2, int(C)}},
	})
	moments := []string{"after the first slips", "after changes of mind and a withdrawal", "after the session closed", "after the store closed"}
	for i, m := range moments {
		if err := sameFiles(t, a[i], b[i]); err != nil {
			t.Errorf("%s: two sessions that differ only in what phones chose left different files: %v", m, err)
		}
	}
	c := playSession(t, sessionScript{
		order: []int{3, 1, 0, 2},
		first: []Choice{R, R, R, C},
	})
	for i := 2; i < len(moments); i++ {
		if err := sameFiles(t, a[i], c[i]); err != nil {
			t.Errorf("%s: two sessions that differ in the order phones answered left different files: %v", moments[i], err)
		}
	}
}

// TestMigrationForgetsChoices: a database from a kiosk that kept choices
// (schema 1) is opened. Its slips, the paper split and the kiosk key the
// seal was derived from are gone from the tables and from the bytes of the
// file; the phones that held a slip are missing until they send it again.
func TestMigrationForgetsChoices(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 3))
	castAll(t, s, 2, ChoiceConsent)
	must[Slip](t)(s.Admit(ctx, phone(5))) // joined, never answered
	round := s.State().Round.ID
	s.Close()

	// Turn the file into what a schema-1 kiosk left: its tables and rows.
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	oldKey := bytes.Repeat([]byte("K"), 32)
	_, err = db.Exec(`CREATE TABLE slips (device BLOB PRIMARY KEY, choice INTEGER NOT NULL CHECK (choice IN (1, 2))) WITHOUT ROWID;
		CREATE TABLE paper (round INTEGER PRIMARY KEY, consents INTEGER NOT NULL, refusals INTEGER NOT NULL);
		INSERT INTO slips (device, choice) SELECT device, 2 FROM phones;
		INSERT INTO phones (device) VALUES (x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
		INSERT INTO paper (round, consents, refusals) VALUES (?, 0, 1);
		INSERT OR REPLACE INTO meta (key, value) VALUES ('kiosk_key', ?);
		ALTER TABLE rounds RENAME COLUMN template TO lang;
		PRAGMA user_version = 1;`, round, oldKey)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = reopen(t, path)
	st := s.State()
	if st.Reason != ReasonRestarted || st.Missing != 2 || st.PaperMissing != 1 || st.Received != 3 {
		t.Errorf("after migrating: %+v; want restarted, the 2 phones with slips and the 1 paper slip missing", st)
	}
	var n int
	mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('slips', 'paper')`).Scan(&n))
	if n != 0 {
		t.Errorf("%d of the tables slips and paper are left; want none", n)
	}
	if fileHolds(t, path, string(oldKey)) {
		t.Error("the file still holds the kiosk key that earlier seals were derived from")
	}
}
