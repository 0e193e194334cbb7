package main

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// newTestFloor serves a floor (grouped or not) inside the test process on
// 127.0.0.1, with its database in a temporary directory.
func newTestFloor(t *testing.T, grouped bool) (target, *floor) {
	t.Helper()
	token := randomToken()
	f, err := openFloor(t.Context(), filepath.Join(t.TempDir(), "floor.db"), token, "", grouped)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(func() {
		srv.Close()
		f.Close()
	})
	return target{name: "floor", base: srv.URL, token: token}, f
}

func TestHallAgainstFloor(t *testing.T) {
	tg, _ := newTestFloor(t, false)
	checkHall(t, tg, hallConfig{Ramp: 100 * time.Millisecond})
}

func TestHallAtOnceAgainstGroupedFloor(t *testing.T) {
	tg, _ := newTestFloor(t, true)
	checkHall(t, tg, hallConfig{AtOnce: true, JoinSettle: 50 * time.Millisecond})
}

// TestGroupedFloorGroups holds the floor's one connection while slips
// queue, so that the committer is certain to find them all waiting: they
// must share one transaction, and each must be counted.
func TestGroupedFloorGroups(t *testing.T) {
	const slips = 50
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, f := newTestFloor(t, true)
	held, err := f.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, slips)
	for i := range slips {
		go func() {
			var dev [32]byte
			dev[0] = byte(i)
			errs <- f.save(ctx, dev, "consent")
		}()
	}
	// The committer takes the first slip and waits for the connection; the
	// rest queue behind it.
	for len(f.slips) < slips-1 {
		if ctx.Err() != nil {
			t.Fatalf("only %d slips queued", len(f.slips))
		}
		time.Sleep(time.Millisecond)
	}
	held.Close()
	for range slips {
		if err := <-errs; err != nil {
			t.Fatalf("save: %v", err)
		}
	}
	if got := f.commits.Load(); got != 1 {
		t.Errorf("commits = %d; want 1 for %d slips waiting together", got, slips)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.consents != slips {
		t.Errorf("consents = %d; want %d", f.consents, slips)
	}
}

// checkHall plays a 20-phone hall against tg and checks that it went
// through; cfg gives the mode, the rest is filled in.
func checkHall(t *testing.T, tg target, cfg hallConfig) {
	t.Helper()
	const phones = 20
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg.Phones = phones
	cfg.AckWait, cfg.SeeWait, cfg.Settle = 5*time.Second, 5*time.Second, 5*time.Second
	res, err := playHall(ctx, tg, cfg)
	if err != nil {
		t.Fatalf("playHall: %v", err)
	}
	if res.Acked != phones || res.Failed != 0 {
		t.Errorf("acked, failed = %d, %d (%v, first: %s); want %d, 0", res.Acked, res.Failed, res.Failures, res.FirstErr, phones)
	}
	if !res.UnlockSeen {
		t.Errorf("recorder never saw unlocked after all phones consented")
	}
	if !res.LockSeen {
		t.Errorf("recorder never saw locked after a withdrawal")
	}
	if res.AckP50 <= 0 || res.AckP50 > res.AckP99 || res.AckP99 > res.AckMax {
		t.Errorf("ack p50, p99, max = %v, %v, %v; want 0 < p50 ≤ p99 ≤ max", res.AckP50, res.AckP99, res.AckMax)
	}
	if res.Goroutines.Peak < res.Goroutines.Start+phones {
		t.Errorf("goroutines peak = %d; want at least start (%d) + %d phones", res.Goroutines.Peak, res.Goroutines.Start, phones)
	}
	if !res.Returned {
		t.Errorf("goroutines %v, open files %v: did not return to start after every phone left", res.Goroutines, res.OpenFiles)
	}
	if res.RecorderErrors != 0 {
		t.Errorf("recorder errors = %d; want 0", res.RecorderErrors)
	}
}

// TestFloorPragmas reads the floor's settings back, because modernc.org/sqlite
// ignores a DSN key it does not know and the floor would then be measuring a
// database that does not fsync.
func TestFloorPragmas(t *testing.T) {
	db, err := sql.Open("sqlite", floorDSN(filepath.Join(t.TempDir(), "p.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s; want %s", tc.pragma, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"median of 1..100", hundred, 0.50, ms(50)},
		{"p99 of 1..100", hundred, 0.99, ms(99)},
		{"p100 of 1..100", hundred, 1.0, ms(100)},
		{"p99 of two", []time.Duration{ms(1), ms(2)}, 0.99, ms(2)},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v; want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestBackToStart(t *testing.T) {
	for _, tc := range []struct {
		g    gauge
		want bool
	}{
		{gauge{Start: 10, Peak: 1010, End: 10}, true},
		{gauge{Start: 10, Peak: 1010, End: 8}, true},
		{gauge{Start: 10, Peak: 1010, End: 11}, false},
		{gauge{Start: 10, Peak: 1010, End: -1}, false},
		{gauge{Start: -1, Peak: -1, End: -1}, true},
	} {
		if got := backToStart(tc.g); got != tc.want {
			t.Errorf("backToStart(%+v) = %v; want %v", tc.g, got, tc.want)
		}
	}
}

func TestTargetsFor(t *testing.T) {
	for _, tc := range []struct{ n, hall int }{{20, 1000}, {1000, 1000}, {1001, 5000}, {5000, 5000}} {
		if got := targetsFor(tc.n).Hall; got != tc.hall {
			t.Errorf("targetsFor(%d).Hall = %d; want %d", tc.n, got, tc.hall)
		}
	}
}
