package source_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

// harness runs the stream/streamtest suite over a Source reading a real
// JetStream stream (an ordered consumer), the changes published with a
// sink.Publisher.
type harness struct {
	t    *testing.T
	js   jetstream.JetStream
	src  *source.Source[natstest.Item]
	head uint64
	fail atomic.Bool
}

func newHarness(t *testing.T) streamtest.Harness[natstest.Item] {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 10*time.Second)
	if _, err := sink.EnsureStream(ctx, js, sink.Config{}); err != nil {
		t.Fatal(err)
	}
	// Short long polls: the suite polls an idle stream several times.
	src, err := source.New(ctx, js, natstest.Codec{}, source.Config{MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return &harness{t: t, js: js, src: src}
}

var errTransient = errors.New("harness: transient failure")

func (h *harness) Source() stream.Source[natstest.Item] {
	return stream.NewSource(func(ctx context.Context, after stream.Revision, limit int) (stream.Page[natstest.Item], error) {
		if h.fail.CompareAndSwap(true, false) {
			return stream.Page[natstest.Item]{}, errTransient
		}
		return h.src.Poll(ctx, after, limit)
	}, h.src.Revision)
}

func (h *harness) Append(n int) []stream.Revision {
	natstest.Publish(h.t, h.js, sink.Config{}, h.head+1, h.head+uint64(n), 0)
	revs := make([]stream.Revision, n)
	for i := range revs {
		revs[i] = natstest.Rev(h.head + uint64(i) + 1)
	}
	h.head += uint64(n)
	return revs
}

// Compact purges the messages up to upTo (revision r is at sequence r):
// the next message's previous revision, upTo, tells the gap.
func (h *harness) Compact(upTo stream.Revision) {
	n, ok := upTo.Uint64()
	if !ok {
		h.t.Fatalf("revision %s", upTo)
	}
	ctx := natstest.Ctx(h.t, 10*time.Second)
	str, err := h.js.Stream(ctx, wire.DefaultStream)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := str.Purge(ctx, jetstream.WithPurgeSequence(n+1)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) FailNext() { h.fail.Store(true) }

func TestConformance(t *testing.T) {
	streamtest.TestSource(t, newHarness)
}
