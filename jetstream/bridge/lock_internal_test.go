package bridge

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
)

// hungRenewals is a KeyValue whose Update hangs until its context ends, as
// when NATS stops answering.
type hungRenewals struct {
	jetstream.KeyValue
	once   sync.Once
	called chan struct{} // closed at the first Update
}

func (h *hungRenewals) Update(ctx context.Context, _ string, _ []byte, _ uint64) (uint64, error) {
	h.once.Do(func() { close(h.called) })
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestReleaseDoesNotWaitForAHungRenewal: Release interrupts a renewal in
// flight instead of waiting for it, which could take up to the TTL when
// NATS does not answer.
func TestReleaseDoesNotWaitForAHungRenewal(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	cfg := LockConfig{TTL: time.Minute, Renew: 10 * time.Millisecond, Poll: 50 * time.Millisecond,
		ID: "a", Logger: natstest.Logger(t)}
	l, err := NewLock(ctx, srv.JetStream(t), "S", cfg)
	if err != nil {
		t.Fatal(err)
	}
	hung := &hungRenewals{KeyValue: l.kv, called: make(chan struct{})}
	l.kv = hung // before Acquire starts the renewals
	le, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-hung.called
	released := make(chan error, 1)
	go func() { released <- le.Release(ctx) }()
	select {
	case err := <-released:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // the renewal's own deadline is a minute away
		t.Fatal("Release waited for the hung renewal")
	}
	if !errors.Is(context.Cause(le.Context()), ErrLeaseReleased) {
		t.Fatalf("lease ended with %v", context.Cause(le.Context()))
	}
	if _, err := hung.Get(ctx, l.cfg.Key); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Fatalf("the key is still there after Release: %v", err)
	}
}
