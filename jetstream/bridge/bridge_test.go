package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

func testConfig(t *testing.T, id string) bridge.Config {
	lock := fastLock(t, id)
	return bridge.Config{
		Lock:   lock,
		Start:  stream.FromStart(),
		Watch:  []stream.Option{stream.PollInterval(5 * time.Millisecond), stream.PageSize(200), stream.Backoff(time.Millisecond, 20*time.Millisecond)},
		Retry:  stream.RetryPolicy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.5, MaxRetries: stream.NoRetryLimit},
		Logger: lock.Logger,
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, js jetstream.JetStream, feed *streamtest.Feed, cfg bridge.Config) *running {
	t.Helper()
	b, err := bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- b.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the bridge and waits for Run to return.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			return err
		}
		return nil
	case <-time.After(10 * time.Second):
		t.Fatal("bridge did not stop within 10s")
		return nil
	}
}

func msgs(t *testing.T, js jetstream.JetStream) func() uint64 {
	return func() uint64 {
		s, err := js.Stream(context.Background(), wire.DefaultStream)
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}
}

func TestBridgeRestartInTheMiddle(t *testing.T) {
	srv := natstest.Start(t)
	feed := natstest.NewFeed()
	feed.Append(5000)
	feed.FailEvery(7, nil)
	js := srv.JetStream(t)
	count := msgs(t, js)

	b1 := start(t, srv.JetStream(t), feed, testConfig(t, "b1"))
	natstest.Eventually(t, 20*time.Second, "first changes published", func() bool { return count() >= 1000 })
	if err := b1.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	stopped := count()
	if stopped >= 5000 {
		t.Logf("the first bridge published everything before it stopped")
	}
	feed.Append(2000)
	start(t, srv.JetStream(t), feed, testConfig(t, "b2"))
	natstest.Eventually(t, 20*time.Second, "all changes published", func() bool { return count() >= 7000 })
	natstest.CheckRange(t, natstest.Revisions(t, js, wire.DefaultStream), 1, 7000)
	t.Logf("first bridge stopped after %d changes", stopped)
}

func TestBridgeFailover(t *testing.T) {
	srv := natstest.Start(t)
	feed := natstest.NewFeed()
	feed.Append(3000)
	js := srv.JetStream(t)
	count := msgs(t, js)

	nc1 := srv.Connect(t)
	b1 := start(t, jetStream(t, nc1), feed, testConfig(t, "b1"))
	natstest.Eventually(t, 20*time.Second, "b1 publishing", func() bool { return count() >= 500 })
	b2 := start(t, srv.JetStream(t), feed, testConfig(t, "b2"))

	// b1 crashes in the middle of the backlog: its connection is gone, its
	// lock is not released.
	nc1.Close()
	crashed := time.Now()
	at := count()
	feed.Append(2000)
	natstest.Eventually(t, 30*time.Second, "b2 took over", func() bool { return count() > at })
	t.Logf("b2 published after %v (b1 had published %d)", time.Since(crashed), at)
	natstest.Eventually(t, 30*time.Second, "all changes published", func() bool { return count() >= 5000 })
	b1.stop(t)
	feed.Append(10)
	natstest.Eventually(t, 10*time.Second, "the last changes published", func() bool { return count() >= 5010 })
	if err := b2.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("b2: %v", err)
	}
	natstest.CheckRange(t, natstest.Revisions(t, js, wire.DefaultStream), 1, 5010)
}

func TestBridgeStartsAtHead(t *testing.T) {
	srv := natstest.Start(t)
	feed := natstest.NewFeed()
	feed.Append(100)
	js := srv.JetStream(t)
	cfg := testConfig(t, "b")
	cfg.Start = nil // the source's head
	var seen []natstest.Item
	b, err := bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Ctx(t, 20*time.Second)
	// Five changes arrive once the bridge has learned the head (100): at
	// its first poll after a revision. (The hook runs without the feed's
	// lock, so it may append.)
	feed.OnPoll(func(_ context.Context, after stream.Revision) error {
		if !after.IsZero() {
			feed.OnPoll(nil)
			feed.Append(5)
		}
		return nil
	})
	for it, err := range b.Published(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, it)
		if len(seen) == 5 {
			break
		}
	}
	if seen[0].Rev != 101 || seen[4].Rev != 105 {
		t.Fatalf("published %v", seen)
	}
	str, _ := js.Stream(ctx, wire.DefaultStream)
	m, err := str.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(wire.HeaderPrevRevision) != "100" {
		t.Fatalf("first message's previous revision: %q", m.Header.Get(wire.HeaderPrevRevision))
	}
	// Breaking out released the lock.
	kv, _ := js.KeyValue(ctx, bridge.DefaultLockBucket)
	if _, err := kv.Get(ctx, wire.DefaultStream); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Fatalf("lock after break: %v", err)
	}
}

func TestBridgeCompaction(t *testing.T) {
	srv := natstest.Start(t)
	feed := natstest.NewFeed()
	feed.Append(100)
	feed.Compact(50)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 20*time.Second)

	cfg := testConfig(t, "b")
	cfg.Start = stream.After(natstest.Rev(10))
	b, err := bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ce *stream.CompactedError
	if err := b.Run(ctx); !errors.As(err, &ce) || ce.Compact != natstest.Rev(50) {
		t.Fatalf("Run: %v", err)
	}

	cfg.ContinueAfterCompaction = true
	b, _ = bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
	n := 0
	for it, err := range b.Published(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; it.Rev == 100 {
			break
		}
	}
	natstest.CheckRange(t, natstest.Revisions(t, js, wire.DefaultStream), 51, 100)
	str, _ := js.Stream(ctx, wire.DefaultStream)
	m, _ := str.GetMsg(ctx, 1)
	if m.Header.Get(wire.HeaderPrevRevision) != "50" {
		t.Fatalf("first message after the compaction: previous revision %q", m.Header.Get(wire.HeaderPrevRevision))
	}
}

func TestBridgeStreamMismatch(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 10*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.DefaultStream, Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(js, stream.Source[natstest.Item](natstest.NewFeed()), natstest.Codec{}, testConfig(t, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(ctx); !errors.Is(err, sink.ErrStreamMismatch) {
		t.Fatalf("Run: %v", err)
	}
}

// headBlocker is a source whose head poll (after the zero revision) waits
// until its context is done, telling entered each time it starts.
type headBlocker struct {
	*streamtest.Feed
	entered chan struct{}
}

func (h headBlocker) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[natstest.Item], error) {
	if !after.IsZero() {
		return h.Feed.Poll(ctx, after, limit)
	}
	select {
	case h.entered <- struct{}{}:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return stream.Page[natstest.Item]{}, ctx.Err()
}

// A lease lost while the leader waits on the source (or on the server)
// must make the bridge stand by, not end Run with the lease's
// cancellation.
func TestBridgeLeaseLostWhileBlockedStandsBy(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	src := headBlocker{Feed: natstest.NewFeed(), entered: make(chan struct{})}
	cfg := testConfig(t, "b")
	cfg.Start = nil // ask the source's head
	b, err := bridge.New(js, stream.Source[natstest.Item](src), natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-src.entered

	// Another holder takes the key: the next renewal loses the lease.
	kv, err := js.KeyValue(ctx, bridge.DefaultLockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, wire.DefaultStream, []byte(`{"id":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after losing the lease; want it to stand by", err)
	case <-src.entered: // leading again once the intruder's key expired
	case <-time.After(10 * time.Second):
		t.Fatal("the bridge did not lead again within 10s")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
}
