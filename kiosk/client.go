package kiosk

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/consent-kiosk/kiosk/tally"
)

// connLimits are the time limits on a phone's connection. They are fields,
// not constants, only so that tests can shorten them.
type connLimits struct {
	// writeWait bounds every write, so a phone that stopped reading cannot
	// hold a goroutine or a buffer for long.
	writeWait time.Duration
	// pongWait: a phone that answers no ping for this long is gone (walked
	// out of Wi-Fi range, or locked its screen).
	pongWait time.Duration
	// pingPeriod must be shorter than pongWait so that a live phone always
	// answers in time.
	pingPeriod time.Duration
	// helloWait: a connection that has not joined by then is not a phone
	// page, and is closed; failed hellos do not extend it.
	helloWait time.Duration
	// msgRate and msgBurst limit each connection's messages.
	msgRate  rate.Limit
	msgBurst int
}

var defaultLimits = connLimits{
	writeWait:  10 * time.Second,
	pongWait:   60 * time.Second,
	pingPeriod: 54 * time.Second,
	helloWait:  20 * time.Second,
	// A phone taps a button now and then; 5 messages a second with a burst
	// of 20 is generous for a person and stops a script from flooding.
	msgRate:  5,
	msgBurst: 20,
}

const (
	// maxFrameSize: the largest real message is a sealed hello of about 480
	// bytes; 4 KiB leaves room for extensions and refuses anything else.
	maxFrameSize = 4096
	// sendQueue: per-phone messages waiting to be written, in each of the
	// two queues. A phone whose queue of news is full is too slow and is
	// dropped; it reconnects by itself. Its queue of replies never drops.
	sendQueue = 16
	// storeWait bounds how long a phone's message waits for the disk.
	storeWait = 15 * time.Second
	// New phones may join at 200 a second after a burst as large as the
	// connection cap (-max-phones), so that many connections together cannot
	// register phones without bound, while a full hall scanning at once is
	// never held back: the load harness plays 5,000 phones in 3 seconds.
	joinRate = 200
)

// client is one phone's websocket. One goroutine reads and acts on its
// messages in order; another writes.
type client struct {
	hub       *hub
	srv       *Server
	conn      *websocket.Conn
	send      chan []byte // news from the hub: dropped when full
	replies   chan []byte // answers to the phone's own messages
	tallyWake chan struct{}
	done      chan struct{} // closed when the reader returns
	wrote     chan struct{} // closed when the writer returns
	joined    atomic.Bool
	limiter   *rate.Limiter
	challenge []byte        // random per connection; bound into every sealed frame
	lobbyAt   *list.Element // in the lobby while unjoined; guarded by its lock

	// Owned by the reader goroutine.
	secret  string // the one phone this connection speaks for, once known
	sealed  bool   // the phone seals: never answer it in clear again
	lastSeq uint32 // the last sealed frame's seq; the next must be higher
	seat    func() // gives back the joined websocket's seat; nil without one
}

// queue is for news the hub sends: it never waits, so one slow phone
// cannot hold up the room.
func (c *client) queue(msg []byte) {
	select {
	case c.send <- msg:
	default:
		c.conn.Close() // too slow: drop it; the reader then cleans up
	}
}

// reply is for answers to the phone's own messages. It waits for room, so
// the reader reads nothing more until the writer has caught up: a phone
// that sends a burst slows itself down (TCP pushes back) instead of losing
// its connection. A phone that reads nothing is dropped by the writer's
// deadline, which ends the wait.
func (c *client) reply(msg []byte) {
	select {
	case c.replies <- msg:
	case <-c.wrote:
	}
}

func (c *client) wakeTally() {
	select {
	case c.tallyWake <- struct{}{}:
	default: // a wake is pending; the writer will send the newest tally
	}
}

// readLoop reads messages until the connection fails or closes.
func (c *client) readLoop(ctx context.Context) {
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.done:
		}
		c.hub.connected.Add(-1)
		c.srv.lobby.leave(c)
		if c.seat != nil {
			c.seat()
		}
		close(c.done)
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxFrameSize)
	lim := c.srv.limits
	c.conn.SetReadDeadline(time.Now().Add(lim.helloWait))
	c.conn.SetPongHandler(func(string) error {
		if c.joined.Load() {
			c.conn.SetReadDeadline(time.Now().Add(lim.pongWait))
		}
		return nil
	})
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if c.joined.Load() {
			c.conn.SetReadDeadline(time.Now().Add(lim.pongWait))
		}
		if !c.limiter.Allow() {
			c.sendError(errRateLimited)
			continue
		}
		if kind != websocket.TextMessage {
			c.sendError(fmt.Errorf("%w: send JSON text frames", errBadMessage))
			continue
		}
		m, how, err := c.decode(data)
		if err != nil {
			c.answer(how, errorFrame(err))
			continue
		}
		c.handle(ctx, m, how)
	}
}

// decode turns one text frame into a message. For a sealed frame it also
// returns what seals the answer; once a phone has sealed, a frame in clear
// is refused, so that no answer on the connection can echo a choice in
// clear.
func (c *client) decode(data []byte) (phoneMessage, replySeal, error) {
	var head struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &head) != nil || head.Type != msgSealed {
		if c.sealed {
			return phoneMessage{}, inClear, errSealRequired
		}
		m, err := decodePhoneMessage(data)
		return m, inClear, err
	}
	o, err := c.srv.sealer.OpenFrame(data, c.challenge)
	if err != nil {
		return phoneMessage{}, inClear, err
	}
	if o.Seq <= c.lastSeq {
		// A frame captured earlier on this connection, played again.
		return phoneMessage{}, inClear, fmt.Errorf("%w: seq %d after %d", ErrSealBroken, o.Seq, c.lastSeq)
	}
	c.lastSeq = o.Seq
	c.sealed = true
	m, err := decodePhoneMessage(o.Msg)
	return m, sealedBy(o), err
}

// answer sends the answer to one message: sealed if the message was.
func (c *client) answer(how replySeal, msg []byte) {
	b, err := how.seal(msg)
	if err != nil {
		c.srv.log.Error("seal answer", "err", err)
		return
	}
	c.reply(b)
}

func (c *client) handle(ctx context.Context, m phoneMessage, how replySeal) {
	ctx, cancel := context.WithTimeout(ctx, storeWait)
	defer cancel()
	store := c.srv.store
	switch m.Type {
	case msgHello:
		if c.secret != "" && m.Device != c.secret {
			// One connection speaks for one phone, so a script cannot mint
			// phones by saying hello with fresh secrets on one connection.
			c.answer(how, errorFrame(errOnePhone))
			return
		}
		slip, err := c.srv.joinPhone(ctx, m)
		if err != nil {
			c.answer(how, errorFrame(err))
			return
		}
		if c.seat == nil {
			seat, ok := c.srv.seats.take(seatWS, m.Device, slip.Choice != tally.ChoiceNone, c.srv.maxPhones, func() { c.conn.Close() })
			if !ok {
				c.answer(how, errorFrame(errFull))
				return
			}
			c.seat = seat
			c.srv.lobby.leave(c)
		}
		c.secret = m.Device
		c.joined.Store(true)
		c.conn.SetReadDeadline(time.Now().Add(c.srv.limits.pongWait))
		st := store.State()
		c.reply(newRoundMessage(st))
		c.answer(how, ackFrame(slip))
		// Every phone hears a series message of one length, sealed like the
		// ack: were it sent only to phones with an offer, a listener would
		// learn from the count of frames who consented before.
		c.answer(how, seriesFrame(slip, st))
		c.hub.joinedTally(c)
	case msgSlip, msgLeave:
		// Its ack is queued before a lock or unlock it causes goes to
		// every phone.
		c.hub.startAnswer()
		defer c.hub.doneAnswer()
		if !c.joined.Load() {
			c.answer(how, errorFrame(errHelloFirst))
			return
		}
		var slip tally.Slip
		var err error
		if m.Type == msgSlip {
			slip, err = store.Cast(ctx, c.secret, m.Choice, m.Round)
		} else {
			slip, err = store.Leave(ctx, c.secret)
		}
		if err != nil {
			c.answer(how, errorFrame(err))
			if errors.Is(err, tally.ErrStaleRound) {
				c.reply(newRoundMessage(store.State()))
			}
			return
		}
		if m.Type == msgLeave {
			// The phone is gone: its socket waits in the lobby again.
			c.joined.Store(false)
			c.seat()
			c.seat = nil
			c.conn.SetReadDeadline(time.Now().Add(c.srv.limits.helloWait))
			c.srv.enterLobby(c)
		}
		c.answer(how, ackFrame(slip))
	}
}

// joinPhone registers the phone that sent m, a hello, over either
// transport. A phone the session knows rejoins at once; a new one needs a
// valid join token, a place within the join limit (joinlimit.go) and a
// share of the kiosk's join rate, so that no script can register phones
// without bound.
func (s *Server) joinPhone(ctx context.Context, m phoneMessage) (tally.Slip, error) {
	slip, err := s.store.Rejoin(ctx, m.Device)
	if err == nil {
		s.phoneLimits.track(m.Device, time.Now())
	}
	if !errors.Is(err, tally.ErrUnknownPhone) {
		return slip, err
	}
	if m.Join == "" {
		return slip, err
	}
	if err := s.join.verify(m.Join); err != nil {
		return slip, err // say why the token did not do
	}
	st := s.store.State()
	done, ok := s.joins.enter(st.Issued, joinLimit(st.Headcount))
	if !ok {
		return slip, errJoinLimit
	}
	defer done()
	if !s.newPhones.Allow() {
		return slip, errRateLimited
	}
	slip, err = s.store.Admit(ctx, m.Device)
	if err == nil {
		s.phoneLimits.track(m.Device, time.Now())
	}
	return slip, err
}

// ackFrame encodes an ack so that its length does not depend on the choice:
// JSON allows spaces after a value, and the padding makes "consent", "refuse"
// and "none" the same size on the wire, so the size of an encrypted frame
// does not tell a listener what was chosen.
func ackFrame(s tally.Slip) []byte {
	choice := s.Choice.String()
	pad := strings.Repeat(" ", len("consent")-len(choice))
	return fmt.Appendf(nil, `{"type":"ack","choice":"%s"%s,"round":%d}`, choice, pad, s.Round)
}

func (c *client) sendError(err error) {
	if classify(err).status == 500 {
		c.srv.log.Error("phone message failed", "err", err)
	}
	c.reply(errorFrame(err))
}

// errorFrame encodes err as a websocket error message short enough to be
// sealed: a message that would not fit is left out, the code stays.
func errorFrame(err error) []byte {
	e := classify(err)
	b, _ := json.Marshal(map[string]string{"type": msgError, "code": e.code, "message": e.message})
	if len(b) > ReplyPlaintextLen {
		b, _ = json.Marshal(map[string]string{"type": msgError, "code": e.code, "message": ""})
	}
	return b
}

// writeLoop writes queued messages, the newest tally when woken, and pings.
func (c *client) writeLoop() {
	lim := c.srv.limits
	ping := time.NewTicker(lim.pingPeriod)
	// The tally this phone was sent last: woken again before it changed, the
	// writer has nothing new to say.
	var lastTally *websocket.PreparedMessage
	defer func() {
		ping.Stop()
		close(c.wrote)
		c.conn.Close()
	}()
	for {
		var err error
		// Acks and errors go before tallies: a phone waiting to hear that
		// its slip counted should not wait behind a count it will see anyway.
		select {
		case msg := <-c.replies:
			c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
			continue
		case msg := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
			continue
		default:
		}
		select {
		case msg := <-c.replies:
			c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
			err = c.conn.WriteMessage(websocket.TextMessage, msg)
		case msg := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
			err = c.conn.WriteMessage(websocket.TextMessage, msg)
		case <-c.tallyWake:
			if pm := c.hub.tally.Load(); pm != nil && pm != lastTally {
				c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
				err = c.conn.WritePreparedMessage(pm)
				lastTally = pm
			}
		case <-ping.C:
			c.conn.SetWriteDeadline(time.Now().Add(lim.writeWait))
			err = c.conn.WriteMessage(websocket.PingMessage, nil)
		case <-c.hub.stopping:
			c.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "kiosk stopping"), time.Now().Add(time.Second))
			return
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}
