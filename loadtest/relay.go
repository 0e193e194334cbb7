package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
)

// relayed is what the harness measured through one relay: each room's
// hall, and the relay's own memory.
type relayed struct {
	Rooms    []*result `json:"rooms"`
	RelayRSS int64     `json:"relay_peak_rss_bytes"` // 0 when unknown
	Error    string    `json:"error,omitempty"`
}

// measureRelayed starts one relay and rooms kiosks registered with it,
// plays a hall against each at once, phones reaching their kiosk only
// through the relay, and stops them all.
func measureRelayed(ctx context.Context, dir string, cfg hallConfig, bin string, rooms int) (*relayed, error) {
	rs, err := startRelay(ctx, dir, bin)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	mem := startMemSampler(rs.t.pid)
	defer mem.stop()

	kiosks := make([]*server, rooms)
	defer func() {
		for _, k := range kiosks {
			if k != nil {
				k.stop()
			}
		}
	}()
	for i := range kiosks {
		name := "kiosk-relayed"
		if rooms > 1 {
			name = fmt.Sprintf("kiosk-room%d", i+1)
		}
		if kiosks[i], err = startServer(ctx, name, dir, bin, "-relay", rs.t.base, "-relay-token", rs.t.token); err != nil {
			return nil, err
		}
	}
	out := &relayed{Rooms: make([]*result, rooms)}
	errs := make([]error, rooms)
	var wg sync.WaitGroup
	for i, k := range kiosks {
		wg.Go(func() {
			out.Rooms[i], errs[i] = playHall(ctx, k.t, cfg)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%w\n%s", errs[i], k.logTail())
			}
		})
	}
	wg.Wait()
	out.RelayRSS = mem.stop()
	if err := errors.Join(errs...); err != nil {
		out.Error = err.Error()
		return out, fmt.Errorf("%w\nrelay: %s", err, rs.logTail())
	}
	return out, nil
}

// writeRelay prints the hall played through the relay next to the same
// hall played directly, and for several rooms, their totals.
func (r *report) writeRelay(w io.Writer) error {
	x := r.Relayed
	if x == nil {
		return nil
	}
	fmt.Fprintf(w, "\nthrough one relay: %d room(s) of %d phones at once\n", len(x.Rooms), r.Phones)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	d := r.Kiosk
	if len(x.Rooms) == 1 && x.Rooms[0] != nil {
		v := x.Rooms[0]
		fmt.Fprintln(tw, "figure\ttarget\tdirect\trelayed\trelayed/direct\tmet")
		row := func(name, target string, dv, vv ms, met bool, hasMet bool) {
			ds, rs := "—", vv.String()
			if d != nil {
				ds = dv.String()
			}
			m := ""
			if hasMet {
				m = yesNo(met)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, target, ds, rs, ratioString(float64(vv), float64(dv)), m)
		}
		var dd result
		if d != nil {
			dd = *d
		}
		fmt.Fprintf(tw, "phones acked\tall\t%d/%d\t%d/%d\t\t%s\n", dd.Acked, dd.Phones, v.Acked, v.Phones, yesNo(v.Failed == 0))
		row("ack p50", "", dd.AckP50, v.AckP50, false, false)
		row("ack p99", "≤ 1.5 × direct", dd.AckP99, v.AckP99, d != nil && v.Failed == 0 && float64(v.AckP99) <= 1.5*float64(d.AckP99), true)
		row("ack max", "", dd.AckMax, v.AckMax, false, false)
		row("withdrawal ack", "", dd.WithdrawAck, v.WithdrawAck, false, false)
		row("recorder sees locked after withdrawal sent", "", dd.LockAfterWithdraw, v.LockAfterWithdraw, false, false)
		// The goal is on the time after the withdrawal's ack: the phone
		// believes it has withdrawn once it sees its ack, and from then on
		// the recorder must be stopped. Negative: seen before the ack.
		fmt.Fprintf(tw, "recorder sees locked after withdrawal ack\t≤ 20 ms\t%s\t%s\t\t%s\n",
			ms(dd.LockAfterWithdraw-dd.WithdrawAck), ms(v.LockAfterWithdraw-v.WithdrawAck),
			yesNo(v.LockSeen && msOf(v.LockAfterWithdraw-v.WithdrawAck) <= 20))
		fmt.Fprintf(tw, "kiosk peak RSS\t\t%s\t%s\t\t\n", mbString(dd.PeakRSS), mbString(v.PeakRSS))
	} else {
		fmt.Fprintln(tw, "room\tacked\tack p50\tack p99\tack max\tlocked after withdrawal")
		for _, v := range x.Rooms {
			if v == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\n", v.Target, v.Acked, v.Phones, v.AckP50, v.AckP99, v.AckMax, seenString(v.LockSeen, v.LockAfterWithdraw))
		}
	}
	fmt.Fprintf(tw, "relay peak RSS\t\t\t%s\t\t\n", mbString(x.RelayRSS))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range x.Rooms {
		if v != nil && v.Failed > 0 {
			fmt.Fprintf(w, "\n%s failures: %s (first: %s)\n", v.Target, failureString(v.Failures), v.FirstErr)
		}
	}
	if x.Error != "" {
		fmt.Fprintf(w, "\nrelay not fully measured: %s\n", x.Error)
	}
	return nil
}
