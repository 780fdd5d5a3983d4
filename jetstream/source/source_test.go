package source_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSource(t *testing.T, js jetstream.JetStream, cfg source.Config) *source.Source[natstest.Item] {
	t.Helper()
	src, err := source.New(natstest.Ctx(t, 10*time.Second), js, natstest.Codec{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// collect reads the Source's Watch until it has delivered revision last
// (breaking there, without acknowledging it) or fails. It returns the
// revisions and the error that ended the stream, if any.
func collect(ctx context.Context, t *testing.T, src *source.Source[natstest.Item], last uint64, opts ...stream.Option) ([]uint64, error) {
	t.Helper()
	var revs []uint64
	for it, err := range src.Watch(ctx, opts...) {
		if err != nil {
			return revs, err
		}
		revs = append(revs, it.Rev)
		if it.Rev >= last {
			break
		}
	}
	return revs, nil
}

func TestResumeAfterRevision(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 500, 0)

	src := newSource(t, js, source.Config{})
	for _, after := range []uint64{0, 1, 99, 250, 499} {
		revs, err := collect(ctx, t, src, 500, stream.After(natstest.Rev(after)))
		if err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		natstest.CheckRange(t, revs, after+1, 500)
	}
}

// onFirstPoll calls hook before the first Poll after a revision, that is
// once the engine has learned where it starts.
type onFirstPoll struct {
	*source.Source[natstest.Item]
	once sync.Once
	hook func()
}

func (p *onFirstPoll) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[natstest.Item], error) {
	if !after.IsZero() {
		p.once.Do(p.hook)
	}
	return p.Source.Poll(ctx, after, limit)
}

func TestFromNowSeesOnlyNewChanges(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 100, 0)

	src := newSource(t, js, source.Config{})
	var wg sync.WaitGroup
	defer wg.Wait()
	// Once the watch has learned the head, publish 20 more on another
	// connection, while it waits for them.
	hooked := &onFirstPoll{Source: src, hook: func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			natstest.Publish(t, srv.JetStream(t), sink.Config{}, 101, 120, 0)
		}()
	}}
	start := time.Now()
	var revs []uint64
	for it, err := range src.Acked(stream.Watch[natstest.Item](ctx, hooked, stream.PollInterval(10*time.Millisecond))) {
		if err != nil {
			t.Fatal(err)
		}
		if revs = append(revs, it.Rev); it.Rev == 120 {
			break
		}
	}
	natstest.CheckRange(t, revs, 101, 120)
	// The long poll returns as soon as changes arrive, not after MaxWait.
	if d := time.Since(start); d >= source.DefaultMaxWait {
		t.Errorf("new changes delivered after %v", d)
	}
}

func TestDurableResumesAfterAcknowledged(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 300, 0)
	cfg := source.Config{Durable: "billing"}

	// A new durable starts at the beginning; the change whose loop body
	// breaks (100) is not acknowledged.
	src := newSource(t, js, cfg)
	revs, err := collect(ctx, t, src, 100)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 1, 100)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Poll(ctx, natstest.Rev(1), 10); !errors.Is(err, source.ErrClosed) || !stream.IsFatal(err) {
		t.Fatalf("Poll after Close: %v", err)
	}

	// The next process resumes at 100, on another connection.
	src = newSource(t, srv.JetStream(t), cfg)
	revs, err = collect(ctx, t, src, 200)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 100, 200)
	// A body that acknowledges before breaking moves the floor past it.
	for it, err := range src.Watch(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if it.Rev != 200 {
			t.Fatalf("resumed at %d, want 200", it.Rev)
		}
		if err := src.Ack(it); err != nil {
			t.Fatal(err)
		}
		break
	}
	src.Close()

	src = newSource(t, srv.JetStream(t), cfg)
	revs, err = collect(ctx, t, src, 300)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 201, 300)
	// stream.After moves the durable.
	revs, err = collect(ctx, t, src, 300, stream.After(natstest.Rev(250)))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 251, 300)
}

func TestGapIsCompacted(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	// 1..100, then the bridge skipped 101..150 (CloudTower compacted).
	natstest.Publish(t, js, sink.Config{}, 1, 100, 0)
	natstest.Publish(t, js, sink.Config{}, 151, 200, 150)

	src := newSource(t, js, source.Config{})
	for _, tc := range []struct {
		after, upTo uint64 // delivered: after+1..upTo, then the error
	}{
		{after: 50, upTo: 100},
		{after: 100, upTo: 100},
		{after: 120, upTo: 120},
	} {
		revs, err := collect(ctx, t, src, 200, stream.After(natstest.Rev(tc.after)))
		var ce *stream.CompactedError
		if !errors.As(err, &ce) || ce.Compact != natstest.Rev(150) {
			t.Fatalf("after %d: %v (read %d)", tc.after, err, len(revs))
		}
		natstest.CheckRange(t, revs, tc.after+1, tc.upTo)
	}
	// After the compact revision, all is well.
	revs, err := collect(ctx, t, src, 200, stream.After(natstest.Rev(150)))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 151, 200)
}

func TestDiscardedByLimitsIsCompacted(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	cfg := sink.Config{MaxMsgs: 50}
	natstest.Publish(t, js, cfg, 1, 200, 0) // keeps 151..200

	src := newSource(t, js, source.Config{})
	_, err := collect(ctx, t, src, 200, stream.After(natstest.Rev(10)))
	var ce *stream.CompactedError
	if !errors.As(err, &ce) || ce.Compact != natstest.Rev(150) {
		t.Fatalf("after 10: %v", err)
	}
	// A durable created now starts at the oldest message: nothing missing.
	dsrc := newSource(t, js, source.Config{Durable: "late"})
	revs, err := collect(ctx, t, dsrc, 200)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckRange(t, revs, 151, 200)
}

func TestSubjectFilter(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 90, 0)

	// natstest.Kinds[r%3]: "Vm" for the multiples of 3.
	for _, cfg := range []source.Config{
		{Subjects: []string{"cloudtower.changes.Vm"}},
		{Subjects: []string{"cloudtower.changes.Vm"}, Durable: "vms"},
	} {
		src := newSource(t, js, cfg)
		revs, err := collect(ctx, t, src, 90, stream.FromStart())
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 30 {
			t.Fatalf("%+v: got %d changes, want 30: %v", cfg, len(revs), revs)
		}
		for i, r := range revs {
			if r != uint64(3*(i+1)) {
				t.Fatalf("%+v: change #%d is %d", cfg, i, r)
			}
		}
	}
	// An existing durable's filter cannot be changed.
	if _, err := source.New(ctx, js, natstest.Codec{}, source.Config{Durable: "vms", Subjects: []string{"cloudtower.changes.Host"}}); err == nil {
		t.Fatal("durable with another filter accepted")
	}
}

func TestMissingStream(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Ctx(t, 10*time.Second)
	if _, err := source.New(ctx, srv.JetStream(t), natstest.Codec{}, source.Config{}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("New without a stream: %v", err)
	}
}

// A consumer at the tail of a growing stream receives every message with a
// pending count of 0 (the count leaves out what the client holds): a Poll
// must still return all the messages already delivered, not one per Poll.
func TestPollTakesDeliveredMessagesAtTheTail(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 1, 0)

	nc := srv.Connect(t)
	jsSrc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(t, jsSrc, source.Config{})
	page, err := src.Poll(ctx, natstest.Rev(0), 1) // opens the reader at the tail
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("first poll: %d items, %v", len(page.Items), err)
	}
	// One message at a time, each delivered to the Source's connection
	// before the next is published: each says that nothing is pending.
	const n = 20
	for r := uint64(2); r <= n+1; r++ {
		in := nc.Stats().InMsgs
		natstest.Publish(t, js, sink.Config{}, r, r, 0)
		natstest.Eventually(t, 10*time.Second, "delivery", func() bool { return nc.Stats().InMsgs > in })
	}
	page, err = src.Poll(ctx, natstest.Rev(1), 100)
	if err != nil {
		t.Fatal(err)
	}
	revs := make([]uint64, len(page.Items))
	for i, it := range page.Items {
		revs[i] = it.Rev
	}
	natstest.CheckRange(t, revs, 2, n+1)
	if page.Head != natstest.Rev(n+1) {
		t.Errorf("head %v, want %d", page.Head, n+1)
	}
}

// A steady trickle of changes at the tail (one every 200 µs, faster than
// a Poll waits for the next one) does not hold a page back until it is
// full: a Poll returns about 10 ms after its first change.
func TestPollAtTheTailReturnsPromptly(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 1, 0)
	src := newSource(t, srv.JetStream(t), source.Config{})
	if _, err := src.Poll(ctx, natstest.Rev(0), 1); err != nil { // opens the reader at the tail
		t.Fatal(err)
	}
	pub := sink.NewPublisher(js, natstest.Codec{}, sink.Config{})
	if _, err := pub.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 800
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Microsecond) // pacing the publisher
		defer tick.Stop()
		for r := uint64(2); r <= n+1; r++ {
			<-tick.C
			if err := pub.Publish(ctx, natstest.Item{Rev: r, Key: natstest.Kinds[0]}); err != nil {
				done <- err
				return
			}
		}
		done <- pub.Flush(ctx)
	}()
	page, err := src.Poll(ctx, natstest.Rev(1), 1000)
	if perr := <-done; perr != nil {
		t.Fatal(perr)
	}
	if err != nil || len(page.Items) == 0 || len(page.Items) >= n/2 {
		t.Fatalf("Poll: %d items, %v; want a few of the %d", len(page.Items), err, n)
	}
}

// Plain stream.Watch (no Acked) acknowledges only what package stream's
// contract says was handled: a consumer that breaks in the middle of a
// page, with the next page prefetched, gets every change it did not
// handle again, from the same Source and from a new process.
func TestPlainWatchAcknowledgesOnlyHandled(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.JetStream(t)
	ctx := natstest.Ctx(t, 30*time.Second)
	natstest.Publish(t, js, sink.Config{}, 1, 300, 0)
	cfg := source.Config{Durable: "plain"}

	first := func(src *source.Source[natstest.Item], breakAt uint64) uint64 {
		t.Helper()
		var got uint64
		for it, err := range stream.Watch[natstest.Item](ctx, src, stream.PageSize(10)) {
			if err != nil {
				t.Fatal(err)
			}
			if got == 0 {
				got = it.Rev
			}
			if it.Rev >= breakAt {
				break
			}
		}
		return got
	}
	src := newSource(t, js, cfg)
	if r := first(src, 55); r != 1 {
		t.Fatalf("a new durable started at %d", r)
	}
	if r := first(src, 0); r > 56 {
		t.Fatalf("the same Source resumed at %d, after changes not handled", r)
	}
	src.Close()
	if r := first(newSource(t, srv.JetStream(t), cfg), 0); r > 56 || r < 2 {
		t.Fatalf("the next process resumed at %d, want 2..56", r)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []source.Config{{MaxWait: -1}, {Linger: -1}, {Buffer: -1}} {
		if err := cfg.Validate(); !errors.Is(err, stream.ErrInvalidOption) {
			t.Errorf("%+v: Validate() = %v", cfg, err)
		}
		if _, err := source.New(context.Background(), nil, natstest.Codec{}, cfg); !errors.Is(err, stream.ErrInvalidOption) {
			t.Errorf("%+v: New: %v", cfg, err)
		}
	}
	if err := (source.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}
