package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// binDir holds the kiosk binary that the subprocess tests build once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiosk-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce sync.Once
var buildErr error

// kioskBinary builds the real binary once per test run.
func kioskBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	path := filepath.Join(binDir, "consent-kiosk")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

const procToken = "subprocess-lecturer-token-0123456789"

// proc is the kiosk binary running as a subprocess on loopback.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	logs *syncBuffer // everything the kiosk wrote to stdout and stderr
}

// startProc starts the binary on db; prefix, if given, is a command that
// runs it (prlimit, for one).
func startProc(t *testing.T, db string, prefix ...string) *proc {
	t.Helper()
	return startProcFlags(t, db, nil, prefix...)
}

// startProcFlags is startProc with flags of the test's own after the usual
// ones.
func startProcFlags(t *testing.T, db string, flags []string, prefix ...string) *proc {
	t.Helper()
	args := append(prefix, kioskBinary(t), "-addr", "127.0.0.1:0", "-data", db, "-admin-token", procToken, "-v")
	args = append(args, flags...)
	cmd := exec.Command(args[0], args[1:]...)
	logs := &syncBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, logs: logs}
	t.Cleanup(p.kill)
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Recorders poll: +(http://\S+)/api/unlock`)
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.base = <-found:
	case <-time.After(15 * time.Second):
		t.Fatalf("the kiosk printed no banner in 15s; logs:\n%s", logs.String())
	}
	return p
}

// kill ends the process at once, as a power cut or a crash would.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func (p *proc) api(method, path, body string) (int, map[string]any) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+procToken)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (p *proc) joinToken() string {
	p.t.Helper()
	_, m := p.api("GET", "/api/join", "")
	u, _ := m["url"].(string)
	return u[strings.LastIndex(u, "/j/")+3:]
}

// wsPhone is a phone speaking the plain protocol to a subprocess kiosk.
type wsPhone struct {
	conn   *websocket.Conn
	device string
}

func dialPhone(base, device string) (*wsPhone, error) {
	h := http.Header{"Origin": {base}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", h)
	if err != nil {
		return nil, err
	}
	return &wsPhone{conn: conn, device: device}, nil
}

// request sends msg and returns the answer: ack and its choice, or error
// and its code. err means the connection failed, so the outcome is unknown.
func (w *wsPhone) request(msg map[string]string) (kind, value string, err error) {
	w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := w.conn.WriteJSON(msg); err != nil {
		return "", "", err
	}
	w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := w.conn.ReadJSON(&m); err != nil {
			return "", "", err
		}
		switch m["type"] {
		case "ack":
			return "ack", m["choice"].(string), nil
		case "error":
			return "error", m["code"].(string), nil
		}
	}
}

func (w *wsPhone) hello(join string) (string, string, error) {
	return w.request(map[string]string{"type": "hello", "join": join, "device": w.device})
}

func (w *wsPhone) slip(choice string) (string, string, error) {
	return w.request(map[string]string{"type": "slip", "choice": choice})
}

// TestCrashConsistency kills the real binary with SIGKILL at random points
// while phones send slips, many times. The kiosk keeps no choice on disk:
// after each restart it knows no phone's slip, is locked (restarted) while
// any phone whose slip was acknowledged has not sent it again, and, once
// every phone has sent the slip it holds (the last acknowledged, or the one
// in flight when the kiosk died), its count agrees with the phones'.
func TestCrashConsistency(t *testing.T) {
	const (
		phones = 12
		rounds = 12
	)
	db := filepath.Join(t.TempDir(), "kiosk.db")
	// The crash points are random; the seed is printed so that a failure
	// can be played again (KIOSK_SEED, as for the kiosk's property tests).
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KIOSK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KIOSK_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with KIOSK_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(1, seed))
	choices := []string{"consent", "refuse", "none"}
	model := make([]string, phones) // each phone's choice as the kiosk must hold it
	for i := range model {
		model[i] = "none"
	}
	inflightAtKill := make([]string, phones) // what each phone was sending when the kiosk died
	devices := make([]string, phones)
	for i := range devices {
		devices[i] = fmt.Sprintf("crash-phone-%020d", i)
	}

	for round := range rounds {
		p := startProc(t, db)
		if round == 0 {
			if status, m := p.api("POST", "/api/round", `{"purpose":"Lecture video"}`); status != 200 {
				t.Fatalf("round: %d %v", status, m)
			}
			if status, m := p.api("POST", "/api/headcount", fmt.Sprintf(`{"headcount":%d}`, phones)); status != 200 {
				t.Fatalf("headcount: %d %v", status, m)
			}
		}
		join := p.joinToken()
		// Every phone reconnects: the kiosk knows no slip, and the phone
		// sends the one it holds, as the phone page does.
		conns := make([]*wsPhone, phones)
		for i := range phones {
			w, err := dialPhone(p.base, devices[i])
			if err != nil {
				t.Fatalf("round %d phone %d: dial: %v", round, i, err)
			}
			kind, got, err := w.hello(join)
			if err != nil || kind != "ack" {
				t.Fatalf("round %d phone %d: hello = %s %s %v", round, i, kind, got, err)
			}
			if got != "none" {
				t.Fatalf("round %d phone %d: after restart the kiosk says it holds %q; want none: no choice is kept", round, i, got)
			}
			conns[i] = w
		}
		mustHold := 0 // phones whose slip was acknowledged and not being withdrawn
		for i, c := range model {
			if c != "none" && inflightAtKill[i] != "none" {
				mustHold++
			}
		}
		if _, st := p.api("GET", "/api/state", ""); round > 0 && (st["missing"].(float64) < float64(mustHold) || (mustHold > 0 && st["reason"] != "restarted")) {
			t.Fatalf("round %d: after the restart missing %v, reason %v; want at least %d missing and restarted", round, st["missing"], st["reason"], mustHold)
		}
		for i := range phones {
			c := model[i]
			if inflightAtKill[i] != "" {
				c = inflightAtKill[i] // the page resends what it was sending
			}
			kind, got, err := conns[i].slip(c)
			if err != nil || kind != "ack" || got != c {
				t.Fatalf("round %d phone %d: resent %s = %s %s %v", round, i, c, kind, got, err)
			}
			model[i] = c
		}
		received := 0
		for _, c := range model {
			if c != "none" {
				received++
			}
		}
		if _, st := p.api("GET", "/api/state", ""); st["received"] != float64(received) || st["missing"] != float64(0) || st["reason"] == "restarted" {
			t.Fatalf("round %d: once every phone reported, received %v, missing %v, reason %v; want %d from the phones' own slips, none missing",
				round, st["received"], st["missing"], st["reason"], received)
		}
		clear(inflightAtKill)

		// Bursts of slips, one in flight per phone, until the kill.
		var mu sync.Mutex
		inflight := make([]string, phones)
		// The kill comes after a random number of acks, so it always lands
		// inside a burst, wherever the disk happens to be.
		killAt, acked := 1+rng.IntN(phones*15-1), 0
		killNow := make(chan struct{})
		var wg sync.WaitGroup
		for i := range phones {
			seed := rng.Uint64()
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, 7))
				for n := 0; n < 15; n++ { // within the per-connection burst
					c := choices[r.IntN(len(choices))]
					mu.Lock()
					inflight[i] = c
					mu.Unlock()
					kind, got, err := conns[i].slip(c)
					if err != nil {
						return // killed: the slip may or may not be durable
					}
					mu.Lock()
					inflight[i] = ""
					if kind == "ack" {
						if got != c {
							t.Errorf("phone %d sent %s, ack says %s", i, c, got)
						}
						model[i] = c
						if acked++; acked == killAt {
							close(killNow)
						}
					}
					mu.Unlock()
				}
			})
		}
		allDone := make(chan struct{})
		go func() { wg.Wait(); close(allDone) }()
		select {
		case <-killNow:
		case <-allDone:
		}
		p.kill()
		wg.Wait()
		for _, c := range conns {
			c.conn.Close()
		}
		cut := 0
		for i := range phones {
			if inflight[i] != "" {
				cut++
			}
		}
		t.Logf("round %d: killed with %d slips in flight", round, cut)
		copy(inflightAtKill, inflight)
	}
}

// waitAPI polls a lecturer endpoint until ok, for at most 10 seconds.
func (p *proc) waitAPI(path string, ok func(status int, m map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, m := p.api("GET", path, "")
		if ok(status, m) {
			return m
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("GET %s = %d %v after 10s; want another answer", path, status, m)
		}
		time.Sleep(50 * time.Millisecond) // bounded polling
	}
}

func setFileSizeLimit(t *testing.T, pid int, limit string) {
	t.Helper()
	if out, err := exec.Command("prlimit", "--pid", fmt.Sprint(pid), "--fsize="+limit).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}
}

// diskFullRetry is the -fault-retry TestDiskFull gives the kiosk, and
// diskFullRecovery how soon after its first failed write the kiosk must
// work again. The bound is below tally.DefaultFaultRetry, so that a kiosk
// that did not take the flag fails here rather than making the test wait.
const (
	diskFullRetry    = 50 * time.Millisecond
	diskFullRecovery = tally.DefaultFaultRetry * 3 / 4
)

// TestDiskFull runs the real binary and then stops its files from growing
// (RLIMIT_FSIZE, as a full disk would): a phone's first slip, which must be
// durable, gets an error and never an ack, the kiosk locks and the lecturer
// sees the fault; when the disk has room again the kiosk recovers by itself,
// at the -fault-retry it was given.
func TestDiskFull(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit to limit the kiosk's file size")
	}
	db := filepath.Join(t.TempDir(), "kiosk.db")
	p := startProcFlags(t, db, []string{"-fault-retry", diskFullRetry.String()})
	p.api("POST", "/api/round", `{"purpose":"Lecture video"}`)
	p.api("POST", "/api/headcount", `{"headcount":1}`)
	w, err := dialPhone(p.base, "disk-full-phone-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	defer w.conn.Close()
	if kind, got, err := w.hello(p.joinToken()); err != nil || kind != "ack" {
		t.Fatalf("hello = %s %s %v", kind, got, err)
	}
	if kind, _, _ := w.slip("consent"); kind != "ack" {
		t.Fatal("consent not acked before the disk filled")
	}
	if status, _ := p.api("GET", "/api/unlock", ""); status != 200 {
		t.Fatalf("unlock before the disk filled = %d; want 200", status)
	}

	// No file may grow past its present size: the WAL fills up.
	var limit int64
	for _, f := range []string{db, db + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			limit = max(limit, fi.Size())
		}
	}
	setFileSizeLimit(t, p.cmd.Process.Pid, fmt.Sprintf("%d:unlimited", limit))

	// Changes of mind never touch the disk; a phone's first slip does.
	// Newcomers hand one in and leave again until the disk is full.
	newcomer := func(n int) (*wsPhone, string) {
		t.Helper()
		nw, err := dialPhone(p.base, fmt.Sprintf("disk-full-newcomer-%010d", n))
		if err != nil {
			t.Fatal(err)
		}
		if kind, got, err := nw.hello(p.joinToken()); err != nil || kind != "ack" {
			t.Fatalf("newcomer %d hello = %s %s %v", n, kind, got, err)
		}
		kind, got, err := nw.slip("refuse")
		if err != nil {
			t.Fatalf("newcomer %d: connection failed: %v", n, err)
		}
		if kind == "error" && got != "storage" {
			t.Fatalf("newcomer %d: error %q; want storage", n, got)
		}
		return nw, kind
	}
	failed := false
	var failedAt time.Time
	for n := 0; n < 18 && !failed; n++ {
		nw, kind := newcomer(n)
		failed = kind == "error"
		failedAt = time.Now()
		// Leaving needs no disk before its answer, even now.
		if kind, got, err := nw.request(map[string]string{"type": "leave"}); err != nil || kind != "ack" {
			t.Fatalf("newcomer %d leave = %s %s %v", n, kind, got, err)
		}
		nw.conn.Close()
	}
	if !failed {
		t.Fatal("18 first slips were all acked with the file size limited; the test's limit did not bite")
	}
	if status, m := p.api("GET", "/api/unlock", ""); status == 200 || m["unlocked"] != false {
		t.Errorf("unlock while the disk is full = %d %v; want locked", status, m)
	}
	if _, st := p.api("GET", "/api/state", ""); st["fault"] != true || st["unlocked"] != false {
		t.Errorf("state while the disk is full = %v; want fault and locked", st)
	}
	if nw, kind := newcomer(99); kind == "ack" {
		t.Error("a first slip was acked while the disk is full")
	} else {
		nw.request(map[string]string{"type": "leave"})
		nw.conn.Close()
	}
	if kind, got, _ := w.slip("refuse"); kind != "ack" || got != "refuse" {
		t.Errorf("a change of mind while the disk is full = %s %s; want acked: it needs no disk", kind, got)
	}

	setFileSizeLimit(t, p.cmd.Process.Pid, "unlimited:unlimited")
	p.waitAPI("/api/state", func(_ int, m map[string]any) bool { return m["fault"] == false })
	if took := time.Since(failedAt); took > diskFullRecovery {
		t.Errorf("the kiosk worked again %v after its write failed; want within %v with -fault-retry %v", took, diskFullRecovery, diskFullRetry)
	} else {
		t.Logf("the kiosk worked again %v after its write failed", took)
	}
	if kind, got, err := w.slip("consent"); err != nil || kind != "ack" || got != "consent" {
		t.Fatalf("slip after recovery = %s %s %v; want ack consent", kind, got, err)
	}
	if status, _ := p.api("GET", "/api/unlock", ""); status != 200 {
		t.Errorf("unlock after recovery = %d; want 200", status)
	}
	if !strings.Contains(p.logs.String(), "storage failed") {
		t.Errorf("the kiosk's log does not say storage failed:\n%s", p.logs.String())
	}
}

// TestSecrecyAfterLecture plays a lecture against the real binary with
// request logging on, then reads every byte the kiosk left behind: the
// database, its WAL and shared-memory files, and the logs. None may hold a
// device secret, a client's address or port, or a user agent.
func TestSecrecyAfterLecture(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kiosk.db")
	p := startProc(t, db)
	p.api("POST", "/api/round", `{"purpose":"Lecture video","notice":"Voice and slides."}`)
	p.api("POST", "/api/headcount", `{"headcount":3}`)
	join := p.joinToken()
	const agent = "SecrecyTestPhone/1.0 (distinctive)"
	var forbidden []string
	for i, choice := range []string{"consent", "refuse", "consent"} {
		device := fmt.Sprintf("secret-device-%d-%016x", i, rand.Uint64())
		h := http.Header{"Origin": {p.base}, "User-Agent": {agent}}
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.base, "http")+"/ws", h)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		w := &wsPhone{conn: conn, device: device}
		if kind, _, err := w.hello(join); err != nil || kind != "ack" {
			t.Fatalf("hello: %s %v", kind, err)
		}
		for _, c := range []string{"refuse", choice} {
			if kind, _, err := w.slip(c); err != nil || kind != "ack" {
				t.Fatalf("slip: %s %v", kind, err)
			}
		}
		_, port, _ := strings.Cut(conn.LocalAddr().String(), ":")
		forbidden = append(forbidden, device, ":"+port)
	}
	forbidden = append(forbidden, agent, "SecrecyTestPhone")
	// The unlock answer names the outcome, never the split.
	p.api("GET", "/api/unlock", "")
	p.api("GET", "/api/state", "")
	p.kill() // as at the end of a lecture, without a chance to tidy up

	files := map[string]string{"logs": p.logs.String()}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(db + suffix); err == nil {
			files["kiosk.db"+suffix] = string(b)
		}
	}
	if len(files["kiosk.db-wal"]) == 0 {
		t.Fatal("no WAL left behind; the test reads nothing of what was in flight")
	}
	for name, b := range files {
		for _, s := range forbidden {
			if strings.Contains(b, s) {
				t.Errorf("%s holds %q", name, s)
			}
		}
	}
	for _, s := range []string{"choice", "refus", "consents"} {
		if strings.Contains(files["logs"], s) {
			t.Errorf("the logs mention %q:\n%s", s, files["logs"])
		}
	}
}

// choiceFiles reads the kiosk's three files as they are on disk now.
func choiceFiles(t *testing.T, db string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(db + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out["kiosk.db"+suffix] = b
	}
	return out
}

func sameChoiceFiles(t *testing.T, step string, want, got map[string][]byte) {
	t.Helper()
	for name, b := range want {
		if !bytes.Equal(b, got[name]) {
			t.Errorf("%s: %s changed (%d -> %d bytes): a change of mind reached the disk", step, name, len(b), len(got[name]))
		}
	}
}

// TestChangesOfMindNeverReachTheDisk runs the real binary: once every phone
// has handed in its first slip, phones change their minds back and forth,
// and the database, its WAL and its shared-memory file stay byte for byte
// as they were, live and after a SIGKILL. What the files hold cannot tell a
// consent from a refusal (tally's TestFilesHoldNoChoice compares whole
// sessions that differ only in choices). After the restart the kiosk is
// locked, restarted, until the phones report again.
func TestChangesOfMindNeverReachTheDisk(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kiosk.db")
	p := startProc(t, db)
	p.api("POST", "/api/round", `{"purpose":"Lecture video"}`)
	// One more person than phones: the kiosk stays locked (waiting), so no
	// unlocked interval is recorded whatever the phones say.
	p.api("POST", "/api/headcount", `{"headcount":4}`)
	join := p.joinToken()
	phones := make([]*wsPhone, 3)
	for i, c := range []string{"consent", "refuse", "consent"} {
		w, err := dialPhone(p.base, fmt.Sprintf("nochoice-phone-%016d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer w.conn.Close()
		if kind, _, err := w.hello(join); err != nil || kind != "ack" {
			t.Fatalf("hello: %s %v", kind, err)
		}
		if kind, got, err := w.slip(c); err != nil || kind != "ack" || got != c {
			t.Fatalf("first slip: %s %s %v", kind, got, err)
		}
		phones[i] = w
	}
	before := choiceFiles(t, db)
	if len(before["kiosk.db-wal"]) == 0 {
		t.Fatal("no WAL: the test would read nothing of what is live")
	}
	for n := range 12 {
		i := n % 3
		c := []string{"refuse", "consent"}[(n/3)%2]
		if kind, got, err := phones[i].slip(c); err != nil || kind != "ack" || got != c {
			t.Fatalf("change of mind %d: %s %s %v", n, kind, got, err)
		}
	}
	sameChoiceFiles(t, "live, after 12 changes of mind", before, choiceFiles(t, db))
	p.kill()
	sameChoiceFiles(t, "after SIGKILL", before, choiceFiles(t, db))

	next := startProc(t, db)
	if status, m := next.api("GET", "/api/unlock", ""); status != 423 || m["reason"] != "restarted" {
		t.Errorf("after the restart /api/unlock = %d %v; want 423 restarted", status, m)
	}
	if _, st := next.api("GET", "/api/state", ""); st["missing"] != float64(3) || st["received"] != float64(3) {
		t.Errorf("after the restart missing %v, received %v; want 3 and 3", st["missing"], st["received"])
	}
}

// TestCrashBeforeWithdrawalCommits: a consenting phone withdraws while
// another process holds the database file, and the kiosk dies before
// anything reached the disk. The withdrawal was acknowledged at once and
// locked at once; after the restart the kiosk must not unlock on the slips
// it can no longer vouch for.
func TestCrashBeforeWithdrawalCommits(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kiosk.db")
	p := startProc(t, db)
	p.api("POST", "/api/round", `{"purpose":"Lecture video"}`)
	p.api("POST", "/api/headcount", `{"headcount":2}`)
	join := p.joinToken()
	var phones []*wsPhone
	for i := range 2 {
		w, err := dialPhone(p.base, fmt.Sprintf("withdraw-phone-%016d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer w.conn.Close()
		w.hello(join)
		if kind, _, err := w.slip("consent"); err != nil || kind != "ack" {
			t.Fatalf("consent: %s %v", kind, err)
		}
		phones = append(phones, w)
	}
	if status, _ := p.api("GET", "/api/unlock", ""); status != 200 {
		t.Fatalf("unlock with both consents = %d; want 200", status)
	}

	other, err := sql.Open("sqlite", tally.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	hold, err := other.Begin() // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('held', 1)`); err != nil {
		t.Fatal(err)
	}
	if kind, got, err := phones[0].slip("none"); err != nil || kind != "ack" || got != "none" {
		t.Errorf("withdrawal while the file is held = %s %s %v; want an ack at once", kind, got, err)
	}
	if status, m := p.api("GET", "/api/unlock", ""); status == 200 {
		t.Errorf("after the withdrawal /api/unlock = %d %v; want locked", status, m)
	}
	p.kill()
	hold.Rollback()
	other.Close()

	next := startProc(t, db)
	if status, m := next.api("GET", "/api/unlock", ""); status != 423 || m["reason"] != "restarted" {
		t.Errorf("after a crash before the withdrawal reached the disk: /api/unlock = %d %v; want 423 restarted", status, m)
	}
}
