package kiosk

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// The kiosk holds phones' connections under separate caps, so that nothing
// a stranger can hold crowds out a phone it knows, least of all one that
// holds a slip and wants to withdraw it:
//
//   - the lobby: websockets that have not joined yet. It is never full: the
//     oldest waiting socket makes room for a new one. A script that opens
//     sockets and says nothing only churns the lobby, while a real phone
//     says hello within a moment of connecting and leaves it.
//   - joined websockets and long-polling hellos over HTTP, each capped at
//     -max-phones. A seat is taken only after the hello has passed the
//     checks (a phone the session knows, or a valid join token), so
//     strangers take none. A phone that holds a slip always gets a seat.
//   - event streams for recorders, capped on their own (streamMax).
//
// A device holds at most seatsPerDevice seats at once, so one phone's
// secret cannot be used to hold many: a new one ends its oldest.
const (
	seatWS = iota
	seatPoll
	seatKinds
)

const (
	seatsPerDevice = 4
	// streamMax: recorders are few; a script holding this many streams
	// keeps new recorders on /api/unlock long-polls, which have no cap,
	// and touches no phone.
	streamMax = 256
)

// lobby holds the websockets that have not joined, oldest first.
type lobby struct {
	mu sync.Mutex
	l  list.List // of *client
}

// enter adds c and returns the clients to close to stay within max.
func (lb *lobby) enter(c *client, limit int) (evict []*client) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for lb.l.Len() >= max(limit, 1) {
		old := lb.l.Remove(lb.l.Front()).(*client)
		old.lobbyAt = nil
		evict = append(evict, old)
	}
	c.lobbyAt = lb.l.PushBack(c)
	return evict
}

// leave removes c, if it is still waiting.
func (lb *lobby) leave(c *client) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if c.lobbyAt != nil {
		lb.l.Remove(c.lobbyAt)
		c.lobbyAt = nil
	}
}

func (lb *lobby) len() int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.l.Len()
}

// seats counts joined websockets and waiting long-polls. Devices are told
// apart by a keyed hash that lives only in memory.
type seats struct {
	key []byte
	mu  sync.Mutex
	n   [seatKinds]int
	dev map[[32]byte][]*seat // each device's seats, oldest first
}

type seat struct {
	kind  int
	evict func() // ends the connection or request holding the seat
	gone  bool
}

func newSeats() *seats {
	key := make([]byte, 32)
	rand.Read(key)
	return &seats{key: key, dev: map[[32]byte][]*seat{}}
}

// take gives the device a seat of kind, unless limit are taken and it
// holds no slip. A device that holds seatsPerDevice already gets one all
// the same, and its oldest is ended with evict: a phone whose old sockets
// have not timed out yet (a flaky Wi-Fi) is never locked out by its own
// past. release gives the seat back; it may be called more than once.
func (s *seats) take(kind int, device string, holdsSlip bool, limit int, evict func()) (release func(), ok bool) {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(device))
	var id [32]byte
	h.Sum(id[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[kind] >= limit && !holdsSlip {
		return func() {}, false
	}
	if mine := s.dev[id]; len(mine) >= seatsPerDevice {
		old := mine[0]
		s.drop(id, old)
		go old.evict()
	}
	st := &seat{kind: kind, evict: evict}
	s.n[kind]++
	s.dev[id] = append(s.dev[id], st)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.drop(id, st)
	}, true
}

// drop gives back st, held by device id, unless it is gone already.
func (s *seats) drop(id [32]byte, st *seat) {
	if st.gone {
		return
	}
	st.gone = true
	s.n[st.kind]--
	mine := s.dev[id]
	for i, x := range mine {
		if x == st {
			mine = append(mine[:i], mine[i+1:]...)
			break
		}
	}
	if len(mine) == 0 {
		delete(s.dev, id)
	} else {
		s.dev[id] = mine
	}
}

// enterLobby puts a new or departed websocket in the lobby, closing the
// oldest waiting ones if it is full; their readers then clean up.
func (s *Server) enterLobby(c *client) {
	for _, old := range s.lobby.enter(c, s.lobbyMax) {
		old.conn.Close()
	}
}

// FilesFor is how many file descriptors the phones' caps can hold with
// this -max-phones: the lobby, the joined websockets, the waiting HTTP
// hellos and the event streams. Phones holding a slip may hold a few more,
// bounded by the join limit.
func FilesFor(maxPhones int) uint64 {
	return uint64(max(maxPhones/2, 64) + 2*maxPhones + streamMax)
}
