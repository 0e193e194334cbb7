package kiosk

import (
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

const (
	// writeWait bounds every write, so a phone that stopped reading cannot
	// hold a goroutine or a buffer for long.
	writeWait = 10 * time.Second
	// pongWait: a phone that answers no ping for this long is gone (walked
	// out of Wi-Fi range, or locked its screen).
	pongWait = 60 * time.Second
	// pingPeriod must be shorter than pongWait so that a live phone always
	// answers in time.
	pingPeriod = pongWait * 9 / 10
	// helloWait: a connection that has not said hello by then is not a phone
	// page, and is closed.
	helloWait = 20 * time.Second
	// maxFrameSize: the largest real message is a hello of about 200 bytes;
	// 4 KiB leaves room for extensions and refuses anything else.
	maxFrameSize = 4096
	// sendQueue: per-phone messages waiting to be written. A phone whose
	// queue is full is too slow and is dropped; it reconnects by itself.
	sendQueue = 16
	// storeWait bounds how long a phone's message waits for the disk.
	storeWait = 15 * time.Second
	// A phone taps a button now and then; 5 messages a second with a burst
	// of 20 is generous for a person and stops a script from flooding.
	msgRate  = 5
	msgBurst = 20
)

// client is one phone's websocket. One goroutine reads and acts on its
// messages in order; another writes.
type client struct {
	hub       *hub
	srv       *Server
	conn      *websocket.Conn
	send      chan []byte
	tallyWake chan struct{}
	done      chan struct{} // closed when the reader returns
	joined    atomic.Bool
	limiter   *rate.Limiter

	secret string // owned by the reader goroutine
}

func (c *client) queue(msg []byte) {
	select {
	case c.send <- msg:
	default:
		c.conn.Close() // too slow: drop it; the reader then cleans up
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
		close(c.done)
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxFrameSize)
	c.conn.SetReadDeadline(time.Now().Add(helloWait))
	c.conn.SetPongHandler(func(string) error {
		if c.joined.Load() {
			c.conn.SetReadDeadline(time.Now().Add(pongWait))
		}
		return nil
	})
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if c.joined.Load() {
			c.conn.SetReadDeadline(time.Now().Add(pongWait))
		}
		if !c.limiter.Allow() {
			c.sendError(errRateLimited)
			continue
		}
		if kind != websocket.TextMessage {
			c.sendError(fmt.Errorf("%w: send JSON text frames", errBadMessage))
			continue
		}
		m, err := decodePhoneMessage(data)
		if err != nil {
			c.sendError(err)
			continue
		}
		c.handle(ctx, m)
	}
}

func (c *client) handle(ctx context.Context, m phoneMessage) {
	ctx, cancel := context.WithTimeout(ctx, storeWait)
	defer cancel()
	store := c.srv.store
	switch m.Type {
	case msgHello:
		fresh := false
		var joinErr error
		if m.Join != "" {
			joinErr = c.srv.join.verify(m.Join)
			fresh = joinErr == nil
		}
		slip, err := store.Join(ctx, m.Device, fresh)
		if errors.Is(err, tally.ErrUnknownPhone) && joinErr != nil {
			err = joinErr // say why the token did not do
		}
		if err != nil {
			c.sendError(err)
			return
		}
		c.secret = m.Device
		c.joined.Store(true)
		c.conn.SetReadDeadline(time.Now().Add(pongWait))
		st := store.State()
		c.queue(newRoundMessage(st))
		c.queue(ackFrame(slip))
		if slip.SeriesDay != "" && slip.Round == st.Round.ID {
			b, _ := json.Marshal(seriesMessage{Type: msgSeries, Round: slip.Round, Series: st.Round.Series, ConsentedOn: slip.SeriesDay})
			c.queue(b)
		}
		c.wakeTally()
	case msgSlip, msgLeave:
		if !c.joined.Load() {
			c.sendError(errHelloFirst)
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
			c.sendError(err)
			if errors.Is(err, tally.ErrStaleRound) {
				c.queue(newRoundMessage(store.State()))
			}
			return
		}
		if m.Type == msgLeave {
			c.joined.Store(false)
		}
		c.queue(ackFrame(slip))
	}
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
	e := classify(err)
	if e.status == 500 {
		c.srv.log.Error("phone message failed", "err", err)
	}
	b := fmt.Appendf(nil, `{"type":"error","code":%q,"message":%q}`, e.code, e.message)
	c.queue(b)
}

// writeLoop writes queued messages, the newest tally when woken, and pings.
func (c *client) writeLoop() {
	ping := time.NewTicker(pingPeriod)
	defer func() {
		ping.Stop()
		c.conn.Close()
	}()
	for {
		var err error
		select {
		case msg := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			err = c.conn.WriteMessage(websocket.TextMessage, msg)
		case <-c.tallyWake:
			if pm := c.hub.tally.Load(); pm != nil {
				c.conn.SetWriteDeadline(time.Now().Add(writeWait))
				err = c.conn.WritePreparedMessage(pm)
			}
		case <-ping.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
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
