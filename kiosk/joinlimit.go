package kiosk

import (
	"sync"
	"sync/atomic"
)

const (
	// joinLimitUnset bounds the phones that may join before the lecturer
	// sets a headcount: the largest hall the kiosk is for, and a margin.
	joinLimitUnset = 1100
	// joinMarginMin: a headcount is counted by eye; this many phones more
	// than it (or a tenth of it, if more) may join, for people who came
	// late or a page opened on a second device.
	joinMarginMin = 20
)

// joinLimit is how many phones may join the session with this headcount
// (0: none set yet), so that one typed code cannot register phones without
// bound: a script's phones beyond it are refused, and its phones within it
// count against the headcount like anyone's.
func joinLimit(headcount int) int {
	if headcount <= 0 {
		return joinLimitUnset
	}
	return headcount + max(joinMarginMin, headcount/10)
}

// joinGate admits new phones within the join limit. Joins in flight are
// counted, so a burst cannot overshoot it.
type joinGate struct {
	pending atomic.Int64
	// hitAt is the limit at which a join was last refused; 0 for none.
	hitAt atomic.Int64
	wake  notifier
}

// enter reserves a place for one new phone, given how many have joined;
// done must be called when the join has finished either way.
func (g *joinGate) enter(issued, limit int) (done func(), ok bool) {
	if int(g.pending.Add(1))+issued > limit {
		g.pending.Add(-1)
		if g.hitAt.Swap(int64(limit)) != int64(limit) {
			g.wake.notify()
		}
		return nil, false
	}
	return func() { g.pending.Add(-1) }, true
}

// hit reports whether a phone was refused at the current limit and the
// session is still at it: raising the headcount, or a new session, ends it.
func (g *joinGate) hit(issued, limit int) bool {
	at := g.hitAt.Load()
	return at != 0 && int64(limit) <= at && issued >= limit
}

// notifier lets long-polls wake on a change that is not the store's.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed returns a channel closed at the next notify.
func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
