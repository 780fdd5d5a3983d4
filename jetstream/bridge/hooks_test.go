package bridge_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]bridge.Config{
		"prefix":  {Sink: sink.Config{Prefix: "a.*"}},
		"sink":    {Sink: sink.Config{MaxPending: -1}},
		"ttl":     {Lock: bridge.LockConfig{TTL: time.Millisecond}},
		"renew":   {Lock: bridge.LockConfig{TTL: time.Second, Renew: 2 * time.Second}},
		"retry":   {Retry: stream.RetryPolicy{Min: time.Second, Max: time.Millisecond}},
		"watch":   {Watch: []stream.Option{stream.PageSize(1)}},
		"start":   {Start: stream.After(stream.Revision{})},
		"poll":    {Lock: bridge.LockConfig{Poll: -time.Second}},
		"replica": {Lock: bridge.LockConfig{Replicas: -1}},
	} {
		err := cfg.Validate()
		if !errors.Is(err, stream.ErrInvalidOption) {
			t.Errorf("%s: Validate() = %v, want an error wrapping stream.ErrInvalidOption", name, err)
		}
		if _, nerr := bridge.New(nil, stream.Source[natstest.Item](natstest.NewFeed()), natstest.Codec{}, cfg); !errors.Is(nerr, stream.ErrInvalidOption) {
			t.Errorf("%s: New: %v", name, nerr)
		}
	}
	if err := (bridge.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

// hooks records the bridge's hook calls.
type hooks struct {
	published atomic.Int64
	mu        sync.Mutex
	leader    []bool
	errs      []error
}

func (h *hooks) install(cfg *bridge.Config) {
	cfg.OnPublished = func(n int) {
		if n < 1 {
			panic("OnPublished with n < 1")
		}
		h.published.Add(int64(n))
	}
	cfg.OnLeader = func(l bool) {
		h.mu.Lock()
		h.leader = append(h.leader, l)
		h.mu.Unlock()
	}
	cfg.OnPublishError = func(err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	}
}

func (h *hooks) snapshot() ([]bool, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.leader...), append([]error(nil), h.errs...)
}

// OnPublished counts every acknowledged message, also the last ones of a
// feed that went quiet (no further Publish to collect them); OnLeader
// tells the leadership's start and end.
func TestHooksPublishedAndLeader(t *testing.T) {
	srv := natstest.Start(t)
	feed := natstest.NewFeed()
	feed.Append(1234)
	cfg := testConfig(t, "b")
	var h hooks
	h.install(&cfg)
	r := start(t, srv.JetStream(t), feed, cfg)
	natstest.Eventually(t, 20*time.Second, "every change acknowledged", func() bool { return h.published.Load() == 1234 })
	feed.Append(7)
	natstest.Eventually(t, 10*time.Second, "the new changes acknowledged", func() bool { return h.published.Load() == 1241 })
	if err := r.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	leader, errs := h.snapshot()
	// [true false], or more pairs if the lease was lost on a slow machine.
	ok := len(leader) >= 2 && len(leader)%2 == 0
	for i, l := range leader {
		ok = ok && l == (i%2 == 0)
	}
	if !ok {
		t.Errorf("OnLeader calls %v, want [true false]", leader)
	}
	if len(errs) != 0 {
		t.Errorf("OnPublishError calls: %v", errs)
	}
	if n := h.published.Load(); n != 1241 {
		t.Errorf("published %d", n)
	}
}

// A *stream.RetryError of the watch is not final: the bridge reopens and
// publishes everything, reporting each stop to OnPublishError.
func TestRetryErrorOfTheWatchReopens(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	feed := natstest.NewFeed()
	feed.Append(2000)
	feed.FailEvery(4, nil)
	cfg := testConfig(t, "b")
	cfg.Watch = append(cfg.Watch, stream.MaxRetries(0)) // every failure ends the watch
	var h hooks
	h.install(&cfg)
	r := start(t, js, feed, cfg)
	natstest.Eventually(t, 30*time.Second, "every change published", func() bool { return msgs(t, js)() >= 2000 })
	if err := r.stop(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	natstest.CheckRange(t, natstest.Revisions(t, js, wire.DefaultStream), 1, 2000)
	_, errs := h.snapshot()
	if len(errs) == 0 {
		t.Fatal("no OnPublishError call")
	}
	for _, err := range errs {
		var re *stream.RetryError
		if !errors.As(err, &re) {
			t.Errorf("OnPublishError(%v), want a *stream.RetryError", err)
		}
	}
}

// The bridge's own policy bounds its reopenings: once MaxRetries sessions
// in a row have failed, Run returns a *stream.RetryError.
func TestBridgeRetryLimit(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	feed := natstest.NewFeed()
	feed.Append(10)
	feed.FailEvery(1, nil) // every poll fails
	cfg := testConfig(t, "b")
	cfg.Watch = append(cfg.Watch, stream.MaxRetries(0))
	cfg.Retry.MaxRetries = 2
	var h hooks
	h.install(&cfg)
	b, err := bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Run(natstest.Ctx(t, 20*time.Second))
	var re *stream.RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || stream.IsFinal(err) {
		t.Fatalf("Run: %v, want a *stream.RetryError after 3 attempts", err)
	}
	if _, errs := h.snapshot(); len(errs) != 3 {
		t.Errorf("OnPublishError called %d times, want 3", len(errs))
	}
}

// A message on the stream from someone else makes the next publish fail
// its expected sequence (OnPublishError), and the read-back then finds a
// last message that is not in the wire format: final.
func TestForeignMessageIsFinal(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	feed := natstest.NewFeed()
	feed.Append(100)
	cfg := testConfig(t, "b")
	var h hooks
	h.install(&cfg)
	r := start(t, js, feed, cfg)
	natstest.Eventually(t, 20*time.Second, "the backlog published", func() bool { return h.published.Load() == 100 })
	ctx := natstest.Ctx(t, 10*time.Second)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: wire.DefaultPrefix + ".x", Data: []byte("intruder")}); err != nil {
		t.Fatal(err)
	}
	feed.Append(1)
	select {
	case err := <-r.done:
		close(r.done)
		if !errors.Is(err, wire.ErrMessage) {
			t.Fatalf("Run: %v, want wire.ErrMessage", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return")
	}
	// The refused message, then the read-back (unless a lease lost on a
	// slow machine ended the first session: that is not reported).
	_, errs := h.snapshot()
	if len(errs) == 0 || len(errs) > 2 || !errors.Is(errs[len(errs)-1], wire.ErrMessage) {
		t.Fatalf("OnPublishError calls: %v", errs)
	}
}
