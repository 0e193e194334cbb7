package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run of the harness measured.
type report struct {
	Phones  int     `json:"phones"`
	Ramp    ms      `json:"ramp_ms"`
	AtOnce  bool    `json:"at_once"`
	Machine machine `json:"machine"`
	Targets targets `json:"targets"`
	Floor   *result `json:"floor,omitempty"`
	// Grouped is the floor that commits every waiting slip in one
	// transaction.
	Grouped *result `json:"grouped_floor,omitempty"`
	Kiosk   *result `json:"kiosk,omitempty"`
	// KioskBinary is the binary played when -kiosk named one.
	KioskBinary  string `json:"kiosk_binary,omitempty"`
	GroupedError string `json:"grouped_floor_error,omitempty"`
	// Relayed is the hall played through a relay (-relay).
	Relayed    *relayed `json:"relayed,omitempty"`
	FloorError string   `json:"floor_error,omitempty"`
	KioskError string   `json:"kiosk_error,omitempty"`
}

// machine describes where the run happened, since on a shared machine the
// absolute numbers depend on it.
type machine struct {
	CPUs       int    `json:"cpus"`
	Memory     string `json:"memory"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	LoadBefore string `json:"load_before"`
	FileLimit  uint64 `json:"file_limit"`
}

// targets are issue 5's goals for a hall of this size.
type targets struct {
	Hall     int     `json:"hall"` // the column of the targets table used
	UnlockMs float64 `json:"unlock_ms"`
	LockMs   float64 `json:"lock_ms"`
	RSSMB    float64 `json:"rss_mb"`
	AckRatio float64 `json:"ack_p99_ratio"`
	// WithdrawRatio bounds a withdrawal's own ack against the plain
	// floor's.
	WithdrawRatio float64 `json:"withdraw_ack_ratio"`
	// FramesPerSlip bounds the frames phones receive per slip handed in:
	// half of the 12.3 measured before tallies were coalesced.
	FramesPerSlip float64 `json:"frames_per_slip"`
}

// targetsFor picks the targets for a hall of n phones: the N = 1,000 column
// up to 1,000 phones, the N = 5,000 column above.
func targetsFor(n int) targets {
	if n <= 1000 {
		return targets{Hall: 1000, UnlockMs: 50, LockMs: 20, RSSMB: 60, AckRatio: 1, WithdrawRatio: 2, FramesPerSlip: 6.15}
	}
	return targets{Hall: 5000, UnlockMs: 100, LockMs: 50, RSSMB: 150, AckRatio: 1, WithdrawRatio: 2, FramesPerSlip: 6.15}
}

// framesPerSlip is the frames phones received per slip handed in (every
// phone's consent and the one withdrawal).
func (x *result) framesPerSlip() float64 {
	slips := x.Acked
	if x.WithdrawAck > 0 {
		slips++
	}
	if slips == 0 {
		return 0
	}
	return float64(x.FramesToPhones) / float64(slips)
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report for a person: one row per figure, both
// floors and the kiosk side by side, the kiosk's ratio to each, and whether
// the target is met. A ramped hall's ack p99 is judged against the plain
// floor, an at-once hall's against the grouped one: a ramp of a thousand
// makes no queue to group, a burst does.
func (r *report) writeTable(w io.Writer) error {
	how := fmt.Sprintf("ramp %v", time.Duration(r.Ramp))
	if r.AtOnce {
		how = "all slips at once"
	}
	fmt.Fprintf(w, "hall of %d phones, %s; targets from the N = %d column\n", r.Phones, how, r.Targets.Hall)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s %s, load before %s, open-file limit %d\n",
		m.CPUs, m.Memory, m.Go, m.OS, m.LoadBefore, m.FileLimit)
	if r.KioskBinary != "" {
		fmt.Fprintf(w, "kiosk: %s\n", r.KioskBinary)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\ttarget\tfloor\tgrouped\tkiosk\tkiosk/floor\tkiosk/grouped\tmet")
	f, g, k := r.Floor, r.Grouped, r.Kiosk
	row := func(name, target string, get func(*result) string, ratio func(base, k *result) string, met func(*result) bool) {
		vals := []string{"—", "—", "—"}
		for i, x := range []*result{f, g, k} {
			if x != nil {
				vals[i] = get(x)
			}
		}
		rf, rg, mv := "", "", ""
		if k != nil && met != nil {
			mv = "yes"
			if !met(k) {
				mv = "NO"
			}
		}
		if k != nil && ratio != nil {
			if f != nil {
				rf = ratio(f, k)
			}
			if g != nil {
				rg = ratio(g, k)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, target, vals[0], vals[1], vals[2], rf, rg, mv)
	}
	durRatio := func(get func(*result) ms) func(base, k *result) string {
		return func(base, k *result) string { return ratioString(float64(get(k)), float64(get(base))) }
	}
	t := r.Targets
	ackBase, ackBaseName := f, "floor"
	if r.AtOnce {
		ackBase, ackBaseName = g, "grouped"
	}

	row("phones acked", "all",
		func(x *result) string { return fmt.Sprintf("%d/%d", x.Acked, x.Phones) },
		nil,
		func(x *result) bool { return x.Failed == 0 })
	row("ack p50", "",
		func(x *result) string { return x.AckP50.String() },
		durRatio(func(x *result) ms { return x.AckP50 }), nil)
	row("ack p99", fmt.Sprintf("≤ %.1f × %s", t.AckRatio, ackBaseName),
		func(x *result) string { return x.AckP99.String() },
		durRatio(func(x *result) ms { return x.AckP99 }),
		func(x *result) bool {
			return ackBase != nil && x.Failed == 0 && float64(x.AckP99) <= t.AckRatio*float64(ackBase.AckP99)
		})
	row("ack max", "",
		func(x *result) string { return x.AckMax.String() },
		durRatio(func(x *result) ms { return x.AckMax }), nil)
	row("withdrawal ack", fmt.Sprintf("≤ %.0f × floor", t.WithdrawRatio),
		func(x *result) string { return x.WithdrawAck.String() },
		durRatio(func(x *result) ms { return x.WithdrawAck }),
		func(x *result) bool {
			return f != nil && x.WithdrawAck > 0 && float64(x.WithdrawAck) <= t.WithdrawRatio*float64(f.WithdrawAck)
		})
	row("recorder sees unlocked after last ack", fmt.Sprintf("≤ %.0f ms", t.UnlockMs),
		func(x *result) string { return seenString(x.UnlockSeen, x.UnlockAfterLastAck) },
		durRatio(func(x *result) ms { return x.UnlockAfterLastAck }),
		func(x *result) bool { return x.UnlockSeen && msOf(x.UnlockAfterLastAck) <= t.UnlockMs })
	row("recorder sees locked after withdrawal", fmt.Sprintf("≤ %.0f ms", t.LockMs),
		func(x *result) string { return seenString(x.LockSeen, x.LockAfterWithdraw) },
		durRatio(func(x *result) ms { return x.LockAfterWithdraw }),
		func(x *result) bool { return x.LockSeen && msOf(x.LockAfterWithdraw) <= t.LockMs })
	row("peak RSS", fmt.Sprintf("≤ %.0f MB", t.RSSMB),
		func(x *result) string { return mbString(x.PeakRSS) },
		func(base, k *result) string { return ratioString(float64(k.PeakRSS), float64(base.PeakRSS)) },
		func(x *result) bool { return x.PeakRSS > 0 && float64(x.PeakRSS)/1e6 <= t.RSSMB })
	row("goroutines start/peak/end", "",
		func(x *result) string { return x.Goroutines.String() },
		func(base, k *result) string {
			return ratioString(float64(k.Goroutines.Peak), float64(base.Goroutines.Peak)) + " (peak)"
		}, nil)
	row("open files start/peak/end", "",
		func(x *result) string { return x.OpenFiles.String() },
		func(base, k *result) string {
			return ratioString(float64(k.OpenFiles.Peak), float64(base.OpenFiles.Peak)) + " (peak)"
		}, nil)
	row("back to start after all left", "yes",
		func(x *result) string { return yesNo(x.Returned) },
		nil,
		func(x *result) bool { return x.Returned })
	row("frames to phones", "",
		func(x *result) string { return fmt.Sprint(x.FramesToPhones) },
		func(base, k *result) string {
			return ratioString(float64(k.FramesToPhones), float64(base.FramesToPhones))
		},
		nil)
	row("frames by type", "",
		func(x *result) string { return framesByType(x.FramesByType) },
		nil, nil)
	row("frames to phones per slip", fmt.Sprintf("≤ %.2f", t.FramesPerSlip),
		func(x *result) string { return fmt.Sprintf("%.2f", x.framesPerSlip()) },
		nil,
		func(x *result) bool { return x.Acked > 0 && x.framesPerSlip() <= t.FramesPerSlip })
	row("recorder errors", "",
		func(x *result) string { return fmt.Sprint(x.RecorderErrors) },
		nil, nil)
	if err := tw.Flush(); err != nil {
		return err
	}

	for _, x := range []*result{f, g, k} {
		if x != nil && x.Failed > 0 {
			fmt.Fprintf(w, "\n%s failures: %s (first: %s)\n", x.Target, failureString(x.Failures), x.FirstErr)
		}
	}
	if r.FloorError != "" {
		fmt.Fprintf(w, "\nfloor not measured: %s\n", r.FloorError)
	}
	if r.GroupedError != "" {
		fmt.Fprintf(w, "\ngrouped floor not measured: %s\n", r.GroupedError)
	}
	if r.KioskError != "" {
		fmt.Fprintf(w, "\nkiosk not measured: %s\n", r.KioskError)
	}
	return r.writeRelay(w)
}

func (g gauge) String() string {
	n := func(v int) string {
		if v < 0 {
			return "?"
		}
		return fmt.Sprint(v)
	}
	return n(g.Start) + "/" + n(g.Peak) + "/" + n(g.End)
}

func msOf(d ms) float64 { return float64(d) / float64(time.Millisecond) }

func seenString(seen bool, d ms) string {
	if !seen {
		return "never"
	}
	return d.String()
}

func mbString(b int64) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

// ratioString returns num/den, or "—" when either figure is zero or
// negative (a recorder that heard before the last phone) and a ratio would
// mean nothing.
func ratioString(num, den float64) string {
	if den <= 0 || num < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", num/den)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func failureString(f map[string]int) string {
	var parts []string
	for reason, n := range f {
		parts = append(parts, fmt.Sprintf("%s: %d", reason, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// framesByType writes the split of frames as "ack 2000, tally 3000".
func framesByType(m map[string]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
