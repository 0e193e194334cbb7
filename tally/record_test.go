package tally

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock, so that retention is tested without
// waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openAt opens the store at path with clk, closing it when the test ends.
func openAt(t testing.TB, path string, clk *testClock) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Now: clk.Now, Retention: 30 * 24 * time.Hour, FaultRetry: testFaultRetry})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func record(t testing.TB, s *Store, round int64) RoundRecord {
	t.Helper()
	recs, err := s.Record(context.Background(), round)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Record(%d) = %v, %v; want one round", round, recs, err)
	}
	return recs[0]
}

func TestNoticeNormalize(t *testing.T) {
	valid := map[string]string{"course": " INF100 ", "camera": "front rows", "storage": ""}
	n, err := RoundSpec{Purpose: " p ", Fields: valid}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.canonicalNotice(), `{"camera":"front rows","course":"INF100"}`; got != want {
		t.Errorf("canonical notice = %s; want %s (sorted, trimmed, empty fields dropped)", got, want)
	}
	if n.Purpose != "p" || n.Mode != ModeRoom {
		t.Errorf("normalized spec = %+v; want trimmed purpose and mode room", n)
	}
	if got, want := (RoundSpec{Notice: `a "quoted" <text>`}).canonicalNotice(), `"a \"quoted\" <text>"`; got != want {
		t.Errorf("canonical text notice = %s; want %s", got, want)
	}

	for _, bad := range []RoundSpec{
		{Purpose: "p", Fields: map[string]string{"colour": "red"}},
		{Purpose: "p", Notice: "text", Fields: map[string]string{"course": "x"}},
		{Purpose: "p", Mode: "everyone"},
		{Purpose: "p", Mode: ModeLecturerOnly, Series: "INF100"},
		{Purpose: "p", Template: "../../etc"},
		{Purpose: "p", Series: strings.Repeat("x", MaxSeriesLen+1)},
		{Purpose: "p", Series: "a\nb"},
		{Purpose: "p", Fields: map[string]string{"course": strings.Repeat("x", MaxNoticeLen+1)}},
		{Purpose: "p", Notice: "bad \xff utf-8"},
	} {
		if _, err := bad.normalize(); !errors.Is(err, ErrInvalid) {
			t.Errorf("normalize(%.80v) = %v; want ErrInvalid", bad, err)
		}
	}
}

func TestNoticeHashBindsEveryField(t *testing.T) {
	base := RoundSpec{Purpose: "p", Fields: map[string]string{"course": "INF100", "camera": "front"}}
	h := NoticeHash(base)
	for name, other := range map[string]RoundSpec{
		"purpose":       {Purpose: "p2", Fields: base.Fields},
		"field text":    {Purpose: "p", Fields: map[string]string{"course": "INF100", "camera": "back"}},
		"field added":   {Purpose: "p", Fields: map[string]string{"course": "INF100", "camera": "front", "storage": "x"}},
		"field moved":   {Purpose: "p", Fields: map[string]string{"course": "front", "camera": "INF100"}},
		"as text":       {Purpose: "p", Notice: `{"camera":"front","course":"INF100"}`},
		"lecturer-only": {Purpose: "p", Fields: base.Fields, Mode: ModeLecturerOnly},
	} {
		if NoticeHash(other) == h {
			t.Errorf("changing the %s leaves the hash unchanged", name)
		}
	}
	same := RoundSpec{Purpose: " p", Fields: map[string]string{"camera": "front ", "course": "INF100", "access": ""}}
	if NoticeHash(same) != h {
		t.Error("the hash depends on spaces around texts or on empty fields")
	}
}

func TestStructuredNoticeIsStoredCanonically(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	spec := RoundSpec{Purpose: "Lecture video", Template: "nb", Fields: map[string]string{"questions": "e-post", "course": "INF100"}}
	r := must[Round](t)(s.NewRound(ctx, spec))
	if want := `{"course":"INF100","questions":"e-post"}`; r.Notice != want {
		t.Errorf("round notice = %s; want %s", r.Notice, want)
	}
	if r.NoticeHash != NoticeHash(spec) || r.Template != "nb" || r.Mode != ModeRoom {
		t.Errorf("round = %+v; want hash %s, lang nb, mode room", r, NoticeHash(spec))
	}
	s.Close()
	if got := reopen(t, path).State().Round; got.Notice != r.Notice || got.NoticeHash != r.NoticeHash || got.Template != "nb" {
		t.Errorf("after restart round = %+v; want %+v", got, r)
	}
}

// TestPaperSlipsCountButOnlyTheirTotalIsKept: the split of paper slips is
// kept in memory only, like phones' choices. After a restart the total is
// known, the split is not: the kiosk is locked, restarted, until the
// lecturer enters the counts again.
func TestPaperSlipsCountButOnlyTheirTotalIsKept(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 3))
	castAll(t, s, 2, ChoiceConsent)
	if st := s.State(); st.Reason != ReasonWaiting {
		t.Fatalf("2 of 3 phones: %+v; want waiting", st)
	}
	mustDo(t, s.SetPaper(ctx, 1, 0))
	mustDo(t, s.SetPaper(ctx, 1, 0)) // a retry sets, it does not add
	if st := s.State(); !st.Unlocked || st.Received != 3 || st.Paper != 1 {
		t.Errorf("2 phones and 1 paper consent of 3: %+v; want unlocked, 3 received", st)
	}
	mustDo(t, s.SetPaper(ctx, 1, 1))
	if st := s.State(); st.Reason != ReasonOvercount {
		t.Errorf("4 slips for 3: %+v; want overcount", st)
	}
	mustDo(t, s.SetPaper(ctx, 0, 1))
	if st := s.State(); st.Reason != ReasonRefused {
		t.Errorf("a paper refusal: %+v; want refused", st)
	}
	for _, bad := range [][2]int{{-1, 0}, {0, -1}, {MaxHeadcount + 1, 0}} {
		if err := s.SetPaper(ctx, bad[0], bad[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetPaper(%d, %d) = %v; want ErrInvalid", bad[0], bad[1], err)
		}
	}
	s.Close()
	s = reopen(t, path)
	if st := s.State(); st.Reason != ReasonRestarted || st.PaperMissing != 1 || st.Received != 3 || st.Paper != 0 {
		t.Errorf("after restart: %+v; want restarted, the 1 paper slip missing and still received", st)
	}
	for i := range 2 {
		must[Slip](t)(s.Rejoin(ctx, phone(i)))
		must[Slip](t)(s.Cast(ctx, phone(i), ChoiceConsent, 0))
	}
	if st := s.State(); st.Reason != ReasonRestarted {
		t.Errorf("phones reported, paper not entered again: %+v; want restarted", st)
	}
	mustDo(t, s.SetPaper(ctx, 0, 1))
	if st := s.State(); st.Reason != ReasonRefused || st.Paper != 1 || st.PaperMissing != 0 {
		t.Errorf("paper entered again: %+v; want refused", st)
	}
	round := s.State().Round.ID
	mustDo(t, s.CloseSession(ctx))

	rec := record(t, s, round)
	if rec.Paper != 1 || rec.Received == nil || *rec.Received != 3 || rec.Outcome != string(ReasonRefused) {
		t.Errorf("record = %+v; want 3 received, 1 of them paper, outcome refused", rec)
	}
	var tables int
	mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM sqlite_master WHERE sql LIKE '%refus%' OR sql LIKE '%choice%'`).Scan(&tables))
	if tables != 0 {
		t.Errorf("%d tables have a column for refusals or choices; want none", tables)
	}
}

func TestLecturerOnlyRound(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	castAll(t, s, 1, ChoiceRefuse)
	r := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Slides and my voice", Mode: ModeLecturerOnly}))
	if st := s.State(); !st.Unlocked || st.Headcount != 0 {
		t.Errorf("lecturer-only round: %+v; want unlocked without a headcount", st)
	}
	if _, err := s.Cast(ctx, phone(0), ChoiceRefuse, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("a slip in a lecturer-only round = %v; want ErrInvalid", err)
	}
	if err := s.SetPaper(ctx, 1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("paper in a lecturer-only round = %v; want ErrInvalid", err)
	}
	mustDo(t, s.CloseSession(ctx))
	if st := s.State(); st.Unlocked {
		t.Errorf("closed lecturer-only session: %+v; want locked", st)
	}
	rec := record(t, s, r.ID)
	if rec.Mode != ModeLecturerOnly || rec.Outcome != OutcomeUnlocked || len(rec.Intervals) != 1 || rec.Intervals[0].Why != EndClosed {
		t.Errorf("record = %+v; want mode lecturer-only, one interval ended by closed", rec)
	}
}

func TestSlipsNeedAPurpose(t *testing.T) {
	ctx := context.Background()
	s := reopen(t, filepath.Join(t.TempDir(), "kiosk.db")) // a new kiosk: no round described yet
	mustDo(t, s.SetHeadcount(ctx, 1))
	must[Slip](t)(s.Admit(ctx, phone(0)))
	if _, err := s.Cast(ctx, phone(0), ChoiceConsent, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("a slip before any purpose = %v; want ErrInvalid", err)
	}
	if st := s.State(); st.Unlocked {
		t.Errorf("state = %+v; want locked", st)
	}
}

// TestRecordIntervals plays a lecture and checks every interval and why it
// ended, in the database the record is read from.
func TestRecordIntervals(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	first := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Lecture video", Notice: "voice only"}))
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent) // unlocks at 10:00
	clk.Advance(10 * time.Minute)
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceRefuse, 0)) // ends it: slip-changed
	clk.Advance(time.Minute)
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceConsent, 0)) // unlocks at 10:11
	clk.Advance(time.Minute)
	mustDo(t, s.SetHeadcount(ctx, 3)) // ends it: headcount-change
	mustDo(t, s.SetPaper(ctx, 1, 0))  // unlocks at 10:12
	clk.Advance(time.Minute)
	mustDo(t, s.SetPaper(ctx, 0, 0)) // paper-change
	mustDo(t, s.SetPaper(ctx, 1, 0))
	clk.Advance(time.Minute)
	must[Slip](t)(s.Leave(ctx, phone(0))) // a phone leaving is a slip change too
	must[Slip](t)(s.Admit(ctx, phone(0)))
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0))
	clk.Advance(time.Minute)
	second := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Another purpose"}))
	s.Close() // a shutdown while locked changes nothing

	s = openAt(t, path, clk)
	rec := record(t, s, first.ID)
	at := func(min int) time.Time { return time.Date(2026, 9, 1, 10, min, 0, 0, time.UTC) }
	want := []struct {
		start, end int
		why        string
	}{
		{0, 10, EndSlipChanged},
		{11, 12, EndHeadcountChange},
		{12, 13, EndPaperChange},
		{13, 14, EndSlipChanged},
		{14, 15, EndNewRound},
	}
	if len(rec.Intervals) != len(want) {
		t.Fatalf("intervals = %+v; want %d", rec.Intervals, len(want))
	}
	for i, w := range want {
		got := rec.Intervals[i]
		if !got.Start.Equal(at(w.start)) || got.End == nil || !got.End.Equal(at(w.end)) || got.Why != w.why {
			t.Errorf("interval %d = %v–%v %s; want 10:%02d–10:%02d %s", i, got.Start, got.End, got.Why, w.start, w.end, w.why)
		}
	}
	if rec.Outcome != OutcomeUnlocked || *rec.Received != 3 || rec.Paper != 1 || rec.Headcount != 3 || rec.Current {
		t.Errorf("record = %+v; want ended unlocked, 3 received of which 1 paper, headcount 3", rec)
	}
	if got := record(t, s, second.ID); !got.Current || got.ClosedAt != nil || len(got.Intervals) != 0 {
		t.Errorf("current round record = %+v; want current, open, no intervals", got)
	}
	if _, err := s.Record(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record(999) = %v; want ErrNotFound", err)
	}
}

func TestRecordStoppedAndInterrupted(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	r := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Lecture video"}))
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	clk.Advance(time.Minute)
	s.Close() // a shutdown while unlocked ends the interval: stopped

	clk.Advance(time.Minute)
	s = openAt(t, path, clk) // restarted: locked until the phone reports
	report := func(s *Store) {
		must[Slip](t)(s.Rejoin(ctx, phone(0)))
		must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0)) // a new interval starts
	}
	report(s)
	// Emulate a crash: a copy of the file while an interval is open.
	crashCopy(t, s, path)
	clk.Advance(time.Minute)
	s = openAt(t, path+".crash", clk)
	if st := s.State(); st.Reason != ReasonRestarted {
		t.Errorf("after the crash: %+v; want restarted", st)
	}
	report(s)

	got := record(t, s, r.ID).Intervals
	if len(got) != 3 {
		t.Fatalf("intervals = %+v; want 3", got)
	}
	if got[0].Why != EndStopped || got[0].End == nil || !got[0].End.Equal(time.Date(2026, 9, 1, 10, 1, 0, 0, time.UTC)) {
		t.Errorf("first interval = %+v; want ended by stopped at 10:01", got[0])
	}
	if got[1].Why != EndInterrupted || got[1].End != nil {
		t.Errorf("second interval = %+v; want interrupted with no end time", got[1])
	}
	if got[2].Why != "" || got[2].End != nil || !got[2].Start.Equal(time.Date(2026, 9, 1, 10, 3, 0, 0, time.UTC)) {
		t.Errorf("third interval = %+v; want open since 10:03", got[2])
	}
}

// crashCopy copies the live database of s, WAL and all, to path+".crash",
// as a machine that lost power would leave it.
func crashCopy(t *testing.T, s *Store, path string) {
	t.Helper()
	if _, err := s.DB().Exec(`PRAGMA wal_checkpoint(FULL)`); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".crash", b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRecordHoldsNoSplit(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 3))
	castAll(t, s, 2, ChoiceConsent)
	must[Slip](t)(s.Admit(ctx, phone(7)))
	must[Slip](t)(s.Cast(ctx, phone(7), ChoiceRefuse, 0))
	mustDo(t, s.SetPaper(ctx, 2, 1))
	round := s.State().Round.ID
	mustDo(t, s.CloseSession(ctx))
	b, err := json.Marshal(record(t, s, round))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for k := range m {
		if strings.Contains(k, "consent") || strings.Contains(k, "refus") {
			t.Errorf("record has field %q: %s", k, b)
		}
	}
	// The rounds table holds nothing more than the record shows.
	var cols []string
	rows, err := s.DB().Query(`SELECT name FROM pragma_table_info('rounds')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	for _, c := range cols {
		if strings.Contains(c, "consent") || strings.Contains(c, "refus") {
			t.Errorf("rounds has column %q", c)
		}
	}
}

func seriesSpec(name string) RoundSpec {
	return RoundSpec{Purpose: "Lecture video for INF100", Series: name,
		Fields: map[string]string{"course": "INF100", "camera": "front rows only"}}
}

func TestSeriesRemembersConsentOnlyFromAllConsentRounds(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	s := openAt(t, filepath.Join(t.TempDir(), "kiosk.db"), clk)

	// Session 1: everyone consents.
	must[Round](t)(s.NewRound(ctx, seriesSpec("INF100")))
	mustDo(t, s.SetHeadcount(ctx, 2))
	castAll(t, s, 2, ChoiceConsent)
	mustDo(t, s.CloseSession(ctx))
	if n := countRows(t, s, "series_phones"); n != 2 {
		t.Fatalf("series phones after an all-consent session = %d; want 2", n)
	}

	// Session 2, a week later: the phones are offered their earlier consent,
	// a new phone is not, and each must still be counted in the room.
	clk.Advance(7 * 24 * time.Hour)
	must[Round](t)(s.NewRound(ctx, seriesSpec("INF100")))
	mustDo(t, s.SetHeadcount(ctx, 3))
	if slip := must[Slip](t)(s.Admit(ctx, phone(0))); slip.SeriesDay != "2026-09-01" || slip.Choice != ChoiceNone {
		t.Errorf("Join of a phone that consented in session 1 = %+v; want series day 2026-09-01 and no slip yet", slip)
	}
	if slip := must[Slip](t)(s.Admit(ctx, phone(5))); slip.SeriesDay != "" {
		t.Errorf("Join of a new phone = %+v; want no series day", slip)
	}
	if st := s.State(); st.Received != 0 {
		t.Errorf("received = %d before anyone answered; want 0", st.Received)
	}
	// One refuses: the round ends locked and nothing new is remembered.
	must[Slip](t)(s.Cast(ctx, phone(0), ChoiceConsent, 0))
	must[Slip](t)(s.Admit(ctx, phone(1)))
	must[Slip](t)(s.Cast(ctx, phone(1), ChoiceConsent, 0))
	must[Slip](t)(s.Cast(ctx, phone(5), ChoiceRefuse, 0))
	mustDo(t, s.CloseSession(ctx))
	var days []string
	eachDay := func() {
		days = nil
		rows, err := s.DB().Query(`SELECT day FROM series_phones ORDER BY day`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			rows.Scan(&d)
			days = append(days, d)
		}
	}
	eachDay()
	if strings.Join(days, ",") != "2026-09-01,2026-09-01" {
		t.Errorf("series days after a session with a refusal = %v; want only session 1's two", days)
	}

	// Another notice under the same series name is refused.
	other := seriesSpec("INF100")
	other.Fields = map[string]string{"course": "INF100", "camera": "the whole room"}
	if _, err := s.NewRound(ctx, other); !errors.Is(err, ErrSeriesMismatch) {
		t.Errorf("NewRound with another notice in the series = %v; want ErrSeriesMismatch", err)
	}

	list := must[[]SeriesInfo](t)(s.Series(ctx))
	if len(list) != 1 || list[0].Name != "INF100" || list[0].LastOn != "2026-09-01" {
		t.Errorf("Series() = %+v; want INF100 last on 2026-09-01", list)
	}
	mustDo(t, s.EndSeries(ctx, "INF100"))
	if n := countRows(t, s, "series_phones") + countRows(t, s, "series"); n != 0 {
		t.Errorf("series rows after EndSeries = %d; want 0", n)
	}
	if err := s.EndSeries(ctx, "INF100"); !errors.Is(err, ErrNotFound) {
		t.Errorf("EndSeries twice = %v; want ErrNotFound", err)
	}
	must[Round](t)(s.NewRound(ctx, seriesSpec("INF100")))
	if slip := must[Slip](t)(s.Admit(ctx, phone(0))); slip.SeriesDay != "" {
		t.Errorf("Join after the series ended = %+v; want no series day", slip)
	}
}

func TestSeriesHashesDifferFromSessionHashes(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	must[Round](t)(s.NewRound(ctx, seriesSpec("INF100")))
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	var session []byte
	mustDo(t, s.DB().QueryRow(`SELECT device FROM phones`).Scan(&session))
	mustDo(t, s.CloseSession(ctx))
	var series []byte
	mustDo(t, s.DB().QueryRow(`SELECT device FROM series_phones`).Scan(&series))
	if bytes.Equal(session, series) || bytes.Contains(series, []byte(phone(0))) {
		t.Error("the series hash equals the session hash or holds the secret")
	}
}

func countRows(t testing.TB, s *Store, table string) int {
	t.Helper()
	var n int
	mustDo(t, s.DB().QueryRow(`SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// fileHolds reports whether the database file or its WAL holds needle.
func fileHolds(t *testing.T, path string, needle string) bool {
	t.Helper()
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(needle)) {
			return true
		}
	}
	return false
}

// TestPurgeRemovesFromTheFile proves that a purged round and series are
// gone from the bytes on disk, not just from the tables.
func TestPurgeRemovesFromTheFile(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	const purpose = "Zebra-purpose-to-be-purged"
	const series = "SERIES-TO-BE-PURGED"
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: purpose, Series: series, Fields: map[string]string{"camera": "Camera-text-to-be-purged"}}))
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	mustDo(t, s.CloseSession(ctx))
	clk.Advance(24 * time.Hour)
	kept := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Kept-purpose"}))
	for _, needle := range []string{purpose, series, "Camera-text-to-be-purged"} {
		if !fileHolds(t, path, needle) {
			t.Fatalf("the file does not hold %q before the purge: the test cannot see what it checks", needle)
		}
	}

	clk.Advance(29 * 24 * time.Hour) // 30 days after the first round ended
	if n := must[int](t)(s.Purge(ctx)); n != 0 {
		t.Errorf("Purge within the retention deleted %d rounds; want 0", n)
	}
	clk.Advance(time.Hour)
	// Two: the empty round a new kiosk starts with, and the lecture.
	if n := must[int](t)(s.Purge(ctx)); n != 2 {
		t.Errorf("Purge after the retention deleted %d rounds; want 2", n)
	}
	// Series memory is kept by the day: it goes once its whole day is older
	// than the retention.
	clk.Advance(24 * time.Hour)
	must[int](t)(s.Purge(ctx))
	for _, needle := range []string{purpose, series, "Camera-text-to-be-purged"} {
		if fileHolds(t, path, needle) {
			t.Errorf("the database file still holds %q after the purge", needle)
		}
	}
	for _, table := range []string{"series", "series_phones", "intervals"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%s rows after the purge = %d; want 0", table, n)
		}
	}
	recs := must[[]RoundRecord](t)(s.Record(ctx, 0))
	if len(recs) != 1 || recs[0].Round != kept.ID {
		t.Errorf("record after the purge = %+v; want only the current round", recs)
	}
}

func TestPurgeAtOpen(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Old-purpose-gone-at-open"}))
	mustDo(t, s.CloseSession(ctx))
	s.Close()

	clk.Advance(31 * 24 * time.Hour)
	s = openAt(t, path, clk)
	if fileHolds(t, path, "Old-purpose-gone-at-open") {
		t.Error("the file still holds a round older than the retention after Open")
	}
	if st := s.State(); !st.Closed || st.Round.Purpose != "" {
		t.Errorf("state after purging the closed session's round = %+v; want closed with an empty round", st)
	}
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "next term"}))
}

// TestMigrateFromFirstSchema opens a database written by the first version
// of the kiosk.
func TestMigrateFromFirstSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiosk.db")
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE rounds (id INTEGER PRIMARY KEY, purpose TEXT NOT NULL, notice TEXT NOT NULL, notice_hash TEXT NOT NULL,
	headcount INTEGER NOT NULL DEFAULT 0, opened_at TEXT NOT NULL, closed_at TEXT);
CREATE TABLE phones (device BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE slips (device BLOB PRIMARY KEY, choice INTEGER NOT NULL CHECK (choice IN (1, 2))) WITHOUT ROWID;
INSERT INTO rounds (purpose, notice, notice_hash, headcount, opened_at) VALUES ('Old lecture', 'Voice "only"', 'abc', 12, '2026-08-31T09:00:00Z');`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, newTestClock())
	st := s.State()
	if st.Round.Purpose != "Old lecture" || st.Round.Notice != `"Voice \"only\""` || st.Round.Mode != ModeRoom || st.Headcount != 12 {
		t.Errorf("migrated round = %+v, headcount %d; want the old round with its notice as a JSON string", st.Round, st.Headcount)
	}
	var v int
	mustDo(t, s.DB().QueryRow(`PRAGMA user_version`).Scan(&v))
	if v != schemaVersion {
		t.Errorf("user_version = %d; want %d", v, schemaVersion)
	}
	mustDo(t, s.SetHeadcount(context.Background(), 1))
	must[Round](t)(s.NewRound(context.Background(), RoundSpec{Purpose: "New lecture", Fields: map[string]string{"course": "INF100"}}))
}

// TestFaultEndsInterval: a storage failure locks, and the record says the
// interval ended when it did, once storage works again.
func TestFaultEndsInterval(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	s := openAt(t, filepath.Join(t.TempDir(), "kiosk.db"), clk)
	r := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Lecture video"}))
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceConsent)
	clk.Advance(time.Minute)
	mustDo(t, execOnWriter(s, `PRAGMA query_only = 1`))
	if err := s.SetHeadcount(ctx, 1); err != ErrStorage {
		t.Fatalf("SetHeadcount while storage fails = %v; want ErrStorage", err)
	}
	clk.Advance(time.Minute)
	mustDo(t, execOnWriter(s, `PRAGMA query_only = 0`))
	waitFor(t, s, 100*testFaultRetry, func(st State) bool { return st.Unlocked })
	got := record(t, s, r.ID).Intervals
	if len(got) != 2 || got[0].Why != EndFault || !got[0].End.Equal(time.Date(2026, 9, 1, 10, 1, 0, 0, time.UTC)) || got[1].End != nil {
		t.Errorf("intervals = %+v; want one ended by fault at 10:01, then one open", got)
	}
}

// TestCloseRemovesDeviceDataFromTheFile: closing a session deletes the
// phones' hashes from the bytes on disk, not just from the tables (R9).
func TestCloseRemovesDeviceDataFromTheFile(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t)
	mustDo(t, s.SetHeadcount(ctx, 1))
	castAll(t, s, 1, ChoiceRefuse)
	var device []byte
	mustDo(t, s.DB().QueryRow(`SELECT device FROM phones`).Scan(&device))
	if !fileHolds(t, path, string(device)) {
		t.Fatal("the file does not hold the phone's hash before the close: the test cannot see what it checks")
	}
	mustDo(t, s.CloseSession(ctx))
	if fileHolds(t, path, string(device)) {
		t.Error("the database file still holds the phone's hash after the session closed")
	}
}

// TestRecordShowsHeadcountChanges: every headcount set in a round is in its
// record with its time (R8): a lecturer who scripts the headcount could
// learn from when the kiosk locked, so the record shows what was done.
func TestRecordShowsHeadcountChanges(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	s := openAt(t, filepath.Join(t.TempDir(), "kiosk.db"), clk)
	first := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Lecture video"}))
	mustDo(t, s.SetHeadcount(ctx, 3))
	clk.Advance(5 * time.Minute)
	mustDo(t, s.SetHeadcount(ctx, 4))
	mustDo(t, s.SetHeadcount(ctx, 4)) // a retry changes nothing
	clk.Advance(5 * time.Minute)
	second := must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Another purpose"}))
	at := func(min int) time.Time { return time.Date(2026, 9, 1, 10, min, 0, 0, time.UTC) }
	for _, tt := range []struct {
		round int64
		want  []HeadcountChange
	}{
		{first.ID, []HeadcountChange{{at(0), 3}, {at(5), 4}}},
		{second.ID, []HeadcountChange{{at(10), 4}}}, // the headcount it opened with
	} {
		got := record(t, s, tt.round).Headcounts
		if len(got) != len(tt.want) {
			t.Errorf("round %d headcount changes = %+v; want %+v", tt.round, got, tt.want)
			continue
		}
		for i := range got {
			if !got[i].At.Equal(tt.want[i].At) || got[i].Headcount != tt.want[i].Headcount {
				t.Errorf("round %d headcount change %d = %+v; want %+v", tt.round, i, got[i], tt.want[i])
			}
		}
	}
}

// TestMigrateRenamesTemplateColumn opens a database of schema 3, whose
// rounds kept the notice's template in a column named lang: the current
// round and the record keep their template.
func TestMigrateRenamesTemplateColumn(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "kiosk.db")
	s := openAt(t, path, clk)
	must[Round](t)(s.NewRound(ctx, RoundSpec{Purpose: "Lecture video", Template: "nb"}))
	_, err := s.DB().Exec(`ALTER TABLE rounds RENAME COLUMN template TO lang; PRAGMA user_version = 3`)
	mustDo(t, err)
	s.Close()

	s = openAt(t, path, clk)
	if got := s.State().Round.Template; got != "nb" {
		t.Errorf("current round's template after migrating = %q; want nb", got)
	}
	recs := must[[]RoundRecord](t)(s.Record(ctx, 0))
	if len(recs) == 0 || recs[len(recs)-1].Template != "nb" {
		t.Errorf("record after migrating = %+v; want the round with template nb", recs)
	}
	var v int
	mustDo(t, s.DB().QueryRow(`PRAGMA user_version`).Scan(&v))
	if v != schemaVersion {
		t.Errorf("user_version = %d; want %d", v, schemaVersion)
	}
}
