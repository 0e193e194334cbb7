package kiosk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// hookOutputLimit: a hook's output is logged, but a chatty one (ffmpeg)
// must not flood the log.
const hookOutputLimit = 2048

// hookStopGrace is how long an interrupted hook gets to finish before it is
// killed: enough for ffmpeg to close its file properly.
const hookStopGrace = 5 * time.Second

// Hooks are commands run on each transition between locked and unlocked, so
// that ffmpeg, a capture agent's CLI or a smart plug can follow the kiosk.
type Hooks struct {
	OnUnlock string // command line run when the kiosk unlocks; "" for none
	OnLock   string // command line run when the kiosk locks; "" for none
	// Shell runs the command lines with sh -c (cmd /C on Windows). Without
	// it they are split on white space and run directly, so no shell
	// quoting or expansion surprises anyone.
	Shell bool
	// Timeout bounds each run. A hook still running at the next transition
	// is interrupted then, whatever the timeout: an unlock hook must never
	// outlive the unlock.
	Timeout time.Duration
	Logger  *slog.Logger
}

// StateSource is what the hooks watch; *tally.Store is one.
type StateSource interface {
	Changed() (tally.State, <-chan struct{})
}

// Run runs the hook for the current state once at start (so a recorder left
// running before a crash is stopped), then one on each transition, until ctx
// is done. It returns when every hook it started has ended.
func (h Hooks) Run(ctx context.Context, src StateSource) {
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stopPrev := func() {}
	defer func() { stopPrev() }()

	st, changed := src.Changed()
	first := true
	var unlocked bool
	for {
		if first || st.Unlocked != unlocked {
			first = false
			unlocked = st.Unlocked
			stopPrev()
			stopPrev = func() {}
			if line := h.lineFor(unlocked); line != "" {
				hctx, cancel := context.WithTimeout(ctx, h.Timeout)
				stopPrev = cancel
				wg.Add(1)
				cur := st // the loop reassigns st while the hook runs
				go func() {
					defer wg.Done()
					defer cancel()
					h.run(hctx, line, cur)
				}()
			}
		}
		select {
		case <-changed:
			st, changed = src.Changed()
		case <-ctx.Done():
			// The kiosk is stopping: recorders hear nothing from now on, which
			// means locked, so a lock hook runs as well.
			if unlocked && h.OnLock != "" {
				stopPrev()
				st.Verdict = tally.Verdict{Reason: "stopped"}
				hctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
				defer cancel()
				h.run(hctx, h.OnLock, st)
			}
			return
		}
	}
}

func (h Hooks) lineFor(unlocked bool) string {
	if unlocked {
		return h.OnUnlock
	}
	return h.OnLock
}

func (h Hooks) run(ctx context.Context, line string, st tally.State) {
	argv := strings.Fields(line)
	if h.Shell {
		argv = []string{"sh", "-c", line}
		if runtime.GOOS == "windows" {
			argv = []string{"cmd", "/C", line}
		}
	}
	if len(argv) == 0 {
		return
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if runtime.GOOS != "windows" {
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	}
	cmd.WaitDelay = hookStopGrace
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("KIOSK_UNLOCKED=%t", st.Unlocked),
		"KIOSK_REASON="+string(st.Reason),
		fmt.Sprintf("KIOSK_ROUND=%d", st.Round.ID),
		fmt.Sprintf("KIOSK_VERSION=%d", st.Version),
	)
	event := "lock"
	if st.Unlocked {
		event = "unlock"
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if len(out) > hookOutputLimit {
		out = append(out[:hookOutputLimit], "…"...)
	}
	attrs := []any{"event", event, "command", argv[0], "took", time.Since(start).Round(time.Millisecond), "output", strings.TrimSpace(string(out))}
	switch {
	case err != nil && ctx.Err() != nil:
		h.Logger.Info("hook interrupted", append(attrs, "why", context.Cause(ctx))...)
	case err != nil:
		h.Logger.Warn("hook failed", append(attrs, "err", err)...)
	default:
		h.Logger.Info("hook ran", attrs...)
	}
}
