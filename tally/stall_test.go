package tally

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallingStore opens a store whose next commit, once armed, blocks until
// the test lets it go: the writer is then stuck inside a transaction, as on
// a disk whose fsync takes seconds.
type stallingStore struct {
	*Store
	armed   atomic.Bool
	stalled chan struct{} // closed once a commit is stuck
	release chan struct{} // closing it lets the commit finish
	once    sync.Once

	mu        sync.Mutex
	recording bool    // from startRecording on,
	published []State // every state the store publishes, in order
}

func (ss *stallingStore) startRecording() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.recording = true
}

func (ss *stallingStore) recorded() []State {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return append([]State(nil), ss.published...)
}

func openStalling(t *testing.T) *stallingStore {
	t.Helper()
	return openStallingAt(t, filepath.Join(t.TempDir(), "kiosk.db"))
}

func openStallingAt(t *testing.T, path string) *stallingStore {
	t.Helper()
	ss := &stallingStore{stalled: make(chan struct{}), release: make(chan struct{})}
	s, err := Open(context.Background(), path, Options{FaultRetry: testFaultRetry, hooks: testHooks{
		beforeCommit: func() {
			if ss.armed.Load() {
				ss.once.Do(func() {
					close(ss.stalled)
					<-ss.release
				})
			}
		},
		published: func(st State) {
			ss.mu.Lock()
			defer ss.mu.Unlock()
			if ss.recording {
				ss.published = append(ss.published, st)
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ss.Store = s
	t.Cleanup(func() {
		ss.letGo()
		s.Close()
	})
	return ss
}

func (ss *stallingStore) letGo() {
	select {
	case <-ss.release:
	default:
		close(ss.release)
	}
}

// stallCommit arms the stall and makes the writer commit something that
// changes no count (a read of the record), and returns once the writer is
// stuck inside that commit.
func (ss *stallingStore) stallCommit(t *testing.T) {
	t.Helper()
	ss.stallIn(t, func(s *Store) error { _, err := s.Record(context.Background(), 0); return err })
}

// stallIn arms the stall, runs change on its own goroutine and returns
// once the writer is stuck inside the change's commit, with a channel that
// gives the change's outcome once the test lets the commit go.
func (ss *stallingStore) stallIn(t *testing.T, change func(*Store) error) <-chan error {
	t.Helper()
	ss.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- change(ss.Store) }()
	select {
	case <-ss.stalled:
	case err := <-done:
		t.Fatalf("the change ended without reaching a commit: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never reached the commit")
	}
	return done
}

// TestLockIsPublishedWhileACommitStalls: what the package promises locks
// "whatever the disk does" locks while the writer is stuck in a commit of
// something else, and nothing published after it unlocks until the change
// is made. The changes are those that can only lock: a withdrawal, a change
// of mind to refuse, a phone leaving, a raised headcount, closing the
// session and a new round.
func TestLockIsPublishedWhileACommitStalls(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		lock func(s *Store) error
	}{
		{"withdrawal", func(s *Store) error { _, err := s.Cast(ctx, phone(0), ChoiceNone, 0); return err }},
		{"refusal", func(s *Store) error { _, err := s.Cast(ctx, phone(0), ChoiceRefuse, 0); return err }},
		{"leave", func(s *Store) error { _, err := s.Leave(ctx, phone(0)); return err }},
		{"headcount raised", func(s *Store) error { return s.SetHeadcount(ctx, 3) }},
		{"session closed", func(s *Store) error { return s.CloseSession(ctx) }},
		{"new round", func(s *Store) error {
			_, err := s.NewRound(ctx, RoundSpec{Purpose: "another lecture"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := openStalling(t)
			mustDo(t, ss.SetHeadcount(ctx, 2))
			must[Round](t)(ss.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students"}))
			castAll(t, ss.Store, 2, ChoiceConsent)
			if !ss.State().Unlocked {
				t.Fatalf("two consents of two: %+v", ss.State())
			}
			ss.stallCommit(t)
			ss.startRecording()

			done := make(chan error, 1)
			go func() { done <- tc.lock(ss.Store) }()
			deadline := time.Now().Add(5 * time.Second)
			for ss.State().Unlocked {
				if time.Now().After(deadline) {
					t.Fatal("still unlocked while the writer is stuck in a commit of something else")
				}
				time.Sleep(time.Millisecond)
			}

			ss.letGo()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// The writer has published what the change left; a last read
			// makes sure nothing unlocks after it either.
			must[[]RoundRecord](t)(ss.Record(ctx, 0))
			seen := ss.recorded()
			if len(seen) == 0 {
				t.Fatal("nothing was published after the change")
			}
			for i, st := range seen {
				if st.Unlocked {
					t.Fatalf("state %d after the lock unlocks again: %+v", i, st)
				}
			}
		})
	}
}

// TestPhoneChangesDuringALecturerCommitAreKept: a lecturer's change that
// leaves the phones and slips alone lets phones change them while it
// commits, and moving the change into memory afterwards keeps what they
// did. A withdrawal made meanwhile is answered before the commit ends,
// and still counts once it has.
func TestPhoneChangesDuringALecturerCommitAreKept(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		change func(s *Store) error
	}{
		{"headcount", func(s *Store) error { return s.SetHeadcount(ctx, 2) }},
		{"paper", func(s *Store) error { return s.SetPaper(ctx, 0, 0) }},
		{"unreachable", func(s *Store) error { return s.SetUnreachable(ctx, false) }},
		{"purge", func(s *Store) error { _, err := s.Purge(ctx); return err }},
		{"series read", func(s *Store) error { _, err := s.Series(ctx); return err }},
		{"end of another series", func(s *Store) error { return s.EndSeries(ctx, "INF200") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := openStalling(t)
			mustDo(t, ss.SetHeadcount(ctx, 2))
			must[Round](t)(ss.NewRound(ctx, RoundSpec{Purpose: "another lecture", Series: "INF200"}))
			must[Round](t)(ss.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students", Series: "INF100"}))
			castAll(t, ss.Store, 2, ChoiceConsent)

			done := ss.stallIn(t, tc.change)
			withdrawn := make(chan error, 1)
			go func() { _, err := ss.Cast(ctx, phone(0), ChoiceNone, 0); withdrawn <- err }()
			select {
			case err := <-withdrawn:
				mustDo(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("a withdrawal waited for the commit of a change that leaves the slips alone")
			}
			ss.letGo()
			mustDo(t, <-done)
			if st := ss.State(); st.Received != 1 || st.Unlocked {
				t.Fatalf("after the change: %+v; want the withdrawal kept, 1 slip, locked", st)
			}
			// And the phone's slip is really gone: sending it again counts.
			must[Slip](t)(ss.Cast(ctx, phone(0), ChoiceConsent, 0))
			if st := waitFor(t, ss.Store, 5*time.Second, func(st State) bool { return st.Unlocked }); st.Received != 2 {
				t.Fatalf("after sending the slip again: %+v", st)
			}
		})
	}
}

// TestPhonesWaitForALecturerChangeThatReplacesThem: a change that replaces
// the phones and slips (a new round, letting missing phones go, ending the
// current round's series) cannot let phones change them while it commits;
// a phone that joins meanwhile is in the session once the change is made,
// not lost when the change's phones move into memory.
func TestPhonesWaitForALecturerChangeThatReplacesThem(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		setup  func(t *testing.T, path string)
		change func(s *Store) error
	}{
		{"new round", nil, func(s *Store) error {
			_, err := s.NewRound(ctx, RoundSpec{Purpose: "another lecture"})
			return err
		}},
		{"missing phones let go", func(t *testing.T, path string) {
			s := reopen(t, path)
			must[Slip](t)(s.Admit(ctx, phone(7)))
			must[Slip](t)(s.Cast(ctx, phone(7), ChoiceConsent, 0))
			mustDo(t, s.Close())
		}, func(s *Store) error { return s.ReleaseMissing(ctx) }},
		{"current series ended", nil, func(s *Store) error { return s.EndSeries(ctx, "INF100") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kiosk.db")
			func() {
				s := reopen(t, path)
				defer s.Close()
				mustDo(t, s.SetHeadcount(ctx, 2))
				must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "lecture video for enrolled students", Series: "INF100"}))
			}()
			if tc.setup != nil {
				tc.setup(t, path)
			}
			ss := openStallingAt(t, path)

			done := ss.stallIn(t, tc.change)
			joined := make(chan error, 1)
			go func() { _, err := ss.Admit(ctx, phone(1)); joined <- err }()
			// The join is queued, or made already if the writer serves it.
			for len(ss.reqs) == 0 && len(joined) == 0 {
				time.Sleep(time.Millisecond)
			}
			ss.letGo()
			mustDo(t, <-done)
			mustDo(t, <-joined)
			if _, err := ss.Cast(ctx, phone(1), ChoiceConsent, 0); err != nil {
				t.Fatalf("a phone that joined while the change committed cannot cast: %v", err)
			}
			if st := ss.State(); st.Issued != 1 || st.Received != 1 {
				t.Fatalf("after the change: %+v; want the phone that joined meanwhile, with its slip", st)
			}
		})
	}
}
