package kiosk

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// tallyEvery is the most often phones hear a changed count. Slips arriving
// in a burst from a full hall would otherwise make every phone hear every
// slip: N² messages. A change of lock state or round is sent at once. A
// phone's owner only glances at the count, so a quarter second is plenty,
// and it keeps a hall of 5,000 to 20,000 frames a second at most.
const tallyEvery = 250 * time.Millisecond

// hub owns the set of connected phones and tells them about changes.
type hub struct {
	store *tally.Store
	log   *slog.Logger

	register   chan *client
	unregister chan *client
	stopping   chan struct{} // closed when the kiosk shuts down
	done       chan struct{} // closed when run has returned

	// tally is the latest tally frame, encoded once for all phones; a phone
	// that is behind skips straight to the newest.
	tally atomic.Pointer[websocket.PreparedMessage]
	// connected counts open phone connections, for the connection cap.
	connected atomic.Int64
}

func newHub(store *tally.Store, log *slog.Logger) *hub {
	return &hub{
		store:      store,
		log:        log,
		register:   make(chan *client),
		unregister: make(chan *client),
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// tallyMessage is the kiosk → phone "tally" message. It carries only what
// the projector shows: never the split of consents and refusals (R7).
type tallyMessage struct {
	Type      string `json:"type"`
	Received  int    `json:"received"`
	Headcount int    `json:"headcount"`
	Unlocked  bool   `json:"unlocked"`
	Reason    string `json:"reason,omitempty"`
	Round     int64  `json:"round"`
	// Version is the state's version, as in /api/unlock: a phone on the
	// HTTP fallback sends it back as "seen" to wait for the next change.
	Version uint64 `json:"version"`
}

func newTallyMessage(st tally.State) tallyMessage {
	return tallyMessage{Type: msgTally, Received: st.Received, Headcount: st.Headcount,
		Unlocked: st.Unlocked, Reason: string(st.Reason), Round: st.Round.ID, Version: st.Version}
}

// roundMessage is the kiosk → phone "round" message: what the phone is asked
// to consent to (R3, R4). Phones get it after hello and whenever it changes.
type roundMessage struct {
	Type       string          `json:"type"`
	Round      int64           `json:"round"`
	Purpose    string          `json:"purpose"`
	Notice     json.RawMessage `json:"notice"` // a text, or an object of notice fields
	NoticeHash string          `json:"notice_hash"`
	Template   string          `json:"template"` // the language to label notice fields in
	Series     string          `json:"series"`
	Mode       string          `json:"mode"`
	Closed     bool            `json:"closed"`
}

func newRoundMessage(st tally.State) []byte {
	b, _ := json.Marshal(roundMessage{Type: msgRound, Round: st.Round.ID, Purpose: st.Round.Purpose,
		Notice: noticeJSON(st.Round), NoticeHash: st.Round.NoticeHash, Template: st.Round.Template,
		Series: st.Round.Series, Mode: string(st.Round.Mode), Closed: st.Closed})
	return b
}

// The kiosk → phone "series" message goes to every phone after hello
// (seriesFrame): to one that consented earlier in the round's series (R5)
// it names the day, and the page offers to confirm that consent with one
// tap, which sends an ordinary slip; to any other it says "none". It names
// no series (the round message does), so that it always fits a sealed
// answer.

// seriesFrame is the series message a phone hears after hello: the day
// it consented earlier in the round's series, or "none", padded so that both
// are the same length on the wire.
func seriesFrame(slip tally.Slip, st tally.State) []byte {
	day := "none"
	if slip.SeriesDay != "" && slip.Round == st.Round.ID {
		day = slip.SeriesDay
	}
	pad := strings.Repeat(" ", max(len("2006-01-02")-len(day), 0))
	return fmt.Appendf(nil, `{"type":%q,"round":%d,"consented_on":%q%s}`, msgSeries, st.Round.ID, day, pad)
}

// run is the only goroutine that touches the client set. It returns once
// stop is called.
func (h *hub) run() {
	defer close(h.done)
	clients := map[*client]struct{}{}
	st, changed := h.store.Changed()
	h.setTally(st)
	sent := st
	var due <-chan time.Time
	for {
		select {
		case c := <-h.register:
			clients[c] = struct{}{}
		case c := <-h.unregister:
			delete(clients, c)
		case <-changed:
			st, changed = h.store.Changed()
			if st.Unlocked != sent.Unlocked || st.Round != sent.Round || st.Closed != sent.Closed {
				due = nil
				h.broadcast(clients, st, sent)
				sent = st
			} else if due == nil {
				due = time.After(tallyEvery)
			}
		case <-due:
			due = nil
			h.broadcast(clients, st, sent)
			sent = st
		case <-h.stopping:
			return // each writer sends its phone a close frame
		}
	}
}

func (h *hub) setTally(st tally.State) {
	b, _ := json.Marshal(newTallyMessage(st))
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		h.log.Error("prepare tally", "err", err)
		return
	}
	h.tally.Store(pm)
}

// Waking every phone's writer at once makes a thousand goroutines runnable
// together, and a phone's ack then waits behind all their writes. Waking
// them in chunks with a short pause lets acks through in between; a hall of
// 1,000 phones is told within about 8 ms.
const (
	fanoutChunk = 64
	fanoutPause = 500 * time.Microsecond
)

// broadcast tells every joined phone the new tally, and the new round if
// it changed since prev. It returns at once; the phones are woken in paced
// chunks by a goroutine of its own, which ends early when the hub stops.
func (h *hub) broadcast(clients map[*client]struct{}, st, prev tally.State) {
	h.setTally(st)
	var round []byte
	if st.Round != prev.Round || st.Closed != prev.Closed {
		round = newRoundMessage(st)
	}
	joined := make([]*client, 0, len(clients))
	for c := range clients {
		if c.joined.Load() {
			joined = append(joined, c)
		}
	}
	go func() {
		for i, c := range joined {
			if i > 0 && i%fanoutChunk == 0 {
				select {
				case <-time.After(fanoutPause):
				case <-h.stopping:
					return
				}
			}
			if round != nil {
				c.queue(round)
			}
			c.wakeTally()
		}
	}()
}

// stop closes every phone connection and waits for run to return.
func (h *hub) stop() {
	select {
	case <-h.stopping:
	default:
		close(h.stopping)
	}
	<-h.done
}
