package kiosk

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/consent-kiosk/kiosk/tally"
)

// Phones hear a changed count on a tick, not per slip: a hall arriving in
// a burst would otherwise make every phone hear every slip, N² frames. The
// tick's period grows with the hall so that all the tallies together cost
// at most one frame per tallyPerPhone: a phone's owner only glances at the
// count, and every frame the kiosk writes is processor time a phone's ack
// waits for. A change of lock state or round is sent at once.
const (
	tallyEvery    = 250 * time.Millisecond // the shortest period, for small halls
	tallyPerPhone = 2 * time.Millisecond   // at most 500 tally frames a second
	tallyEveryMax = 2 * time.Second        // the longest a count may lag
)

// tallyPeriod is the tick's period for a hall of joined phones.
func tallyPeriod(joined int) time.Duration {
	return min(max(tallyEvery, time.Duration(joined)*tallyPerPhone), tallyEveryMax)
}

// ackFirst bounds how long a change of lock state waits to be sent to
// every phone while a phone's own answer is still being made: the phone
// that withdrew (or whose slip unlocked) hears its ack before the fan-out
// makes a thousand writers compete for the processor. Recorders do not
// wait for it: they read the store, which published the change first.
const ackFirst = 5 * time.Millisecond

// hub owns the set of connected phones and tells them about changes.
type hub struct {
	store *tally.Store
	log   *slog.Logger

	register   chan *client
	unregister chan *client
	stopping   chan struct{} // closed when the kiosk shuts down
	stopOnce   sync.Once
	done       chan struct{} // closed when run has returned

	// tally is the latest tally frame, encoded once for all phones; a phone
	// that is behind skips straight to the newest, and one that has it
	// already is not sent it again.
	tally atomic.Pointer[websocket.PreparedMessage]
	// connected counts open phone connections, for the connection cap.
	connected atomic.Int64
	// coming says a broadcast is scheduled, which will reach every joined
	// phone: a phone that joins meanwhile waits for it instead of being
	// sent a tally of its own that the broadcast would follow at once.
	coming atomic.Bool
	// answering counts phone slips between their arrival and their answer
	// being queued; answered is signalled when it drops to zero.
	answering atomic.Int64
	answered  chan struct{}
}

func newHub(store *tally.Store, log *slog.Logger) *hub {
	return &hub{
		store:      store,
		log:        log,
		register:   make(chan *client),
		unregister: make(chan *client),
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
		answered:   make(chan struct{}, 1),
	}
}

// startAnswer and doneAnswer bracket the handling of a phone's slip, so
// that a change of lock state it causes is sent to everyone after its ack.
func (h *hub) startAnswer() { h.answering.Add(1) }

func (h *hub) doneAnswer() {
	if h.answering.Add(-1) == 0 {
		select {
		case h.answered <- struct{}{}:
		default:
		}
	}
}

// joinedTally gives a phone that has just joined the current tally, unless
// a broadcast that will reach it is already on its way.
func (h *hub) joinedTally(c *client) {
	if !h.coming.Load() {
		c.wakeTally()
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

// roundFields is what a round asks consent for, as both the phones' round
// message and the lecturer's state carry it, so that the two cannot drift
// apart. The round's ID stays outside: the state puts its version between
// the ID and these fields, and the bytes on the wire are pinned.
type roundFields struct {
	Purpose    string          `json:"purpose"`
	Notice     json.RawMessage `json:"notice"` // a text, or an object of notice fields
	NoticeHash string          `json:"notice_hash"`
	Template   string          `json:"template"` // the language to label notice fields in
	Series     string          `json:"series"`
	Mode       string          `json:"mode"`
	Closed     bool            `json:"closed"`
}

func newRoundFields(st tally.State) roundFields {
	return roundFields{Purpose: st.Round.Purpose, Notice: noticeJSON(st.Round), NoticeHash: st.Round.NoticeHash,
		Template: st.Round.Template, Series: st.Round.Series, Mode: string(st.Round.Mode), Closed: st.Closed}
}

// roundMessage is the kiosk → phone "round" message: what the phone is asked
// to consent to (R3, R4). Phones get it after hello and whenever it changes.
type roundMessage struct {
	Type  string `json:"type"`
	Round int64  `json:"round"`
	roundFields
}

func newRoundMessage(st tally.State) []byte {
	b, _ := json.Marshal(roundMessage{Type: msgRound, Round: st.Round.ID, roundFields: newRoundFields(st)})
	return b
}

// The kiosk → phone "series" message goes after hello to every phone in a
// round of a series, and to none outside one (seriesFrame): to one that consented earlier in the round's series (R5)
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
	joined := 0
	// due is the next tick for a changed count; gate the latest moment a
	// change of lock state or round waits for a phone's answer.
	var due, gate <-chan time.Time
	send := func() {
		due, gate = nil, nil
		// Cleared before broadcast reads who has joined, so that a phone
		// that joins after it looks for itself in time.
		h.coming.Store(false)
		joined = h.broadcast(clients, st, sent)
		sent = st
	}
	for {
		select {
		case c := <-h.register:
			clients[c] = struct{}{}
		case c := <-h.unregister:
			delete(clients, c)
		case <-changed:
			st, changed = h.store.Changed()
			switch {
			case gate != nil:
				// Already waiting to send a change of state; it sends st.
			case st.Unlocked != sent.Unlocked || st.Round != sent.Round || st.Closed != sent.Closed:
				if h.answering.Load() == 0 {
					send()
					continue
				}
				gate = time.After(ackFirst)
				h.coming.Store(true)
			case due == nil:
				due = time.After(tallyPeriod(joined))
				h.coming.Store(true)
			}
		case <-h.answered:
			if gate != nil && h.answering.Load() == 0 {
				send()
			}
		case <-gate:
			send()
		case <-due:
			if gate == nil {
				send()
			} else {
				due = nil // the change of state waiting at the gate carries it
			}
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
// 1,000 phones is told within about 8 ms. While a phone's slip is being
// answered the fan-out holds back a little longer (up to fanoutYield per
// chunk), so that a withdrawal made just after an unlock does not queue
// for the processor behind the unlock's thousand frames.
const (
	fanoutChunk = 64
	fanoutPause = 500 * time.Microsecond
	fanoutYield = 2 * time.Millisecond
)

// broadcast tells every joined phone the new tally, and the new round if
// it changed since prev, and returns how many phones it tells. It returns
// at once; the phones are woken in paced chunks by a goroutine of its own,
// which ends early when the hub stops.
func (h *hub) broadcast(clients map[*client]struct{}, st, prev tally.State) int {
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
				for waited := time.Duration(0); waited == 0 || (waited < fanoutYield && h.answering.Load() > 0); waited += fanoutPause {
					select {
					case <-time.After(fanoutPause):
					case <-h.stopping:
						return
					}
				}
			}
			if round != nil {
				c.queue(round)
			}
			c.wakeTally()
		}
	}()
	return len(joined)
}

// stop closes every phone connection and waits for run to return. The
// server's shutdown and its Close may both call it, at the same time.
func (h *hub) stop() {
	h.stopOnce.Do(func() { close(h.stopping) })
	<-h.done
}
