// Command loadtest plays a lecture hall of phones against the kiosk and
// against a floor (the barest server that commits each slip before acking
// it), and reports the kiosk's figures next to the floor's.
//
// Run it from the repository root:
//
//	go run ./loadtest -n 1000
//
// It builds the kiosk, starts it and the floor on 127.0.0.1, plays the same
// hall against each, stops both and prints a table (or JSON with -json).
// See docs/PERFORMANCE.md for what it measures and why.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// fileMargin is the open files the harness and a server need besides the
// phones' sockets: the database and its WAL, the listener, the recorder,
// the Go toolchain's own.
const fileMargin = 256

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The harness starts the floor by running itself as "loadtest floor".
	if len(args) > 0 && args[0] == "floor" {
		return runFloor(ctx, args[1:])
	}

	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "phones in the hall")
	ramp := fs.Duration("ramp", 3*time.Second, "the phones connect spread evenly over this long")
	timeout := fs.Duration("timeout", 5*time.Minute, "overall deadline, including building the kiosk")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	keep := fs.Bool("keep", false, "keep the temporary directory (databases, server logs)")
	floorOnly := fs.Bool("floor-only", false, "measure the floors only; do not build or start the kiosk")
	kioskPath := fs.String("kiosk", "", "play this kiosk binary instead of building the one in this repository (to compare with an older commit)")
	atOnce := fs.Bool("at-once", false, "connect every phone first, then have all of them send their slip at the same moment (no ramp)")
	viaRelay := fs.Bool("relay", false, "also play the hall through a relay on loopback, in the same run")
	rooms := fs.Int("rooms", 1, "with -relay: this many kiosks on the one relay, each with -n phones, played at once instead of the floor and the direct hall")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 100_000 {
		return fmt.Errorf("-n %d: want 1 to 100000 (the kiosk's headcount range)", *n)
	}
	if *ramp < 0 {
		return errors.New("-ramp must not be negative")
	}
	if *rooms < 1 || *rooms > 100 || (*rooms > 1 && !*viaRelay) {
		return errors.New("-rooms: 1 to 100, and more than 1 only with -relay")
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	// Each phone is a socket in the harness and one in the server; the
	// server inherits this limit.
	limit, err := raiseFileLimit(uint64(*n)*uint64(*rooms)*2 + fileMargin*uint64(*rooms))
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "kiosk-loadtest-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(stderr, "loadtest: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	rep := &report{
		Phones:  *n,
		Ramp:    ms(*ramp),
		AtOnce:  *atOnce,
		Targets: targetsFor(*n),
		Machine: machine{
			CPUs:       runtime.NumCPU(),
			Memory:     memTotal(),
			Go:         runtime.Version(),
			OS:         runtime.GOOS + "/" + runtime.GOARCH,
			LoadBefore: loadAvg(),
			FileLimit:  limit,
		},
	}
	cfg := hallConfig{
		Phones:  *n,
		Ramp:    *ramp,
		AckWait: 30 * time.Second,
		SeeWait: 10 * time.Second,
		Settle:  10 * time.Second,
		AtOnce:  *atOnce,
		// A second is ample for 5,000 hellos, which need no disk.
		JoinSettle: time.Second,
	}

	// Build first, so the compiler is not competing with either hall.
	kioskBin := *kioskPath
	if !*floorOnly && kioskBin != "" {
		if kioskBin, err = filepath.Abs(kioskBin); err != nil {
			return err
		}
		rep.KioskBinary = kioskBin
	} else if !*floorOnly {
		fmt.Fprintln(stderr, "loadtest: building the kiosk")
		kioskBin, err = buildKiosk(ctx, dir)
		if err != nil {
			rep.KioskError = err.Error()
		}
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *rooms == 1 {
		fmt.Fprintf(stderr, "loadtest: %d phones against the floor\n", *n)
		rep.Floor, err = measure(ctx, "floor", dir, cfg, self, "floor")
		if err != nil {
			rep.FloorError = err.Error()
		}
		fmt.Fprintf(stderr, "loadtest: %d phones against the grouped floor\n", *n)
		rep.Grouped, err = measure(ctx, "grouped-floor", dir, cfg, self, "floor", "-group")
		if err != nil {
			rep.GroupedError = err.Error()
		}
	}
	if kioskBin != "" && *rooms == 1 {
		fmt.Fprintf(stderr, "loadtest: %d phones against the kiosk\n", *n)
		rep.Kiosk, err = measure(ctx, "kiosk", dir, cfg, kioskBin)
		if err != nil {
			rep.KioskError = err.Error()
		}
	}

	if kioskBin != "" && *viaRelay {
		fmt.Fprintf(stderr, "loadtest: %d room(s) of %d phones through a relay\n", *rooms, *n)
		rep.Relayed, err = measureRelayed(ctx, dir, cfg, kioskBin, *rooms)
		if err != nil && rep.Relayed == nil {
			rep.Relayed = &relayed{Error: err.Error()}
		}
	}

	if *asJSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		return err
	}
	if ((rep.FloorError != "" || rep.GroupedError != "") && *rooms == 1) || (rep.KioskError != "" && !*floorOnly) || (rep.Relayed != nil && rep.Relayed.Error != "") {
		return errors.New("not every hall could be played")
	}
	return nil
}

// measure starts a server, plays the hall against it and stops it.
func measure(ctx context.Context, name, dir string, cfg hallConfig, bin string, args ...string) (*result, error) {
	s, err := startServer(ctx, name, dir, bin, args...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	res, err := playHall(ctx, s.t, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return res, nil
}
