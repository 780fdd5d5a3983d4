package sink_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func items(from, to uint64) []natstest.Item {
	var out []natstest.Item
	for r := from; r <= to; r++ {
		out = append(out, natstest.Item{Rev: r, Key: natstest.Kinds[r%3]})
	}
	return out
}

func TestEnsureStream(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 10*time.Second)

	cfg := sink.Config{Stream: "S", Prefix: "a.b", MaxAge: time.Hour}
	s, err := sink.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Subjects[0] != "a.b.>" || got.MaxAge != time.Hour || got.Duplicates != 2*time.Minute || got.Replicas != 1 {
		t.Fatalf("created %+v", got)
	}
	// Same config again: nothing to do. Other limits: updated.
	if _, err := sink.EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.MaxAge, cfg.MaxMsgs = 2*time.Hour, 1000
	s, err = sink.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != 2*time.Hour || got.MaxMsgs != 1000 {
		t.Fatalf("updated %+v", got)
	}
	// Another prefix, another retention: refused.
	if _, err := sink.EnsureStream(ctx, js, sink.Config{Stream: "S", Prefix: "x"}); !errors.Is(err, sink.ErrStreamMismatch) {
		t.Fatalf("other prefix: %v", err)
	}
	if _, err := sink.EnsureStream(ctx, js, sink.Config{Stream: "S", Prefix: "a.b", Retention: jetstream.InterestPolicy}); !errors.Is(err, sink.ErrStreamMismatch) {
		t.Fatalf("other retention: %v", err)
	}
	if _, err := sink.EnsureStream(ctx, js, sink.Config{Stream: "S", Prefix: "a.*"}); err == nil {
		t.Fatal("wildcard prefix accepted")
	}
}

func TestPublishAndReadBack(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	cfg := sink.Config{MaxPending: 16}
	str, err := sink.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := sink.NewPublisher(js, natstest.Codec{}, cfg)
	if err := pub.Publish(ctx, natstest.Item{Rev: 1}); !errors.Is(err, sink.ErrNotSynced) {
		t.Fatalf("publish before sync: %v", err)
	}
	pos, err := pub.Sync(ctx)
	if err != nil || pos != (sink.Position{}) {
		t.Fatalf("sync on empty stream: %v %v", pos, err)
	}
	if err := pub.Restart(natstest.Rev(100)); err != nil {
		t.Fatal(err)
	}
	for _, it := range items(101, 300) {
		if err := pub.Publish(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.Pending() != 0 || pub.Acked() != (sink.Position{Revision: natstest.Rev(300), Sequence: 200}) {
		t.Fatalf("acked %v, pending %d", pub.Acked(), pub.Pending())
	}

	// The wire format.
	m, err := str.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != wire.DefaultPrefix+".VmVolume" || m.Header.Get(wire.HeaderMsgID) != "101" ||
		m.Header.Get(wire.HeaderRevision) != "101" || m.Header.Get(wire.HeaderPrevRevision) != "100" {
		t.Fatalf("first message: %s %v", m.Subject, m.Header)
	}
	m, _ = str.GetMsg(ctx, 2)
	if m.Header.Get(wire.HeaderPrevRevision) != "101" {
		t.Fatalf("second message: %v", m.Header)
	}

	// Out of order.
	if err := pub.Publish(ctx, natstest.Item{Rev: 300}); !errors.Is(err, sink.ErrOutOfOrder) {
		t.Fatalf("repeated revision: %v", err)
	}
	if err := pub.Publish(ctx, natstest.Item{Rev: 301}); !errors.Is(err, sink.ErrOutOfOrder) {
		t.Fatalf("after an error: %v", err)
	}

	// A new publisher reads the position back.
	pub2 := sink.NewPublisher(js, natstest.Codec{}, cfg)
	pos, err = pub2.Sync(ctx)
	if err != nil || pos != (sink.Position{Revision: natstest.Rev(300), Sequence: 200}) {
		t.Fatalf("read back %v %v", pos, err)
	}
}

// Two publishers that both believe they lead: the expected last sequence
// lets only one of them store each message, and neither leaves a gap.
func TestFencing(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	cfg := sink.Config{MaxPending: 8}
	jsA, jsB := srv.JetStream(t), srv.JetStream(t)
	if _, err := sink.EnsureStream(ctx, jsA, cfg); err != nil {
		t.Fatal(err)
	}
	a := sink.NewPublisher(jsA, natstest.Codec{}, cfg)
	b := sink.NewPublisher(jsB, natstest.Codec{}, cfg)
	for _, p := range []*sink.Publisher[natstest.Item]{a, b} {
		if _, err := p.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		_ = p.Restart(natstest.Rev(0))
	}
	for _, it := range items(1, 50) {
		if err := a.Publish(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// b synced before a published: everything it sends is refused.
	var err error
	for _, it := range items(1, 20) {
		if err = b.Publish(ctx, it); err != nil {
			break
		}
	}
	if err == nil {
		err = b.Flush(ctx)
	}
	if err == nil {
		t.Fatal("stale publisher was not fenced off")
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Logf("fenced with: %v", err)
	}
	// After a sync b continues where a stopped; a is now fenced off.
	pos, err := b.Sync(ctx)
	if err != nil || pos.Revision != natstest.Rev(50) {
		t.Fatalf("sync: %v %v", pos, err)
	}
	for _, it := range items(51, 60) {
		if err := b.Publish(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, natstest.Item{Rev: 51}); err == nil {
		if err = a.Flush(ctx); err == nil {
			t.Fatal("old publisher was not fenced off")
		}
	}
	str, _ := jsA.Stream(ctx, wire.DefaultStream)
	info, _ := str.Info(ctx)
	if info.State.Msgs != 60 || info.State.LastSeq != 60 {
		t.Fatalf("stream state %+v", info.State)
	}
	for seq := uint64(1); seq <= 60; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := wire.RevisionHeader(m.Header); r != stream.RevisionFromUint64(seq) {
			t.Fatalf("sequence %d holds revision %s", seq, r)
		}
	}
}

// Reap collects the acknowledgements that arrived without a Publish or
// Flush to wait for them, and reports them to OnAcked, in order.
func TestReapAndOnAcked(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 10*time.Second)
	cfg := sink.Config{}
	if _, err := sink.EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	pub := sink.NewPublisher(js, natstest.Codec{}, cfg)
	var acked atomic.Int64
	pub.OnAcked(func(n int) { acked.Add(int64(n)) })
	if err := pub.Reap(); err != nil { // before Sync: nothing to do
		t.Fatal(err)
	}
	if _, err := pub.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Restart(natstest.Rev(0)); err != nil {
		t.Fatal(err)
	}
	for _, it := range items(1, 50) {
		if err := pub.Publish(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, 10*time.Second, "acknowledgements reaped", func() bool {
		if err := pub.Reap(); err != nil {
			t.Fatal(err)
		}
		return pub.Pending() == 0
	})
	if n := acked.Load(); n != 50 || pub.Acked().Sequence != 50 {
		t.Fatalf("OnAcked counted %d, Acked %v", n, pub.Acked())
	}
	if err := (sink.Config{MaxPending: -1}).Validate(); !errors.Is(err, stream.ErrInvalidOption) {
		t.Fatalf("Validate: %v", err)
	}
	if err := (sink.Config{Prefix: "a..b"}).Validate(); !errors.Is(err, stream.ErrInvalidOption) {
		t.Fatalf("Validate: %v", err)
	}
}
