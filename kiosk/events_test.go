package kiosk

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUnlockEventsStreamChanges(t *testing.T) {
	k := newTestKiosk(t)
	k.setHeadcount(1)
	p := k.newPhone("a", k.joinToken())

	resp, err := http.Get(k.http.URL + "/api/unlock/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q; want text/event-stream", ct)
	}
	events := make(chan map[string]any, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(data), &m)
				events <- m
			}
		}
	}()
	next := func(step string) map[string]any {
		t.Helper()
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatalf("%s: stream ended", step)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no event within 10s", step)
		}
		return nil
	}
	if m := next("first event"); m["unlocked"] != false || m["reason"] != "waiting" {
		t.Errorf("first event %v; want locked, waiting", m)
	}
	p.slip("consent")
	for m := next("after consent"); m["unlocked"] != true; m = next("after consent") {
	}
	p.slip("refuse")
	if m := next("after withdrawal"); m["unlocked"] != false || m["reason"] != "refused" {
		t.Errorf("event after withdrawal %v; want locked, refused", m)
	}
}
