// Package hooks runs the -on-lock and -on-unlock commands on each
// transition of the kiosk's state, so that ffmpeg, a capture agent's CLI or
// a smart plug can follow it. A lock command that cannot start is retried
// until it does: a recorder that follows the hooks must hear the lock.
package hooks

import (
	"bytes"
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

// outputLimit: a hook's output is logged, but a chatty one (ffmpeg)
// must not flood the log.
const outputLimit = 2048

// stopGrace is how long an interrupted hook gets to finish before it is
// killed: enough for ffmpeg to close its file properly.
const stopGrace = 5 * time.Second

// Commands are the command lines run on each transition between locked and
// unlocked.
type Commands struct {
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
	// Retry is the first wait before a lock hook that did not start is
	// tried again; each wait doubles, up to retryMax. 0 means 1 s.
	Retry time.Duration
	// Status, when set, is told whether the hooks can start.
	Status *Status
	Logger *slog.Logger
}

// Source is what the hooks watch; *tally.Store is one.
type Source interface {
	Changed() (tally.State, <-chan struct{})
}

// Run runs the hook for the current state once at start (so a recorder left
// running before a crash is stopped), then one on each transition, until ctx
// is done. It returns when every hook it started has ended. A lock hook
// that cannot start (a missing command, no file descriptors left) is tried
// again, waiting longer each time, until it starts or a newer state
// supersedes it: a recorder that follows the hooks must hear the lock.
func (h Commands) Run(ctx context.Context, src Source) {
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	if h.Retry <= 0 {
		h.Retry = time.Second
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
				sctx, cancel := context.WithCancel(ctx) // ends when superseded
				stopPrev = cancel
				wg.Add(1)
				cur := st // the loop reassigns st while the hook runs
				go func() {
					defer wg.Done()
					defer cancel()
					h.runUntilStarted(sctx, line, cur)
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

// retryMax is the longest wait between tries of a lock hook.
const retryMax = 30 * time.Second

// runUntilStarted runs the hook for st, each try bounded by the timeout. A
// lock hook that does not start is tried again until ctx ends, and shows
// as the hook problem until a hook starts; an unlock hook is not tried
// again, since what it would start is then simply not running.
func (h Commands) runUntilStarted(ctx context.Context, line string, st tally.State) {
	wait := h.Retry
	for {
		tctx, cancel := context.WithTimeout(ctx, h.Timeout)
		err := h.run(tctx, line, st)
		cancel()
		if err == nil {
			h.Status.set("")
			return
		}
		if st.Unlocked {
			return // fails safe: whatever the hook starts stays stopped
		}
		h.Status.set(shortProblem("lock hook did not start: " + err.Error()))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, retryMax)
	}
}

func shortProblem(s string) string {
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// Status tells the pages whether the hooks can run: the kiosk shows
// hook_problem in /api/state while a lock hook could not start. The zero
// Status has no problem.
type Status struct {
	mu      sync.Mutex
	problem string
	changed chan struct{} // closed at the next change; nil until asked for
}

// Problem returns the current problem ("" for none) and a channel closed
// at its next change.
func (s *Status) Problem() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.problem, s.changed
}

func (s *Status) set(p string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p != s.problem {
		s.problem = p
		if s.changed != nil {
			close(s.changed)
			s.changed = nil
		}
	}
}

func (h Commands) lineFor(unlocked bool) string {
	if unlocked {
		return h.OnUnlock
	}
	return h.OnLock
}

// run runs one hook and returns an error only when it did not start; how
// it ended is logged.
func (h Commands) run(ctx context.Context, line string, st tally.State) error {
	argv := strings.Fields(line)
	if h.Shell {
		argv = []string{"sh", "-c", line}
		if runtime.GOOS == "windows" {
			argv = []string{"cmd", "/C", line}
		}
	}
	if len(argv) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if runtime.GOOS != "windows" {
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	}
	cmd.WaitDelay = stopGrace
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
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		h.Logger.Warn("hook did not start", "event", event, "command", argv[0], "err", err)
		return err
	}
	err := cmd.Wait()
	out := buf.Bytes()
	if len(out) > outputLimit {
		out = append(out[:outputLimit], "…"...)
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
	return nil
}
