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
	ss := &stallingStore{stalled: make(chan struct{}), release: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "kiosk.db")
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
	ss.armed.Store(true)
	go ss.Record(context.Background(), 0)
	select {
	case <-ss.stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never reached the commit")
	}
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
