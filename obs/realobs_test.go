package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/andreykaipov/goobs"
	"github.com/andreykaipov/goobs/api/events"
	"github.com/andreykaipov/goobs/api/events/subscriptions"
	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

const (
	// inNetnsEnv marks the copy of the test binary that runs inside the
	// loopback-only network namespace.
	inNetnsEnv = "KIOSK_OBS_TEST_IN_NETNS"

	// requireEnv makes a missing OBS a failure instead of a skip, so that CI
	// cannot pass by not running the test.
	requireEnv = "KIOSK_REQUIRE_OBS"

	// obsStartTimeout is generous because OBS loads dozens of plugins and
	// shares two cores with the test; it starts in seconds on a quiet laptop.
	obsStartTimeout = 90 * time.Second

	// obsEventTimeout bounds waiting for OBS to act on a request.
	obsEventTimeout = 20 * time.Second

	// handshakeTimeout bounds one attempt at an obs-websocket handshake while
	// OBS starts, so that an OBS that accepts but never answers is asked
	// again rather than waited for.
	handshakeTimeout = 5 * time.Second

	// obsStopTimeout is how long OBS and Xvfb get to exit after SIGTERM,
	// and obsKillTimeout how long after SIGKILL. OBS finishes a recording's
	// file on the way out, which takes a moment on a loaded machine.
	obsStopTimeout = 15 * time.Second
	obsKillTimeout = 5 * time.Second

	// withdrawalBound is how soon a withdrawal must stop the recording: the
	// brief's "at once", with room for a loaded machine.
	withdrawalBound = time.Second

	obsPort     = "4455"
	obsPassword = "kiosk-test-password"

	stateStarted = "OBS_WEBSOCKET_OUTPUT_STARTED"
	stateStopped = "OBS_WEBSOCKET_OUTPUT_STOPPED"
)

// TestGuardWithRealOBS runs OBS Studio headless and checks the guard
// against it: a recording started by hand while the kiosk is locked is
// stopped, everyone consenting starts the recording, one withdrawal stops
// it within a second and leaves a finished file, and the guard gets OBS
// back after OBS restarts.
//
// OBS reaches for the internet at start, so the test runs it in a network
// namespace that has nothing but loopback. The guard must share that
// loopback, so the test binary runs itself again inside the namespace.
func TestGuardWithRealOBS(t *testing.T) {
	if os.Getenv(inNetnsEnv) == "" {
		runInNetns(t)
		return
	}
	if err := exec.Command("ip", "link", "set", "lo", "up").Run(); err != nil {
		t.Fatalf("ip link set lo up: %v", err)
	}

	o := newOBS(t)
	o.start(t)
	watch := o.watch(t)
	store := openStore(t)
	g, err := NewGuard(Config{URL: o.url, Password: obsPassword, Autostart: true}, store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}

	// A recording started by hand before the guard runs, while the kiosk
	// is locked, is stopped as soon as the guard connects.
	if ev := watch.startByHand(t); ev.OutputState != stateStarted {
		watch.wait(t, "the recording started by hand", stateStarted, obsEventTimeout)
	}
	// The safety-net question is off for the whole test, so that whatever
	// the guard stops while connected it stops on OBS's events alone.
	g.checkEvery = time.Hour
	runGuard(t, context.Background(), g)
	watch.wait(t, "the guard to stop the recording found at connect", stateStopped, obsEventTimeout)
	waitStatus(t, g, "connected, not recording, no problem", obsEventTimeout, func(s Status) bool {
		return s == Status{Connected: true}
	})

	// One started by hand while the guard watches is stopped too, by OBS's
	// event alone (the safety-net question is off, see above).
	watch.startByHand(t)
	watch.wait(t, "the guard to stop a recording started by hand", stateStopped, obsEventTimeout)

	// Everyone consents: the guard starts the recording.
	secrets := unlock(t, store, 3)
	watch.wait(t, "autostart", stateStarted, obsEventTimeout)
	waitStatus(t, g, "recording", obsEventTimeout, func(s Status) bool {
		return s == Status{Connected: true, Recording: true}
	})
	watch.waitRecorded(t, time.Second)

	// One phone withdraws: the recording stops at once, and OBS finishes
	// the file.
	began := time.Now()
	if _, err := store.Cast(context.Background(), secrets[1], tally.ChoiceRefuse, 0); err != nil {
		t.Fatal(err)
	}
	ev := watch.waitStopping(t, obsEventTimeout)
	if took := time.Since(began); took > withdrawalBound {
		t.Errorf("withdrawal stopped the recording after %v; want within %v", took, withdrawalBound)
	} else {
		t.Logf("withdrawal stopped the recording after %v (%s)", took, ev.OutputState)
	}
	if ev.OutputState != stateStopped {
		ev = watch.wait(t, "OBS to finish the file", stateStopped, obsEventTimeout)
	}
	o.checkRecording(t, ev.OutputPath)
	waitStatus(t, g, "not recording", obsEventTimeout, func(s Status) bool {
		return s == Status{Connected: true}
	})

	// OBS goes away: the guard says so loudly. The watcher leaves first so
	// that only the guard's connection sees OBS go.
	watch.c.Disconnect()
	o.stop(t)
	waitStatus(t, g, ProblemUnreachable, requestTimeout+5*time.Second, func(s Status) bool {
		return s == Status{Problem: ProblemUnreachable}
	})

	// The phone consents again while OBS is away; nothing can start yet.
	// Once OBS is back, the guard reconnects and starts the recording
	// Autostart owes for this unlock.
	if _, err := store.Cast(context.Background(), secrets[1], tally.ChoiceConsent, 0); err != nil {
		t.Fatal(err)
	}
	o.start(t)
	watch = o.watch(t)
	waitStatus(t, g, "recording after OBS came back", obsStartTimeout, func(s Status) bool {
		return s == Status{Connected: true, Recording: true}
	})
	watch.waitRecorded(t, 500*time.Millisecond)

	// A wrong password is reported as such.
	bad, err := NewGuard(Config{URL: o.url, Password: "wrong"}, store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runGuard(t, context.Background(), bad)
	waitStatus(t, bad, ProblemPassword, obsEventTimeout, func(s Status) bool {
		return s == Status{Problem: ProblemPassword}
	})

	// A lecturer who closes the session locks the kiosk: recording stops.
	if err := store.CloseSession(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev = watch.wait(t, "the recording to stop when the session closes", stateStopped, obsEventTimeout)
	o.checkRecording(t, ev.OutputPath)
}

// runInNetns runs TestGuardWithRealOBS again in a new network namespace
// that has only loopback, and reports its outcome as this test's.
func runInNetns(t *testing.T) {
	var missing []string
	for _, tool := range []string{"obs", "xvfb-run", "Xvfb", "xauth", "unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "needs %s on PATH (Debian: apt-get install obs-studio xvfb xauth)", strings.Join(missing, ", "))
	}
	if out, err := exec.Command("unshare", "-n", "--", "true").CombinedOutput(); err != nil {
		skipOrFail(t, "cannot make a loopback-only network namespace (unshare -n needs root or CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", os.Args[0],
		"-test.run", "^TestGuardWithRealOBS$", "-test.v", "-test.count", "1", "-test.timeout", "5m")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	// Own process group, so that a timeout also ends OBS and Xvfb should the
	// inner test not get to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	t.Logf("in a loopback-only network namespace:\n%s", out.Bytes())
	switch {
	case err != nil:
		t.Fatalf("the test in the namespace failed: %v", err)
	case bytes.Contains(out.Bytes(), []byte("--- SKIP")):
		skipOrFail(t, "the test in the namespace skipped")
	case !bytes.Contains(out.Bytes(), []byte("--- PASS: TestGuardWithRealOBS")):
		t.Fatal("the test in the namespace did not report a pass")
	}
}

// skipOrFail skips the test, or fails it when the environment requires OBS.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s; %s=1 requires this test", msg, requireEnv)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, requireEnv)
}

// realOBS is an OBS Studio with its own home, run headless under Xvfb.
type realOBS struct {
	home   string
	recDir string
	logf   string
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// newOBS writes a configuration that starts OBS without wizards, with
// obs-websocket on obsPort behind obsPassword, recording small files into
// a temporary directory.
func newOBS(t *testing.T) *realOBS {
	t.Helper()
	dir := t.TempDir()
	o := &realOBS{
		home:   filepath.Join(dir, "home"),
		recDir: filepath.Join(dir, "recordings"),
		logf:   filepath.Join(dir, "obs.log"),
		url:    "ws://127.0.0.1:" + obsPort,
	}
	cfg := filepath.Join(o.home, ".config", "obs-studio")
	// OBS 29 reads the websocket settings from global.ini; FirstRun=true
	// skips the auto-configuration wizard.
	writeFile(t, filepath.Join(cfg, "global.ini"), `[General]
FirstRun=true

[BasicWindow]
SysTrayEnabled=false
WarnBeforeStartingRecord=false
WarnBeforeStoppingRecord=false
ShowRecordingConfirmation=false

[Basic]
Profile=Kiosk
ProfileDir=Kiosk

[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort=`+obsPort+`
AlertsEnabled=false
AuthRequired=true
ServerPassword=`+obsPassword+`
`)
	// OBS 30 reads them from the plugin's own file instead.
	pluginCfg, err := json.Marshal(map[string]any{
		"first_load":      false,
		"server_enabled":  true,
		"server_port":     4455,
		"alerts_enabled":  false,
		"auth_required":   true,
		"server_password": obsPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfg, "plugin_config", "obs-websocket", "config.json"), string(pluginCfg))
	// A small picture at a low frame rate keeps the encoder from competing
	// with the test for the CPU.
	writeFile(t, filepath.Join(cfg, "basic", "profiles", "Kiosk", "basic.ini"), `[General]
Name=Kiosk

[Output]
Mode=Simple

[SimpleOutput]
FilePath=`+o.recDir+`
RecFormat=mkv
RecFormat2=mkv
RecQuality=Stream
StreamEncoder=x264
RecEncoder=x264
VBitrate=200

[Video]
BaseCX=320
BaseCY=240
OutputCX=320
OutputCY=240
FPSType=0
FPSCommon=10
`)
	if err := os.MkdirAll(o.recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of OBS's log:\n%s", o.logTail())
		}
	})
	return o
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs OBS and returns once obs-websocket has completed a handshake
// and answered a request. An open port alone proves nothing: the kernel
// accepts connections on a listening socket whose OBS is still loading, or
// already on its way out. The test's cleanup stops OBS.
func (o *realOBS) start(t *testing.T) {
	t.Helper()
	// Whatever answers here now is not the OBS about to start, and a test
	// that went on would be talking to it.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+obsPort, time.Second); err == nil {
		c.Close()
		t.Fatalf("something already listens on port %s before OBS starts: an OBS stopped before has not exited", obsPort)
	}
	logf, err := os.OpenFile(o.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("xvfb-run", "-a", "-s", "-screen 0 1024x768x24",
		"obs", "--minimize-to-tray", "--multi", "--disable-missing-files-check",
		"--profile", "Kiosk")
	cmd.Env = append(os.Environ(), "HOME="+o.home, "XDG_CONFIG_HOME="+filepath.Join(o.home, ".config"))
	cmd.Stdout = logf
	cmd.Stderr = logf
	// xvfb-run does not pass a signal on to OBS and Xvfb, so they get a
	// process group to be stopped together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start OBS: %v", err)
	}
	o.cmd = cmd
	o.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(o.exited)
	}()
	t.Cleanup(func() { o.stop(t) })

	began := time.Now()
	deadline := time.NewTimer(obsStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := o.handshake()
		if err == nil {
			t.Logf("OBS's websocket answered %v after start", time.Since(began).Round(time.Millisecond))
			return
		}
		select {
		case <-o.exited:
			o.fatal(t, fmt.Sprintf("OBS exited before its websocket answered (last: %v)", err))
		case <-deadline.C:
			o.fatal(t, fmt.Sprintf("OBS's websocket did not answer within %v (last: %v)", obsStartTimeout, err))
		case <-tick.C:
		}
	}
}

// handshake connects to obs-websocket as the guard does, authenticates and
// asks for OBS's version, all within handshakeTimeout.
func (o *realOBS) handshake() error {
	var conn net.Conn
	nd := &net.Dialer{Timeout: handshakeTimeout}
	dialer := &websocket.Dialer{
		HandshakeTimeout: handshakeTimeout,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			conn = c
			return c, err
		},
	}
	c, err := goobs.New("127.0.0.1:"+obsPort, goobs.WithPassword(obsPassword), goobs.WithDialer(dialer),
		goobs.WithResponseTimeoutDuration(handshakeTimeout), goobs.WithWriteTimeoutDuration(handshakeTimeout),
		goobs.WithEventSubscriptions(subscriptions.None))
	if err != nil {
		// goobs leaves the connection open when authentication fails or
		// times out; the next attempt must not share OBS with it.
		if conn != nil {
			conn.Close()
		}
		return err
	}
	defer c.Disconnect()
	_, err = c.General.GetVersion()
	return err
}

// stop ends OBS and Xvfb and returns once every process of theirs has
// exited, so that the next start finds the port free and the display gone;
// it does nothing if OBS is not running.
func (o *realOBS) stop(t *testing.T) {
	t.Helper()
	if o.cmd == nil {
		return
	}
	pgid := o.cmd.Process.Pid
	o.cmd = nil
	began := time.Now()
	syscall.Kill(-pgid, syscall.SIGTERM)
	if !waitGroupGone(pgid, o.exited, obsStopTimeout) {
		t.Logf("OBS had not exited %v after SIGTERM; killing it", obsStopTimeout)
		syscall.Kill(-pgid, syscall.SIGKILL)
		if !waitGroupGone(pgid, o.exited, obsKillTimeout) {
			t.Fatalf("OBS's processes still run %v after SIGKILL: %v", obsKillTimeout, groupMembers(pgid))
		}
	}
	t.Logf("OBS exited %v after stop", time.Since(began).Round(time.Millisecond))
}

// waitGroupGone waits until xvfb-run has been reaped (exited closes) and no
// process of group pgid is left, for at most timeout. xvfb-run may exit
// before OBS and Xvfb do, and they are not this process's children, so
// their exit is seen in /proc.
func waitGroupGone(pgid int, exited <-chan struct{}, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			if len(groupMembers(pgid)) == 0 {
				return true
			}
		default:
		}
		select {
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

// groupMembers lists the processes of group pgid that have not exited. A
// zombie has exited: it holds no socket, display or file any more, and
// whether anyone reaps it is up to its new parent.
func groupMembers(pgid int) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var live []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[2] != fmt.Sprint(pgid) || f[0] == "Z" || f[0] == "X" {
			continue
		}
		live = append(live, strings.TrimSpace(string(b[:i+1])))
	}
	return live
}

// fatal fails the test with the end of OBS's log.
func (o *realOBS) fatal(t *testing.T, msg string) {
	t.Helper()
	t.Fatalf("%s; end of its log:\n%s", msg, o.logTail())
}

// logTail returns the end of OBS's own log, or of its output when it
// wrote no log.
func (o *realOBS) logTail() []byte {
	path := o.logf
	logs, _ := filepath.Glob(filepath.Join(o.home, ".config", "obs-studio", "logs", "*.txt"))
	if len(logs) > 0 {
		path = logs[len(logs)-1] // named by start time, so the newest sorts last
	}
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return b
}

// checkRecording checks that OBS finished a non-empty recording at path,
// in the directory the profile gave it.
func (o *realOBS) checkRecording(t *testing.T, path string) {
	t.Helper()
	if path == "" {
		t.Fatal("OBS reported no path for the stopped recording")
	}
	if got, want := filepath.Dir(path), o.recDir; got != want {
		t.Errorf("recording in %s; want %s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("recording: %v", err)
	}
	if fi.Size() == 0 {
		t.Errorf("recording %s is empty", path)
	}
	t.Logf("recording %s: %d bytes", filepath.Base(path), fi.Size())
}

// watcher is a second obs-websocket client, standing in for the lecturer
// at OBS: it starts recordings by hand and sees what OBS does.
type watcher struct {
	c *goobs.Client
}

func (o *realOBS) watch(t *testing.T) *watcher {
	t.Helper()
	c, err := goobs.New("127.0.0.1:"+obsPort, goobs.WithPassword(obsPassword),
		goobs.WithEventSubscriptions(subscriptions.Outputs))
	if err != nil {
		o.fatal(t, fmt.Sprintf("connect to OBS: %v", err))
	}
	t.Cleanup(func() { c.Disconnect() })
	return &watcher{c: c}
}

// startByHand starts a recording as a lecturer would at OBS, and returns
// its first state change. OBS silently ignores a start that comes just
// after a stop, so it asks again when nothing happens.
func (w *watcher) startByHand(t *testing.T) *events.RecordStateChanged {
	t.Helper()
	const attempts = 3
	for range attempts {
		if _, err := w.c.Record.StartRecord(); err != nil {
			t.Fatalf("StartRecord: %v", err)
		}
		for {
			ev, err := w.tryNext(startGrace)
			if err != nil {
				break
			}
			t.Logf("OBS record state: %s", ev.OutputState)
			if ev.OutputState == "OBS_WEBSOCKET_OUTPUT_STARTING" || ev.OutputState == stateStarted {
				return ev
			}
		}
		t.Logf("OBS ignored a start; asking again")
	}
	t.Fatalf("OBS did not start recording after %d requests", attempts)
	return nil
}

// waitRecorded waits until the recording has run for d by OBS's count.
func (w *watcher) waitRecorded(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(obsEventTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		rs, err := w.c.Record.GetRecordStatus()
		if err != nil {
			t.Fatalf("GetRecordStatus: %v", err)
		}
		if time.Duration(rs.OutputDuration)*time.Millisecond >= d {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("after %v: recorded %vms; want %v", obsEventTimeout, rs.OutputDuration, d)
		}
	}
}

// tryNext returns the next record state change, or an error after timeout
// or when the connection closes.
func (w *watcher) tryNext(timeout time.Duration) (*events.RecordStateChanged, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-w.c.IncomingEvents:
			if !ok {
				return nil, errors.New("connection to OBS closed")
			}
			if ev, ok := ev.(*events.RecordStateChanged); ok {
				return ev, nil
			}
		case <-deadline.C:
			return nil, fmt.Errorf("no record state change within %v", timeout)
		}
	}
}

// next returns the next record state change, or fails the test after timeout.
func (w *watcher) next(t *testing.T, what string, timeout time.Duration) *events.RecordStateChanged {
	t.Helper()
	ev, err := w.tryNext(timeout)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	t.Logf("OBS record state: %s", ev.OutputState)
	return ev
}

// wait returns the next record state change to state, skipping others.
func (w *watcher) wait(t *testing.T, what, state string, timeout time.Duration) *events.RecordStateChanged {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := w.next(t, what, time.Until(deadline))
		if ev.OutputState == state {
			return ev
		}
	}
}

// waitStopping returns the first record state change that is not a
// recording any more: stopping or stopped.
func (w *watcher) waitStopping(t *testing.T, timeout time.Duration) *events.RecordStateChanged {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := w.next(t, "the recording to stop", time.Until(deadline))
		if ev.OutputState == "OBS_WEBSOCKET_OUTPUT_STOPPING" || ev.OutputState == stateStopped {
			return ev
		}
	}
}
