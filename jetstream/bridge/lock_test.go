package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
)

func fastLock(t *testing.T, id string) bridge.LockConfig {
	return bridge.LockConfig{TTL: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Poll: 50 * time.Millisecond,
		ID: id, Logger: natstest.Logger(t)}
}

type acquired struct {
	lease *bridge.Lease
	err   error
	at    time.Time
}

func acquireAsync(ctx context.Context, l *bridge.Lock) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		le, err := l.Acquire(ctx)
		ch <- acquired{le, err, time.Now()}
	}()
	return ch
}

func TestLockFailoverAfterCrash(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	ncA := srv.Connect(t)
	jsA, jsB := jetStream(t, ncA), srv.JetStream(t)
	lockA, err := bridge.NewLock(ctx, jsA, "S", fastLock(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	lockB, err := bridge.NewLock(ctx, jsB, "S", fastLock(t, "b"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := lockA.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	bch := acquireAsync(bctx, lockB)

	// While a renews, b stands by: for three TTLs.
	hold := time.NewTimer(3 * lockA.Config().TTL)
	select {
	case got := <-bch:
		t.Fatalf("b acquired while a holds the lock: %+v", got)
	case <-a.Done():
		t.Fatalf("a lost its lease: %v", context.Cause(a.Context()))
	case <-hold.C:
	}

	// a crashes: its connection goes away, nothing is released.
	crash := time.Now()
	ncA.Close()
	got := <-bch
	if got.err != nil {
		t.Fatal(got.err)
	}
	failover := got.at.Sub(crash)
	cfg := lockB.Config()
	t.Logf("failover after a crash: %v (TTL %v, poll %v)", failover, cfg.TTL, cfg.Poll)
	if failover > cfg.TTL+cfg.Poll+500*time.Millisecond {
		t.Errorf("failover took %v, want at most about TTL+poll", failover)
	}
	// a notices on its own that it may no longer lead.
	select {
	case <-a.Done():
	case <-time.After(2 * cfg.TTL):
		t.Fatal("a did not give up its lease")
	}
	if cause := context.Cause(a.Context()); !errors.Is(cause, bridge.ErrLeaseExpired) && !errors.Is(cause, bridge.ErrLeaseLost) {
		t.Fatalf("a's lease ended with %v", cause)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := got.lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLockReleaseHandsOver(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	cfgA, cfgB := fastLock(t, "a"), fastLock(t, "b")
	cfgA.TTL, cfgB.TTL = 5*time.Second, 5*time.Second // a release must not wait for the TTL
	lockA, err := bridge.NewLock(ctx, srv.JetStream(t), "S", cfgA)
	if err != nil {
		t.Fatal(err)
	}
	lockB, err := bridge.NewLock(ctx, srv.JetStream(t), "S", cfgB)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lockA.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bch := acquireAsync(ctx, lockB)
	released := time.Now()
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil { // twice is harmless
		t.Fatal(err)
	}
	got := <-bch
	if got.err != nil {
		t.Fatal(got.err)
	}
	if d := got.at.Sub(released); d > time.Second {
		t.Errorf("handover after a release took %v, want about one poll (%v)", d, cfgB.Poll)
	}
	if !errors.Is(context.Cause(a.Context()), bridge.ErrLeaseReleased) {
		t.Fatalf("released lease: %v", context.Cause(a.Context()))
	}
	// a takes it back only after b lets go.
	actx, acancel := context.WithCancel(ctx)
	ach := acquireAsync(actx, lockA)
	if err := got.lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if g := <-ach; g.err != nil {
		t.Fatal(g.err)
	} else {
		g.lease.Release(ctx)
	}
	acancel()
}

func TestLockLostToAnother(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 20*time.Second)
	js := srv.JetStream(t)
	lock, err := bridge.NewLock(ctx, js, "S", fastLock(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	le, err := lock.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Someone overwrites the key (an operator, or a bridge after a
	// partition): the next renewal finds a revision it did not write.
	kv, err := js.KeyValue(ctx, bridge.DefaultLockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "S", []byte(`{"id":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-le.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not lost")
	}
	if !errors.Is(context.Cause(le.Context()), bridge.ErrLeaseLost) {
		t.Fatalf("cause %v", context.Cause(le.Context()))
	}
	if err := le.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Release of a lost lease leaves the other holder's key alone.
	if e, err := kv.Get(ctx, "S"); err != nil || string(e.Value()) != `{"id":"intruder"}` {
		t.Fatalf("key after release: %v", err)
	}
}

func TestLockConfig(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 10*time.Second)
	js := srv.JetStream(t)
	for _, c := range []bridge.LockConfig{
		{TTL: 50 * time.Millisecond},
		{TTL: time.Second, Renew: time.Second},
		{Poll: -1},
	} {
		if _, err := bridge.NewLock(ctx, js, "S", c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	l, err := bridge.NewLock(ctx, js, "S", bridge.LockConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config()
	if c.Bucket != bridge.DefaultLockBucket || c.Key != "S" || c.TTL != bridge.DefaultLockTTL || c.Renew != c.TTL/4 || c.Poll != bridge.DefaultLockPoll || c.ID == "" {
		t.Fatalf("defaults %+v", c)
	}
}
