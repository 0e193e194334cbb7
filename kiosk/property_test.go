package kiosk

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// TestLastOneWins plays random sequences of slips, changes, withdrawals,
// leaves, duplicate resends, reconnects and lost acks from many phones,
// and after every step checks the kiosk against a model: the tally is each
// phone's latest choice, and resending after a lost ack changes nothing.
// seedEnv names the variable that replays a randomised test: each such
// test logs the seed it used, and KIOSK_SEED=N go test -run TestX replays
// exactly that run.
const seedEnv = "KIOSK_SEED"

// testSeed returns the seed from KIOSK_SEED, or a new one, and logs it so
// a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with %s=%d)", seed, seedEnv, seed)
	return seed
}

func TestLastOneWins(t *testing.T) {
	const (
		phones = 8
		steps  = 300
	)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 11))

	k := newTestKiosk(t)
	k.srv.limits.msgRate = 1000 // the test sends faster than a person
	k.srv.limits.msgBurst = 1000
	k.setHeadcount(phones)
	join := k.joinToken()
	type phoneModel struct {
		p      *testPhone
		choice string
		known  bool // the session knows the phone (it has not left)
	}
	model := make([]*phoneModel, phones)
	for i := range model {
		model[i] = &phoneModel{p: k.newPhone(fmt.Sprint(i), join), choice: "none", known: true}
	}
	choices := []string{"consent", "refuse", "none"}
	reconnect := func(m *phoneModel, name string) {
		m.p.conn.Close()
		m.p = k.connectPhone(name)
		if m.known {
			m.p.hello("")
		} else {
			m.p.hello(join)
		}
	}

	for step := range steps {
		i := rng.IntN(phones)
		m := model[i]
		name := fmt.Sprint(i)
		op := rng.IntN(10)
		switch {
		case !m.known: // a phone that left comes back with the QR code
			reconnect(m, name)
			if ack := m.p.expect("ack"); ack["choice"] != "none" {
				t.Fatalf("step %d: phone %d back after leaving holds %v; want none", step, i, ack)
			}
			m.known = true
		case op < 5: // slip, change or withdraw
			c := choices[rng.IntN(len(choices))]
			m.p.slip(c)
			m.choice = c
		case op == 5: // duplicate resend of the latest choice
			m.p.slip(m.choice)
		case op == 6: // reconnect: the hello ack carries the held slip
			reconnect(m, name)
			if ack := m.p.expect("ack"); ack["choice"] != m.choice {
				t.Fatalf("step %d: phone %d reconnected holds %v; want %s", step, i, ack, m.choice)
			}
		case op == 7: // lost ack: send, drop the connection, resend on a new one
			c := choices[rng.IntN(len(choices))]
			m.p.send(map[string]string{"type": "slip", "choice": c})
			m.p.conn.WriteControl(websocket.CloseMessage, nil, time.Now().Add(time.Second))
			reconnect(m, name)
			if ack := m.p.expect("ack"); ack["choice"] != m.choice && ack["choice"] != c {
				t.Fatalf("step %d: phone %d holds %v; want the old %s or the sent %s", step, i, ack, m.choice, c)
			}
			m.p.slip(c)
			m.choice = c
		case op == 8: // leave
			m.p.leave()
			m.choice, m.known = "none", false
		default: // an idle step: the state must still hold
		}

		want := tally.Counts{Headcount: phones}
		for _, pm := range model {
			switch pm.choice {
			case "consent":
				want.Consents++
			case "refuse":
				want.Refusals++
			}
		}
		st := k.store.State()
		if st.Received != want.Consents+want.Refusals || st.Verdict != tally.Decide(want) {
			t.Fatalf("step %d (seed %d): kiosk %d received, %+v; model %+v gives %+v", step, seed, st.Received, st.Verdict, want, tally.Decide(want))
		}
	}
}
