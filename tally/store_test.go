package tally

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testFaultRetry: a store in a test retries a failed commit this often, so
// that no test waits out the real interval.
const testFaultRetry = 50 * time.Millisecond

// openStore opens a store on a fresh SQLite file in t.TempDir, with a round
// that has a purpose, and closes it when the test ends. It returns the path
// so a test can reopen it.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := reopen(t, path)
	if _, err := s.NewRound(context.Background(), RoundSpec{Purpose: "lecture video for enrolled students"}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func reopen(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{FaultRetry: testFaultRetry})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// phone returns a device secret of the form phones use.
func phone(i int) string { return fmt.Sprintf("phone-%020d", i) }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// consentAll joins n phones and casts choice for each.
func castAll(t testing.TB, s *Store, n int, choice Choice) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		must[Slip](t)(s.Admit(ctx, phone(i)))
		must[Slip](t)(s.Cast(ctx, phone(i), choice, 0))
	}
}

// sameTally compares what a restart must keep: everything but the version.
func sameTally(a, b State) bool {
	a.Version, b.Version = 0, 0
	a.Round.OpenedAt, b.Round.OpenedAt = a.Round.OpenedAt.UTC(), b.Round.OpenedAt.UTC()
	return a == b
}

// TestStoreRestartWaitsForPhones: a restart keeps the round, the headcount
// and which phones hold a slip, never what the slips say. It is locked,
// restarted, until every such phone has sent its slip again.
func TestStoreRestartWaitsForPhones(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "lecture video", Notice: "voice only"}))
	mustDo(t, s.SetHeadcount(ctx, 3))
	castAll(t, s, 3, ChoiceConsent)
	must[Slip](t)(s.Admit(ctx, phone(9))) // joined, no slip
	before := s.State()
	if !before.Unlocked || before.Issued != 4 || before.Received != 3 {
		t.Fatalf("before restart: %+v; want unlocked, 4 issued, 3 received", before)
	}
	s.Close()

	s2 := reopen(t, path)
	after := s2.State()
	// A phone that joined but gave no slip is not kept: it has nothing to
	// lose, and scans the QR code again.
	want := before
	want.Issued, want.Missing = 3, 3
	want.Verdict = Verdict{Reason: ReasonRestarted}
	if !sameTally(after, want) {
		t.Errorf("after restart state = %+v;\nwant %+v", after, want)
	}
	if _, err := s2.Rejoin(ctx, phone(9)); err != ErrUnknownPhone {
		t.Errorf("rejoin without a token by a phone that held no slip = %v; want ErrUnknownPhone", err)
	}
	if got := must[Slip](t)(s2.Rejoin(ctx, phone(0))); got.Choice != ChoiceNone {
		t.Errorf("rejoin without a token by a phone holding a slip = %v; want none: the kiosk kept no choice", got.Choice)
	}
	if after.Version == before.Version {
		t.Errorf("version after restart = %d, the same as before; versions must never repeat", after.Version)
	}
	must[Slip](t)(s2.Cast(ctx, phone(0), ChoiceConsent, 0))
	must[Slip](t)(s2.Cast(ctx, phone(1), ChoiceConsent, 0))
	if got := s2.State(); got.Reason != ReasonRestarted || got.Missing != 1 || got.Received != 3 {
		t.Errorf("two of three reported: %+v; want restarted, 1 missing, 3 received", got)
	}
	must[Slip](t)(s2.Cast(ctx, phone(2), ChoiceConsent, 0))
	if got := s2.State(); !got.Unlocked || got.Missing != 0 {
		t.Errorf("all three reported: %+v; want unlocked", got)
	}
	// The slips reported again are real ones: a refusal locks.
	must[Slip](t)(s2.Cast(ctx, phone(0), ChoiceRefuse, 0))
	if got := s2.State(); got.Unlocked || got.Reason != ReasonRefused {
		t.Errorf("after a refusal on the restarted store: %+v; want locked, refused", got)
	}
}

// TestReleaseMissing: the lecturer lets the missing phones go; their slips
// are removed and they must join again.
func TestReleaseMissing(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	s.Close()
	s = reopen(t, path)
	must[Slip](t)(s.Rejoin(ctx, phone(0)))
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0))
	mustDo(t, s.ReleaseMissing(ctx))
	if st := s.State(); st.Reason != ReasonWaiting || st.Missing != 0 || st.Received != 1 || st.Issued != 1 {
		t.Errorf("after release: %+v; want waiting, 1 received, 1 phone", st)
	}
	if _, err := s.Rejoin(ctx, phone(1)); err != ErrUnknownPhone {
		t.Errorf("rejoin by a released phone = %v; want ErrUnknownPhone", err)
	}
	var n int
	mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM phones`).Scan(&n))
	if n != 1 {
		t.Errorf("phones rows after release = %d; want 1", n)
	}
	s.Close()
	if st := reopen(t, path).State(); st.Missing != 1 {
		t.Errorf("after another restart: %+v; want only the phone that reported missing", st)
	}
}

func TestNewRoundVoidsOldSlips(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	first := s.State().Round.ID
	if !s.State().Unlocked {
		t.Fatal("two consents of two should unlock")
	}
	r := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "a different purpose"}))
	st := s.State()
	if st.Unlocked || st.Received != 0 || st.Headcount != 2 || st.Issued != 2 {
		t.Errorf("after new round: %+v; want locked, 0 received, headcount 2 kept, 2 phones kept", st)
	}
	if r.ID == first || st.Round.ID != r.ID {
		t.Errorf("round ids: first %d, new %d, state %d", first, r.ID, st.Round.ID)
	}
	// A slip given for the old round does not count in the new one.
	if _, err := s.Cast(ctx, phone(0), ChoiceConsent, first); err != ErrStaleRound {
		t.Errorf("Cast for old round = %v; want ErrStaleRound", err)
	}
	var n int
	mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM phones`).Scan(&n))
	if n != 0 {
		t.Errorf("phones rows after new round = %d; want 0: no phone holds a slip in it", n)
	}
	s.Close()
	if st := reopen(t, path).State(); st.Received != 0 || st.Round.Purpose != "a different purpose" {
		t.Errorf("after restart: %+v; want the new round with no slips", st)
	}
}

func TestNoticeHashBindsPurposeAndNotice(t *testing.T) {
	a := NoticeHash(RoundSpec{Purpose: "p", Notice: "n"})
	for _, other := range []RoundSpec{{Purpose: "p", Notice: "n2"}, {Purpose: "p2", Notice: "n"}, {Purpose: "pn"}, {Notice: "pn"}} {
		if NoticeHash(other) == a {
			t.Errorf("NoticeHash(%+v) equals NoticeHash(p, n)", other)
		}
	}
	if got := NoticeHash(RoundSpec{Purpose: "p", Notice: "n"}); got != a {
		t.Errorf("NoticeHash is not stable: %s vs %s", got, a)
	}
}

func TestJoinRules(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if _, err := s.Rejoin(ctx, phone(1)); err != ErrUnknownPhone {
		t.Errorf("Join without a token by a new phone = %v; want ErrUnknownPhone", err)
	}
	if _, err := s.Cast(ctx, phone(1), ChoiceConsent, 0); err != ErrUnknownPhone {
		t.Errorf("Cast by a phone that never joined = %v; want ErrUnknownPhone", err)
	}
	must[Slip](t)(s.Admit(ctx, phone(1)))
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceConsent, 0))
	// Reconnecting needs no fresh token, and reports the slip held.
	got := must[Slip](t)(s.Rejoin(ctx, phone(1)))
	if got.Choice != ChoiceConsent {
		t.Errorf("rejoin slip = %v; want consent", got.Choice)
	}
	if st := s.State(); st.Issued != 1 {
		t.Errorf("issued after a rejoin = %d; want 1", st.Issued)
	}
}

func TestLeaveRemovesSlipAndPhone(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 3, ChoiceConsent)
	if st := s.State(); st.Reason != ReasonOvercount {
		t.Fatalf("3 slips for 2 people: %+v; want overcount", st)
	}
	must[Slip](t)(s.Leave(ctx, phone(2)))
	if st := s.State(); !st.Unlocked || st.Issued != 2 {
		t.Errorf("after leave: %+v; want unlocked with 2 phones", st)
	}
	if _, err := s.Cast(ctx, phone(2), ChoiceConsent, 0); err != ErrUnknownPhone {
		t.Errorf("Cast after leave = %v; want ErrUnknownPhone", err)
	}
	if _, err := s.Leave(ctx, phone(2)); err != nil {
		t.Errorf("second Leave = %v; want nil", err)
	}
}

func TestResendChangesNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	before := s.State()
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0))
	if after := s.State(); after != before {
		t.Errorf("resending the same slip changed the state: %+v -> %+v", before, after)
	}
}

func TestWithdrawWithNone(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceNone, 0))
	if st := s.State(); st.Unlocked || st.Reason != ReasonWaiting || st.Received != 0 {
		t.Errorf("after withdrawing the only slip: %+v; want locked, waiting, 0 received", st)
	}
}

func TestHeadcountValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	for _, n := range []int{0, -1, MaxHeadcount + 1} {
		if err := s.SetHeadcount(ctx, n); err == nil {
			t.Errorf("SetHeadcount(%d) = nil; want an error", n)
		}
	}
	if st := s.State(); st.Headcount != 0 {
		t.Errorf("headcount after invalid sets = %d; want 0", st.Headcount)
	}
}

func TestCloseSessionDeletesDeviceData(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	var keyBefore []byte
	mustDo(t, s.DB().QueryRow(`SELECT value FROM meta WHERE key = 'device_key'`).Scan(&keyBefore))

	mustDo(t, s.CloseSession(ctx))
	st := s.State()
	if st.Unlocked || st.Reason != ReasonClosed || st.Received != 0 || st.Issued != 0 {
		t.Errorf("after close: %+v; want locked, closed, nothing received or issued", st)
	}
	for _, table := range []string{"phones"} {
		var n int
		mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM `+table).Scan(&n))
		if n != 0 {
			t.Errorf("%s rows after close = %d; want 0", table, n)
		}
	}
	var keyAfter []byte
	mustDo(t, s.DB().QueryRow(`SELECT value FROM meta WHERE key = 'device_key'`).Scan(&keyAfter))
	if string(keyAfter) == string(keyBefore) {
		t.Error("device key unchanged by close; hashes of the next session could be linked to this one")
	}
	if _, err := s.Admit(ctx, phone(0)); err != ErrClosed {
		t.Errorf("Join while closed = %v; want ErrClosed", err)
	}
	if err := s.SetHeadcount(ctx, 2); err != ErrClosed {
		t.Errorf("SetHeadcount while closed = %v; want ErrClosed", err)
	}
	s.Close()

	s = reopen(t, path)
	if st := s.State(); st.Reason != ReasonClosed {
		t.Errorf("after restart: %+v; want still closed", st)
	}
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "next lecture"}))
	if st := s.State(); st.Closed || st.Headcount != 0 || st.Reason != ReasonNoHeadcount {
		t.Errorf("new round after close: %+v; want open, headcount to be counted again", st)
	}
}

func TestPragmasAreInForce(t *testing.T) {
	s, _ := openStore(t)
	for _, tt := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"secure_delete", "1"},
		{"busy_timeout", "5000"},
	} {
		var got string
		mustDo(t, s.DB().QueryRow(`PRAGMA `+tt.pragma).Scan(&got))
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s; want %s", tt.pragma, got, tt.want)
		}
	}
}

func TestConcurrentSlipsAllCount(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	const n = 200
	mustDo(t, s.SetHeadcount(ctx, n))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Admit(ctx, phone(i)); err != nil {
				errs <- err
				return
			}
			if _, err := s.Cast(ctx, phone(i), ChoiceConsent, 0); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.State(); !st.Unlocked || st.Received != n {
		t.Errorf("after %d concurrent consents: %+v; want unlocked", n, st)
	}
	s.Close()
	if st := reopen(t, path).State(); st.Received != n {
		t.Errorf("after restart received = %d; want %d", st.Received, n)
	}
}

// TestStorageFaultLocks makes SQLite refuse writes on the store's own
// connection: a first slip, which must be durable, is not acknowledged, the
// kiosk locks at once, and when writes work again the phone's last change
// is made durable. A change of mind needs no disk and is acknowledged.
func TestStorageFaultLocks(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 1, ChoiceConsent)
	must[Slip](t)(s.Admit(ctx, phone(1)))
	mustDo(t, execOnWriter(s, `PRAGMA query_only = 1`))

	if _, err := s.Cast(ctx, phone(1), ChoiceRefuse, 0); err != ErrStorage {
		t.Errorf("a first slip while storage fails = %v; want ErrStorage", err)
	}
	if st := s.State(); st.Unlocked || st.Reason != ReasonFault {
		t.Errorf("state while storage fails: %+v; want locked, fault", st)
	}
	if err := s.SetHeadcount(ctx, 3); err != ErrStorage {
		t.Errorf("SetHeadcount while storage fails = %v; want ErrStorage", err)
	}
	if got := must[Slip](t)(s.Cast(ctx, phone(0), ChoiceRefuse, 0)); got.Choice != ChoiceRefuse {
		t.Errorf("a change of mind while storage fails = %v; want acknowledged", got)
	}

	mustDo(t, execOnWriter(s, `PRAGMA query_only = 0`))
	st := waitFor(t, s, 100*testFaultRetry, func(st State) bool { return !st.Fault })
	// The first slip that failed was held and is made once storage works:
	// two slips, both refusals now, so still locked.
	if st.Unlocked || st.Reason != ReasonRefused || st.Received != 2 || st.Issued != 2 {
		t.Errorf("after recovery: %+v; want locked, refused, 2 slips of 2 phones (the held first slip made)", st)
	}
}

// execOnWriter runs a statement on the store's one connection between two
// of the writer's transactions.
func execOnWriter(s *Store, q string) error {
	_, err := s.DB().Exec(q)
	return err
}

// waitFor polls the store's state until ok or the timeout, without sleeping
// blindly: it wakes on every change.
func waitFor(t testing.TB, s *Store, timeout time.Duration, ok func(State) bool) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		st, ch := s.Changed()
		if ok(st) {
			return st
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out after %v; last state %+v", timeout, st)
		}
	}
}

// BenchmarkCastSequential is one phone changing its mind back and forth.
func BenchmarkCastSequential(b *testing.B) {
	ctx := context.Background()
	s, _ := openStore(b)
	must[Slip](b)(s.Admit(ctx, phone(0)))
	choices := []Choice{ChoiceConsent, ChoiceRefuse}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		must[Slip](b)(s.Cast(ctx, phone(0), choices[i%2], 0))
	}
}

// BenchmarkCastConcurrent shows what grouping commits buys: 64 phones cast
// at once and share fsyncs.
func BenchmarkCastConcurrent(b *testing.B) {
	ctx := context.Background()
	s, _ := openStore(b)
	const phones = 64
	for i := range phones {
		must[Slip](b)(s.Admit(ctx, phone(i)))
	}
	choices := []Choice{ChoiceConsent, ChoiceRefuse}
	var next sync.Mutex
	i := 0
	b.SetParallelism(phones / 2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		me := phone(i % phones)
		i++
		next.Unlock()
		for n := 0; pb.Next(); n++ {
			if _, err := s.Cast(ctx, me, choices[n%2], 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFirstSlip is a new phone's first slip: the one change whose
// answer waits for a commit (and its fsync), against BenchmarkCastSequential,
// a change of mind, which touches no disk.
func BenchmarkFirstSlip(b *testing.B) {
	ctx := context.Background()
	s, _ := openStore(b)
	for i := 0; b.Loop(); i++ {
		must[Slip](b)(s.Admit(ctx, phone(i)))
		must[Slip](b)(s.Cast(ctx, phone(i), ChoiceConsent, 0))
	}
}

// TestNoticeFieldsCannotBeChanged: what a caller does with the list of
// notice fields does not change the fields the store accepts.
func TestNoticeFieldsCannotBeChanged(t *testing.T) {
	f := NoticeFields()
	first := f[0]
	f[0] = "made_up"
	if got := NoticeFields()[0]; got != first {
		t.Fatalf("NoticeFields()[0] = %q after a caller changed its copy; want %q", got, first)
	}
	if _, err := (RoundSpec{Purpose: "p", Fields: map[string]string{"made_up": "x"}}).normalize(); err == nil {
		t.Fatal("a field a caller wrote into its copy of the list is accepted")
	}
}
