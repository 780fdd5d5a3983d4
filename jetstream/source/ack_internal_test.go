package source

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// replyMsg is a jetstream.Msg with a reply subject and nothing else.
type replyMsg struct {
	jetstream.Msg
	reply string
}

func (m replyMsg) Reply() string { return m.reply }

func TestAckFields(t *testing.T) {
	for _, tc := range []struct {
		reply        string
		seq, pending uint64
	}{
		{"$JS.ACK.S.C.1.42.7.1700000000000000000.3", 42, 3},
		{"$JS.ACK._.ACC.S.C.1.43.8.1700000000000000000.0.abc", 43, 0},
		{"$JS.ACK.dom.ACC.S.C.2.44.9.1700000000000000000.12", 44, 12},
	} {
		seq, pending, err := ackFields(replyMsg{reply: tc.reply})
		if err != nil || seq != tc.seq || pending != tc.pending {
			t.Errorf("ackFields(%q) = %d, %d, %v; want %d, %d", tc.reply, seq, pending, err, tc.seq, tc.pending)
		}
	}
}
