package relay

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn carries a byte stream over a websocket as binary messages, so
// that a yamux session can run on a connection that passes every proxy and
// firewall that lets HTTPS through.
type wsConn struct {
	ws *websocket.Conn

	readMu sync.Mutex
	r      io.Reader // the message being read; nil between messages

	writeMu sync.Mutex
	header  []byte // a yamux data frame's header, sent with its body
}

// yamux writes each frame's 12-byte header and its body in two calls;
// sending them as one websocket message halves the messages (and the
// relay's work) for every frame that carries data.
const (
	muxHeaderLen = 12
	muxTypeData  = 0
)

func newWSConn(ws *websocket.Conn) net.Conn { return &wsConn{ws: ws} }

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
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.header == nil && len(p) == muxHeaderLen && p[1] == muxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		c.header = append(make([]byte, 0, muxHeaderLen), p...)
		return len(p), nil
	}
	msg := p
	if c.header != nil {
		msg = append(c.header, p...)
		c.header = nil
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
