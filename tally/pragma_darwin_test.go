package tally

import "testing"

// TestFullFsyncOnDarwin reads back, from the live connection, the pragmas
// that make a commit reach the platter on macOS, where plain fsync does
// not; modernc.org/sqlite ignores DSN keys it does not know.
func TestFullFsyncOnDarwin(t *testing.T) {
	s, _ := openStore(t)
	for _, pragma := range []string{"fullfsync", "checkpoint_fullfsync"} {
		var got string
		mustDo(t, s.DB().QueryRow(`PRAGMA `+pragma).Scan(&got))
		if got != "1" {
			t.Errorf("PRAGMA %s = %s; want 1", pragma, got)
		}
	}
}
