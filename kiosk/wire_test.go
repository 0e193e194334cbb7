package kiosk

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestWireFormsByteForByte pins the JSON of a round and a state as
// docs/API.md gives them, field by field and in order: the lecturer's
// state, the phones' round and tally, and the recorders' unlock answer are
// built from shared parts, and a change to one part must not move a byte
// of any of them.
func TestWireFormsByteForByte(t *testing.T) {
	k := newTestKiosk(t)
	k.lecturer("POST", "/api/round", `{"purpose":"Lecture video for INF100","template":"nb","series":"INF100",
	 "notice":{"course":"INF100, 23.11.2026","camera":"Kameraet filmer kateteret."}}`)
	k.setHeadcount(2)
	p := k.newPhone("a", k.joinToken())
	p.slip("consent")
	st := k.store.State()
	if st.Received != 1 || st.Round.Notice == "" {
		t.Fatalf("setup: state %+v; want one slip in a round with a notice", st)
	}
	r := st.Round
	marshal := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range []struct{ what, got, want string }{
		{"round message", string(newRoundMessage(st)), fmt.Sprintf(
			`{"type":"round","round":%d,"purpose":"Lecture video for INF100","notice":%s,"notice_hash":%q,"template":"nb","series":"INF100","mode":"room","closed":false}`,
			r.ID, r.Notice, r.NoticeHash)},
		{"state answer", marshal(newStateAnswer(st)), fmt.Sprintf(
			`{"headcount":2,"received":1,"issued":1,"paper":0,"unlocked":false,"reason":"waiting","round":%d,"version":%d,`+
				`"purpose":"Lecture video for INF100","notice":%s,"notice_hash":%q,"template":"nb","series":"INF100","mode":"room","closed":false,`+
				`"fault":false,"missing":0,"paper_missing":0,"lecturer_devices":0,"hints":null,"join_limit":0,"join_limit_hit":false}`,
			r.ID, st.Version, r.Notice, r.NoticeHash)},
		{"tally message", marshal(newTallyMessage(st)), fmt.Sprintf(
			`{"type":"tally","received":1,"headcount":2,"unlocked":false,"reason":"waiting","round":%d,"version":%d}`, r.ID, st.Version)},
		{"unlock answer", marshal(newUnlockAnswer(st)), fmt.Sprintf(
			`{"unlocked":false,"reason":"waiting","version":%d,"round":%d,"headcount":2,"received":1,"mode":"room"}`, st.Version, r.ID)},
	} {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.what, tt.got, tt.want)
		}
	}
}
