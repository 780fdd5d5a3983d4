package bench

// The bridge benchmark: drain the same backlog of realistic changes from
// the fake CloudTower over loopback HTTP with
//
//	impl=direct      stream.Watch over the CloudTower source, as in ../../bench
//	impl=jetstream   a bridge publishing into JetStream (embedded server,
//	                 file storage) and a consumer reading it back with
//	                 package source: the time until the consumer has the
//	                 last change
//	impl=publish     the bridge alone: until JetStream acknowledged the last change
//	impl=consume     a consumer alone, over a stream that holds the backlog
//
// Run (about a minute):
//
//	cd jetstream && go test -run '^$' -bench Bridge -benchtime 3x -count 3 ./bench | tee bridge.txt
//	benchstat -col /impl bridge.txt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const backlog = 100_000

func BenchmarkBridge(b *testing.B) {
	_, client := natstest.CloudTower(b, backlog)
	src := cloudtower.New(client)
	srv := natstest.Start(b)
	js := srv.JetStream(b)
	zero := stream.RevisionFromUint64(0)

	b.Run("impl=direct", func(b *testing.B) {
		run(b, func(ctx context.Context) {
			got := 0
			for _, err := range cloudtower.Watch(ctx, src, stream.After(zero)) {
				if err != nil {
					b.Fatal(err)
				}
				if got++; got == backlog {
					break
				}
			}
		})
	})
	b.Run("impl=jetstream", func(b *testing.B) {
		run(b, func(ctx context.Context) {
			cfg := newStream(b, js, "E2E")
			stop := startBridge(ctx, b, js, src, cfg)
			defer stop()
			consume(ctx, b, js, cfg.Stream)
		})
	})
	b.Run("impl=publish", func(b *testing.B) {
		run(b, func(ctx context.Context) {
			cfg := newStream(b, js, "PUB")
			stop := startBridge(ctx, b, js, src, cfg)
			defer stop()
			// Polling the stream's state, between the bridge's own requests.
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				if s, err := js.Stream(ctx, cfg.Stream); err == nil && s.CachedInfo().State.Msgs >= backlog {
					return
				}
				select {
				case <-t.C:
				case <-ctx.Done():
					b.Fatal(ctx.Err())
				}
			}
		})
	})
	b.Run("impl=consume", func(b *testing.B) {
		cfg := newStream(b, js, "FULL")
		stop := startBridge(b.Context(), b, js, src, cfg)
		consume(b.Context(), b, js, cfg.Stream)
		stop()
		run(b, func(ctx context.Context) {
			consume(ctx, b, js, cfg.Stream)
		})
	})
}

// run runs fn b.N times, each handling the whole backlog, and reports the
// rate.
func run(b *testing.B, fn func(ctx context.Context)) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
		fn(ctx)
		cancel()
		i++
	}
	b.ReportMetric(float64(backlog*i)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(backlog*i), "ns/event")
}

// streams numbers the streams of the whole run: with -count, the
// benchmark functions run again and must not find the last run's streams.
var streams atomic.Int64

// newStream returns the configuration of a new stream named after kind, and
// deletes the stream when the benchmark (or, from run's fn, the iteration)
// ends, outside the timed region, so that the server's file store does not
// grow from run to run.
func newStream(b *testing.B, js jetstream.JetStream, kind string) sink.Config {
	n := streams.Add(1)
	cfg := sink.Config{Stream: fmt.Sprintf("%s_%d", kind, n), Prefix: fmt.Sprintf("%s.%d", strings.ToLower(kind), n)}
	b.Cleanup(func() { deleteStream(b, js, cfg.Stream) })
	return cfg
}

func deleteStream(b *testing.B, js jetstream.JetStream, name string) {
	err := js.DeleteStream(context.Background(), name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		b.Error(err)
	}
}

// startBridge starts a bridge from revision 0 into cfg's stream and
// returns the function that stops it.
func startBridge(ctx context.Context, b *testing.B, js jetstream.JetStream, src stream.Source[*models.ResourceChangeEvent], cfg sink.Config) func() {
	br, err := bridge.NewCloudTower(js, src, bridge.Config{Sink: cfg, Start: stream.RevisionFromUint64(0),
		Logger: natstest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	return func() {
		cancel()
		<-done
	}
}

// consume reads cfg's stream from revision 0 until it has the whole
// backlog.
func consume(ctx context.Context, b *testing.B, js jetstream.JetStream, name string) {
	var (
		s   *source.Source[*models.ResourceChangeEvent]
		err error
	)
	// The bridge creates the stream once it leads.
	for s == nil {
		s, err = source.NewCloudTower(ctx, js, source.Config{Stream: name})
		if err != nil {
			if ctx.Err() != nil {
				b.Fatal(err)
			}
			t := time.NewTimer(time.Millisecond)
			<-t.C
		}
	}
	defer s.Close()
	got := 0
	for _, err := range s.Watch(ctx, stream.After(stream.RevisionFromUint64(0))) {
		if err != nil {
			b.Fatal(err)
		}
		if got++; got == backlog {
			break
		}
	}
}
