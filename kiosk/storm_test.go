package kiosk

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// restartKioskAt serves a kiosk on path at a fixed address, as the same
// laptop does after a restart.
func restartKioskAt(t *testing.T, path, addr string) *testKiosk {
	t.Helper()
	store, err := tally.Open(context.Background(), path, tally.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		store.Close()
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	clk := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	k := &testKiosk{t: t, store: store, clock: clk, path: path}
	ts := httptest.NewUnstartedServer(nil)
	ts.Listener.Close()
	ts.Listener = ln
	k.srv = New(Config{Store: store, AdminToken: testToken, PublicURL: "http://" + addr, Now: clk.Now})
	ts.Config.Handler = k.srv.Handler()
	ts.Start()
	k.http = ts
	t.Cleanup(k.stop)
	return k
}

// TestReconnectStorm: the kiosk restarts mid-lecture while a room of
// phones holds slips. Every phone reconnects with jittered backoff, hears
// that the kiosk does not know its slip (none is kept on disk), sends it
// again, and changes it; nothing is lost or counted twice, and once all
// have reported the kiosk is no longer restarted.
func TestReconnectStorm(t *testing.T) {
	const phones = 40
	k := newTestKiosk(t)
	k.setHeadcount(phones)
	join := k.joinToken()
	want := make([]string, phones)
	for i := range phones {
		p := k.newPhone(fmt.Sprint(i), join)
		want[i] = []string{"consent", "refuse", "none"}[i%3]
		if want[i] != "none" {
			p.slip(want[i])
		}
	}
	before := k.store.State()
	addr := k.http.Listener.Addr().String()
	k.stop() // every phone's connection drops

	// The phones start reconnecting before the kiosk is back.
	var wg sync.WaitGroup
	errs := make(chan error, phones)
	started := make(chan struct{})
	for i := range phones {
		wg.Go(func() {
			device := strings.ReplaceAll(fmt.Sprintf("%-32s", "device-"+fmt.Sprint(i)), " ", "x")
			<-started
			errs <- reconnectAndChange(addr, join, device, want[i], []string{"refuse", "consent", "none"}[i%3])
		})
	}
	close(started)
	k2 := restartKioskAt(t, k.path, addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := k2.store.State()
	// Consents became refusals and back, and no slip became none or
	// appeared: the same phones hold the same number of slips.
	if st.Issued != before.Issued || st.Received != before.Received || st.Missing != 0 || st.Reason == tally.ReasonRestarted {
		t.Errorf("after the storm: %d phones, %d slips, %d missing, %q; want %d phones, %d slips as before, none missing",
			st.Issued, st.Received, st.Missing, st.Reason, before.Issued, before.Received)
	}
}

// reconnectAndChange is one phone after a restart: it dials with jittered
// exponential backoff until the kiosk answers, checks its slip, and
// changes it.
func reconnectAndChange(addr, join, device, held, next string) error {
	delay := 20 * time.Millisecond
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := tryRejoin(addr, join, device, held, next)
		if err == nil {
			return nil
		}
		if _, retry := err.(retryable); !retry || time.Now().After(deadline) {
			return fmt.Errorf("phone %s: %w", device[:10], err)
		}
		time.Sleep(delay/2 + time.Duration(rand.Int64N(int64(delay)))) // the backoff itself, as the phone page does
		delay = min(2*delay, time.Second)
	}
}

type retryable struct{ error }

func tryRejoin(addr, join, device, held, next string) error {
	h := http.Header{"Origin": {"http://" + addr}}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", h)
	if err != nil {
		return retryable{err}
	}
	defer conn.Close()
	request := func(msg map[string]string) (map[string]any, error) {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteJSON(msg); err != nil {
			return nil, retryable{err}
		}
		for {
			var m map[string]any
			if err := conn.ReadJSON(&m); err != nil {
				return nil, retryable{err}
			}
			switch m["type"] {
			case "ack":
				return m, nil
			case "error":
				if m["code"] == "rate-limited" || m["code"] == "unavailable" || m["code"] == "storage" {
					return nil, retryable{fmt.Errorf("%v", m)}
				}
				return nil, fmt.Errorf("error %v", m)
			}
		}
	}
	// The join token is still in the phone's URL; a phone that had not
	// yet given a slip needs it, since the kiosk writes phones with their
	// first slip.
	ack, err := request(map[string]string{"type": "hello", "join": join, "device": device})
	if err != nil {
		return err
	}
	if ack["choice"] != "none" {
		return fmt.Errorf("after the restart the kiosk says the phone holds %v; want none: it keeps no choice", ack["choice"])
	}
	if held != "none" {
		// The phone page sends the slip it holds when the kiosk's differs.
		if ack, err = request(map[string]string{"type": "slip", "choice": held}); err != nil {
			return err
		}
		if ack["choice"] != held {
			return fmt.Errorf("resent slip acked as %v; want %s", ack["choice"], held)
		}
	}
	ack, err = request(map[string]string{"type": "slip", "choice": next})
	if err != nil {
		return err
	}
	if ack["choice"] != next {
		return fmt.Errorf("change acked as %v; want %s", ack["choice"], next)
	}
	return nil
}
