package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/consent-kiosk/kiosk/tally"
)

// sseHeartbeat: a comment line this often lets a recorder tell a quiet
// kiosk from a dead connection, and keeps proxies from closing the stream.
const sseHeartbeat = 15 * time.Second

func newUnlockAnswer(st tally.State) unlockAnswer {
	return unlockAnswer{
		Unlocked: st.Unlocked, Reason: string(st.Reason), Version: st.Version,
		Round: st.Round.ID, Headcount: st.Headcount, Received: st.Received, Mode: string(st.Round.Mode),
	}
}

// handleUnlockEvents streams the /api/unlock answer as Server-Sent Events:
// one event now and one on every change, so a recorder hears a lock without
// polling. The stream ending means locked, like any other failure.
func (s *Server) handleUnlockEvents(w http.ResponseWriter, r *http.Request) {
	// Streams have a cap of their own: they never take a phone's place.
	if s.streams.Add(1) > streamMax {
		s.streams.Add(-1)
		writeError(w, r, s.log, errStreamsFull)
		return
	}
	defer s.streams.Add(-1)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	heartbeat := time.NewTicker(sseHeartbeat)
	defer heartbeat.Stop()

	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(s.limits.writeWait))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// retry: how soon EventSource reconnects after the stream breaks.
	if !write("retry: 2000\n\n") {
		return
	}
	var sent uint64 // versions are never 0
	for {
		st, changed := s.store.Changed()
		if st.Version != sent {
			b, _ := json.Marshal(newUnlockAnswer(st))
			if !write("id: %d\ndata: %s\n\n", st.Version, b) {
				return
			}
			sent = st.Version
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !write(": heartbeat\n\n") {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
