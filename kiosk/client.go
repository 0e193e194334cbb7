package kiosk

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/consent-kiosk/kiosk/seal"
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
	tallyOwed atomic.Bool // a hello was answered: send the tally even if unchanged
	limiter   *rate.Limiter
	challenge []byte        // random per connection; bound into every sealed frame
	lobbyAt   *list.Element // in the lobby while unjoined; guarded by its lock

	// Owned by the reader goroutine.
	phone   phoneSession
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
			c.deliver(inClear, c.srv.failed(errRateLimited))
			continue
		}
		if kind != websocket.TextMessage {
			c.deliver(inClear, c.srv.failed(fmt.Errorf("%w: send JSON text frames", errBadMessage)))
			continue
		}
		m, how, err := c.decode(data)
		if err != nil {
			c.deliver(how, c.srv.failed(err))
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
		return phoneMessage{}, inClear, fmt.Errorf("%w: seq %d after %d", seal.ErrBroken, o.Seq, c.lastSeq)
	}
	c.lastSeq = o.Seq
	c.sealed = true
	m, err := decodePhoneMessage(o.Msg)
	return m, sealedBy(o), err
}

// deliver sends a reply: sealed if the message was, the tally last.
func (c *client) deliver(how replySeal, r phoneReply) {
	frames, err := sealAnswers(how, r.frames)
	if err != nil {
		c.srv.log.Error("seal answer", "err", err)
		return
	}
	for _, f := range frames {
		c.reply(f)
	}
	if r.tally {
		// Unlike the hub's news, the tally after a hello goes out even if the
		// phone had it already: a hello is always answered the same way.
		c.tallyOwed.Store(true)
		c.hub.joinedTally(c)
	}
}

// handle lets the phone session act on m, and keeps the connection's
// seat, lobby place and deadlines in step with it.
func (c *client) handle(ctx context.Context, m phoneMessage, how replySeal) {
	was := c.phone.joined
	c.phone.answer(ctx, m, func(r phoneReply) {
		switch {
		case !was && c.phone.joined:
			c.joined.Store(true)
			c.conn.SetReadDeadline(time.Now().Add(c.srv.limits.pongWait))
		case was && !c.phone.joined:
			// The phone left: its socket waits in the lobby again.
			c.joined.Store(false)
			c.seat()
			c.seat = nil
			c.conn.SetReadDeadline(time.Now().Add(c.srv.limits.helloWait))
			c.srv.enterLobby(c)
		}
		c.deliver(how, r)
	})
}

// takeSeat is the websocket's seat for the phone session: taken at the
// first hello that passes, and again after a leave gave it back.
func (c *client) takeSeat(device string, voted bool) error {
	if c.seat != nil {
		return nil
	}
	seat, ok := c.srv.seats.take(seatWS, device, voted, c.srv.maxPhones, func() { c.conn.Close() })
	if !ok {
		return errFull
	}
	c.seat = seat
	c.srv.lobby.leave(c)
	return nil
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
			owed := c.tallyOwed.Swap(false)
			if pm := c.hub.tally.Load(); pm != nil && (pm != lastTally || owed) {
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
