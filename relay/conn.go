package relay

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// maxPending bounds what Write queues for the websocket before it
	// blocks: far above a hall's burst of tallies, small against memory.
	maxPending = 1 << 20
	// sendWait bounds one websocket write: a link that takes longer is dead
	// (the yamux keepalive notices sooner; this frees the writer anyway).
	sendWait = 10 * time.Second
)

// wsConn carries a byte stream over a websocket as binary messages, so
// that a yamux session can run on a connection that passes every proxy and
// firewall that lets HTTPS through.
//
// Writes are coalesced: Write queues its bytes and one goroutine sends
// whatever has queued as one message. A lock's tally fanned out to a
// thousand phones is a thousand small yamux frames; sent one message (and
// one system call) each, they queue behind each other, and the last phone
// hears late. Sent together, they cost a few messages. Nothing waits for
// more bytes to come, so a lone frame is not delayed.
type wsConn struct {
	ws *websocket.Conn

	readMu sync.Mutex
	r      io.Reader // the message being read; nil between messages

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte // queued by Write, not yet sent
	err     error  // the first failed send
	closed  bool
}

func newWSConn(ws *websocket.Conn) net.Conn {
	c := &wsConn{ws: ws}
	c.cond = sync.NewCond(&c.mu)
	go c.sendLoop()
	return c
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && len(c.pending) >= maxPending {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.cond.Broadcast()
	return len(p), nil
}

// sendLoop sends what Write queued, all of it in one message.
func (c *wsConn) sendLoop() {
	var out []byte
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		out, c.pending = c.pending, out[:0]
		c.cond.Broadcast()
		c.mu.Unlock()

		c.ws.SetWriteDeadline(time.Now().Add(sendWait))
		if err := c.ws.WriteMessage(websocket.BinaryMessage, out); err != nil {
			c.mu.Lock()
			c.err = err
			c.cond.Broadcast()
			c.mu.Unlock()
			c.ws.Close()
			return
		}
	}
}

func (c *wsConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// Deadlines are yamux's business (its keepalive and stream deadlines);
// the websocket keeps its own write deadline per message.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(time.Time) error  { return nil }
func (c *wsConn) SetDeadline(t time.Time) error     { return c.ws.SetReadDeadline(t) }
