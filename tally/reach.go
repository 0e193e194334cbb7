package tally

import "context"

// EndUnreachable: the kiosk lost its relay, so phones could not withdraw.
const EndUnreachable = "unreachable"

// SetUnreachable tells the store whether phones have lost their way to the
// kiosk (it runs through a relay and the relay is gone). While they have,
// the kiosk is locked with ReasonUnreachable.
//
// The flag takes effect at once for every state the store publishes from
// then on, whatever happens to the write that records it: a store in fault
// is locked anyway and reads the flag when it recovers. The returned error
// only says whether the record's unlocked interval could be ended or begun.
func (s *Store) SetUnreachable(ctx context.Context, unreachable bool) error {
	s.unreachable.Store(unreachable)
	// A loss locks before anything is written, like every other lock: the
	// plan's counts read the flag. Nothing to write but the record's
	// unlocked interval.
	return s.change(ctx, &soloChange{plan: func(now *memState) (outcome, error) {
		out := now.keep()
		out.endWhy = EndUnreachable
		return out, nil
	}})
}
