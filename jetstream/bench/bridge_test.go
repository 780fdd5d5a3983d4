package bench

// The bridge benchmark: drain the same backlog of realistic changes from
// the fake CloudTower over loopback HTTP with
//
//	impl=direct      stream.Watch over the CloudTower source, as in ../../bench
//	impl=jetstream   a bridge publishing into JetStream (embedded server,
//	                 file storage) and a consumer reading it back with
//	                 package source: the time until the consumer has the
//	                 last change
//	impl=publish     the bridge alone: until JetStream acknowledged the last
//	                 change (counted with Config.OnPublished)
//	impl=consume     a consumer alone, over a stream that holds the backlog
//	impl=raw-publish the ceiling of any publisher on this machine: plain
//	                 nats.go asynchronous publishing (PublishMsgAsync, its
//	                 default window of 4000 outstanding acknowledgements) of the
//	                 same messages, encoded before the timer starts (same
//	                 subjects, bodies and headers, Nats-Msg-Id and expected
//	                 last sequence included), into a stream of the same
//	                 configuration, until the last acknowledgement
//
// Run (about a minute):
//
//	cd jetstream && go test -run '^$' -bench Bridge -benchtime 3x -count 3 ./bench | tee bridge.txt
//	benchstat -col /impl bridge.txt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/jetstream/wire"
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

	b.Run("impl=direct", func(b *testing.B) {
		run(b, func(ctx context.Context) {
			got := 0
			for _, err := range src.Watch(ctx, stream.FromStart()) {
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
			stop := startBridge(ctx, b, js, src, cfg, nil)
			defer stop()
			consume(ctx, b, js, cfg.Stream)
		})
	})
	b.Run("impl=publish", func(b *testing.B) {
		run(b, func(ctx context.Context) {
			cfg := newStream(b, js, "PUB")
			// Config.OnPublished counts the acknowledged messages.
			acked := make(chan struct{})
			var n atomic.Int64
			stop := startBridge(ctx, b, js, src, cfg, func(k int) {
				if n.Add(int64(k)) == backlog {
					close(acked)
				}
			})
			defer stop()
			select {
			case <-acked:
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		})
	})
	b.Run("impl=raw-publish", func(b *testing.B) {
		msgs := encodeBacklog(b, src)
		run(b, func(ctx context.Context) {
			cfg := newStream(b, js, "RAW")
			if _, err := sink.EnsureStream(ctx, js, cfg); err != nil {
				b.Fatal(err)
			}
			rawPublish(ctx, b, js, cfg, msgs)
		})
	})
	b.Run("impl=consume", func(b *testing.B) {
		cfg := newStream(b, js, "FULL")
		stop := startBridge(b.Context(), b, js, src, cfg, nil)
		consume(b.Context(), b, js, cfg.Stream)
		stop()
		run(b, func(ctx context.Context) {
			consume(ctx, b, js, cfg.Stream)
		})
	})
}

// run runs fn b.N times, each handling the whole backlog, and reports the
// rate, and the CPU time the whole process (the embedded NATS server and
// the fake CloudTower included) spent per change: on a shared machine,
// where the wall time depends on what else runs, cpu-ns/event compares
// implementations more steadily.
func run(b *testing.B, fn func(ctx context.Context)) {
	b.ReportAllocs()
	i := 0
	cpu := time.Duration(0)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
		start := cpuTime()
		fn(ctx)
		cpu += cpuTime() - start
		cancel()
		i++
	}
	b.ReportMetric(float64(backlog*i)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(backlog*i), "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(backlog*i), "cpu-ns/event")
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// startBridge starts a bridge from the source's start into cfg's stream and
// returns the function that stops it. onPublished may be nil.
func startBridge(ctx context.Context, b *testing.B, js jetstream.JetStream, src stream.Source[*models.ResourceChangeEvent], cfg sink.Config, onPublished func(int)) func() {
	br, err := bridge.NewCloudTower(js, src, bridge.Config{Sink: cfg, Start: stream.FromStart(),
		Logger: natstest.Logger(b), OnPublished: onPublished})
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

// rawMsg is a message as a bridge would publish it, with its subject
// relative to the prefix.
type rawMsg struct {
	subject string
	msg     *nats.Msg
}

// encodeBacklog drains the backlog from src and returns the messages a
// bridge starting from revision 0 would publish for it into an empty
// stream, encoded as package sink does.
func encodeBacklog(b *testing.B, src stream.Source[*models.ResourceChangeEvent]) []rawMsg {
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	codec := wire.CloudTower{}
	msgs := make([]rawMsg, 0, backlog)
	prev := "0"
	for ev, err := range stream.Watch(ctx, src, stream.FromStart()) {
		if err != nil {
			b.Fatal(err)
		}
		rev, err := codec.Revision(ev)
		if err != nil {
			b.Fatal(err)
		}
		wm, err := codec.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		m := nats.NewMsg("")
		for k, v := range wm.Header {
			m.Header[k] = v
		}
		rs := rev.String()
		m.Header[wire.HeaderRevision] = []string{rs}
		m.Header[wire.HeaderPrevRevision] = []string{prev}
		m.Header[wire.HeaderMsgID] = []string{rs}
		m.Header[jetstream.ExpectedLastSeqHeader] = []string{strconv.Itoa(len(msgs))}
		m.Data = wm.Data
		msgs = append(msgs, rawMsg{subject: wm.Subject, msg: m})
		prev = rs
		if len(msgs) == backlog {
			break
		}
	}
	return msgs
}

// rawPublish publishes msgs into cfg's (new) stream with PublishMsgAsync
// and waits for every acknowledgement. Setting the stream's subjects and
// name is the only work left for the timed region.
func rawPublish(ctx context.Context, b *testing.B, js jetstream.JetStream, cfg sink.Config, msgs []rawMsg) {
	prefix := cfg.Prefix + "."
	name := []string{cfg.Stream}
	// Wait as long as it takes when the window of outstanding
	// acknowledgements is full (the default, 200 ms, fails on a loaded
	// machine); one option per message, as the bridge's publisher has.
	opts := []jetstream.PublishOpt{jetstream.WithStallWait(time.Minute)}
	for _, rm := range msgs {
		m := rm.msg
		m.Subject = prefix + rm.subject
		m.Header[jetstream.ExpectedStreamHeader] = name
		if _, err := js.PublishMsgAsync(m, opts...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
}

// consume reads cfg's stream from its start until it has the whole
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
	// A consumer at the tail of a stream a bridge is filling catches up now
	// and then; with Watch's default PollInterval (1 s) each time costs a
	// second of sleep. The long poll makes a short interval free: as
	// ctwatch --from-nats, 10 ms.
	for _, err := range s.Watch(ctx, stream.FromStart(), stream.PollInterval(10*time.Millisecond)) {
		if err != nil {
			b.Fatal(err)
		}
		if got++; got == backlog {
			break
		}
	}
}
