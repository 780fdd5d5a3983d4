package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const total = 100_000

// bridgeProc is one bridge process: its own NATS connection, killed by
// closing that connection (no release of the lock, nothing flushed).
type bridgeProc struct {
	name   string
	cancel context.CancelFunc
	close  func() // closes the connection
	done   chan error
}

func startBridge(t *testing.T, srv *natstest.Server, src stream.Source[*models.ResourceChangeEvent], name string) *bridgeProc {
	t.Helper()
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.NewCloudTower(js, src, bridge.Config{
		Lock:   bridge.LockConfig{TTL: time.Second, Renew: 200 * time.Millisecond, Poll: 50 * time.Millisecond, ID: name},
		Start:  stream.FromStart(),
		Watch:  []stream.Option{stream.PollInterval(5 * time.Millisecond), stream.Backoff(time.Millisecond, 20*time.Millisecond)},
		Retry:  stream.RetryPolicy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.5, MaxRetries: stream.NoRetryLimit},
		Logger: natstest.Logger(t).With("bridge", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &bridgeProc{name: name, cancel: cancel, close: nc.Close, done: make(chan error, 1)}
	go func() { p.done <- b.Run(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop cancels the bridge (a graceful stop: it releases the lock) and
// waits for Run to return. It may be called more than once.
func (p *bridgeProc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err, ok := <-p.done:
		if ok {
			close(p.done)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("bridge %s: Run returned %v", p.name, err)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("bridge %s did not stop within 20s", p.name)
	}
}

type received struct {
	revs []uint64
	diff error // first change that differs from the server's
	err  error // the error that ended the stream, if not the end
}

// consume reads the stream from its beginning until it has seen revision
// want, on its own connection, and compares each change with CloudTower's.
func consume(ctx context.Context, t *testing.T, srv *natstest.Server, cfg source.Config, want []fakeserver.Event) *received {
	r := &received{revs: make([]uint64, 0, len(want))}
	src, err := source.NewCloudTower(ctx, srv.JetStream(t), cfg)
	if err != nil {
		r.err = err
		return r
	}
	defer src.Close()
	last := want[len(want)-1].Revision
	for ev, err := range src.Watch(ctx, stream.FromStart(), stream.PollInterval(5*time.Millisecond)) {
		if err != nil {
			r.err = err
			return r
		}
		rev, err := cloudtower.RevisionOf(ev)
		if err != nil {
			r.err = err
			return r
		}
		n, _ := rev.Uint64()
		i := len(r.revs)
		r.revs = append(r.revs, n)
		if r.diff == nil && (i >= len(want) || !same(ev, want[i])) {
			r.diff = fmt.Errorf("change #%d (revision %d) differs from the server's", i, n)
		}
		if n >= last {
			return r
		}
	}
	return r
}

func same(ev *models.ResourceChangeEvent, w fakeserver.Event) bool {
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return s(ev.Revision) == fmt.Sprint(w.Revision) && s(ev.ResourceID) == w.ResourceID &&
		s(ev.ResourceType) == w.ResourceType && s(ev.Action) == w.Action && s(ev.NewValue) == w.NewValue
}

// TestHundredThousandThroughTheBridge publishes 100,000 CloudTower changes
// through bridges that crash, fail over and restart, with faults on the
// CloudTower side, while two consumers (an ordered one and a durable one,
// each on its own connection) read the stream.
func TestHundredThousandThroughTheBridge(t *testing.T) {
	fake, client := natstest.CloudTower(t, 40_000)
	fake.SetRandomFaults(7, 0.05, fakeserver.Fault500, fakeserver.Fault502, fakeserver.Fault502Text,
		fakeserver.Fault503, fakeserver.Fault503Empty)
	src := cloudtower.New(client)
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	count := func() uint64 {
		s, err := js.Stream(context.Background(), wire.DefaultStream)
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}

	kv, err := bridge.NewLock(natstest.Ctx(t, 10*time.Second), js, wire.DefaultStream, bridge.LockConfig{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	leads := func(name string) func() bool {
		return func() bool { return kv.Holder(context.Background()) == name }
	}

	b1 := startBridge(t, srv, src, "b1")
	natstest.Eventually(t, time.Minute, "b1 leads", leads("b1"))
	b2 := startBridge(t, srv, src, "b2") // stands by

	// The consumers start while the bridges publish.
	fake.Generate(total - 40_000)
	want := fake.Events(0)
	if len(want) != total {
		t.Fatalf("the fake server holds %d changes", len(want))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// On a failure, the consumers stop before the test waits for them.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results := make([]*received, 2)
	for i, cfg := range []source.Config{{}, {Durable: "durable"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = consume(ctx, t, srv, cfg, want)
		}()
	}

	// b1 crashes at about a quarter: b2 takes over.
	natstest.Eventually(t, time.Minute, "b1 published 25,000", func() bool { return count() >= 25_000 })
	b1.close()
	crashed, at := time.Now(), count()
	natstest.Eventually(t, time.Minute, "b2 took over", leads("b2"))
	t.Logf("failover after a crash at %d changes: %v (lock TTL 1s)", at, time.Since(crashed).Round(time.Millisecond))
	b1.stop(t)

	// b1 restarts and stands by; b2 stops (a restart) at about 60%: b1 takes over.
	b1 = startBridge(t, srv, src, "b1-restarted")
	natstest.Eventually(t, time.Minute, "b2 published 60,000", func() bool { return count() >= 60_000 })
	stopped := time.Now()
	b2.stop(t)
	at = count()
	natstest.Eventually(t, time.Minute, "b1 took over", leads("b1-restarted"))
	t.Logf("handover after a graceful stop at %d changes: %v", at, time.Since(stopped).Round(time.Millisecond))

	natstest.Eventually(t, 2*time.Minute, "all published", func() bool { return count() >= total })
	wg.Wait()
	b1.stop(t)
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("consumer %d: %v after %d changes", i, r.err, len(r.revs))
		}
		if r.diff != nil {
			t.Fatalf("consumer %d: %v", i, r.diff)
		}
		natstest.CheckRange(t, r.revs, 1, total)
	}
	natstest.CheckRange(t, natstest.Revisions(t, js, wire.DefaultStream), 1, total)
	st := fake.Stats()
	t.Logf("CloudTower served %+v", st)
}
