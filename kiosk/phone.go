package kiosk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/consent-kiosk/kiosk/seal"
	"github.com/consent-kiosk/kiosk/tally"
)

// phoneSession is the kiosk's half of one phone's conversation, the same
// whichever transport carries it: it acts on each message the phone sends
// and says what the phone hears back. The websocket (client.go) and the
// HTTP fallback (phonehttp.go) only carry frames, seal them and hold seats,
// so the two cannot answer one message differently.
type phoneSession struct {
	srv *Server
	// device is the one phone the session speaks for, once known. A
	// websocket learns it from its first hello that passes and keeps it; an
	// HTTP request names it in every body.
	device string
	// joined: the phone has said hello and not left since. The websocket
	// keeps its seat and deadlines by it; the store, not this flag, decides
	// whether a phone that left may still cast (it may not).
	joined bool
	// takeSeat is asked for the phone's seat (caps.go) when a hello
	// passes; an error refuses the hello. Nil when the transport needs no
	// seat for it, or took one before the hello waited.
	takeSeat func(device string, voted bool) error
}

// phoneReply is what a phone hears back to one message, in order.
type phoneReply struct {
	// frames are the kiosk → phone messages. The transport seals those that
	// would tell a listener what the phone chose (sealAnswers).
	frames [][]byte
	// tally: the room's current tally follows the frames. The websocket
	// sends the hub's newest; HTTP encodes it there and then.
	tally bool
	// err is what frames[0] reports, or nil when the message went through;
	// HTTP answers with its status.
	err error
}

// failed is the reply to a message that changed nothing.
func (s *Server) failed(err error) phoneReply {
	if classify(err).status == 500 {
		s.log.Error("phone message failed", "err", err)
	}
	return phoneReply{frames: [][]byte{errorFrame(err)}, err: err}
}

// answer acts on m and hands the reply to deliver. The answer to a slip
// or a leave is delivered before a lock or unlock it causes goes to every
// phone: the hub holds its fan-out until deliver has returned.
func (p *phoneSession) answer(ctx context.Context, m phoneMessage, deliver func(phoneReply)) {
	if m.Type != msgHello {
		p.srv.hub.startAnswer()
		defer p.srv.hub.doneAnswer()
	}
	deliver(p.handle(ctx, m))
}

// handle acts on one decoded message.
func (p *phoneSession) handle(ctx context.Context, m phoneMessage) phoneReply {
	ctx, cancel := context.WithTimeout(ctx, storeWait)
	defer cancel()
	switch m.Type {
	case msgHello:
		return p.hello(ctx, m)
	case msgSlip, msgLeave:
		return p.change(ctx, m)
	}
	return p.srv.failed(fmt.Errorf("%w: unknown type %q", errBadMessage, m.Type))
}

func (p *phoneSession) hello(ctx context.Context, m phoneMessage) phoneReply {
	if p.device != "" && m.Device != p.device {
		// One session speaks for one phone, so a script cannot mint phones
		// by saying hello with fresh secrets on one connection.
		return p.srv.failed(errOnePhone)
	}
	slip, err := p.srv.joinPhone(ctx, m)
	if err != nil {
		return p.srv.failed(err)
	}
	if p.takeSeat != nil {
		if err := p.takeSeat(m.Device, slip.Choice != tally.ChoiceNone); err != nil {
			return p.srv.failed(err)
		}
	}
	p.device, p.joined = m.Device, true
	st := p.srv.store.State()
	frames := [][]byte{newRoundMessage(st), ackFrame(slip)}
	// In a round of a series every phone hears a series message of one
	// length, sealed like the ack: were it sent only to phones with an
	// offer, a listener would learn from the count of frames who consented
	// before. A round outside any series offers nothing to anyone, so no
	// phone in it hears one, and the count still tells nothing.
	if st.Round.Series != "" {
		frames = append(frames, seriesFrame(slip, st))
	}
	return phoneReply{frames: frames, tally: true}
}

// change casts the phone's slip or withdraws the phone.
func (p *phoneSession) change(ctx context.Context, m phoneMessage) phoneReply {
	if p.device == "" {
		return p.srv.failed(errHelloFirst)
	}
	store := p.srv.store
	var slip tally.Slip
	var err error
	if m.Type == msgSlip {
		slip, err = store.Cast(ctx, p.device, m.Choice, m.Round)
	} else {
		slip, err = store.Leave(ctx, p.device)
	}
	if err != nil {
		r := p.srv.failed(err)
		if errors.Is(err, tally.ErrStaleRound) {
			// The phone answered a round that has ended: show it the new one.
			r.frames = append(r.frames, newRoundMessage(store.State()))
		}
		return r
	}
	if m.Type == msgLeave {
		p.joined = false
	}
	return phoneReply{frames: [][]byte{ackFrame(slip)}}
}

// joinPhone registers the phone that sent m, a hello. A phone the store
// knows rejoins at once; a new one needs a valid join token, a place within
// the join limit (joinlimit.go) and a share of the kiosk's join rate, so
// that no script can register phones without bound.
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

// errorFrame encodes err as an error message short enough to be sealed: a
// message that would not fit is left out, the code stays.
func errorFrame(err error) []byte {
	e := classify(err)
	b, _ := json.Marshal(map[string]string{"type": msgError, "code": e.code, "message": e.message})
	if len(b) > seal.ReplyLen {
		b, _ = json.Marshal(map[string]string{"type": msgError, "code": e.code, "message": ""})
	}
	return b
}
