package bench

// The metrics overhead: the catch-up of BenchmarkCatchUp (the same
// 100,000-change backlog from the fake server over loopback HTTP, stream
// defaults) without and with promwatch's collectors:
//
//	impl=plain    the CloudTower source, stream.Watch, nothing else
//	impl=metrics  the same with promwatch: OnPoll and OnWarning hooks, and
//	              every change counted by cloudtowerprom.Events
//
// and, to isolate the per-change cost, BenchmarkMetricsEvents: a sequence
// of CloudTower changes already in memory, ranged over plainly and through
// cloudtowerprom.Events.
//
// Run:
//
//	go test -run '^$' -bench 'Metrics(Overhead|Events)' -count 10 ./bench | tee metrics.txt
//	benchstat -col /impl metrics.txt

import (
	"context"
	"iter"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/promwatch/cloudtowerprom"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

func BenchmarkMetricsOverhead(b *testing.B) {
	watch := func(b *testing.B, wrap func(ctx context.Context, src *cloudtower.Source) iter.Seq2[*models.ResourceChangeEvent, error]) {
		_, c := catchUpServer(b)
		src := cloudtower.New(c)
		drain(b, backlog, func(ctx context.Context, n int) int {
			got := 0
			for _, err := range wrap(ctx, src) {
				if err != nil {
					b.Fatal(err)
				}
				if got++; got == n {
					break
				}
			}
			return got
		})
	}
	b.Run("impl=plain", func(b *testing.B) {
		watch(b, func(ctx context.Context, src *cloudtower.Source) iter.Seq2[*models.ResourceChangeEvent, error] {
			return stream.Watch[*models.ResourceChangeEvent](ctx, src, stream.FromStart())
		})
	})
	b.Run("impl=metrics", func(b *testing.B) {
		watch(b, func(ctx context.Context, src *cloudtower.Source) iter.Seq2[*models.ResourceChangeEvent, error] {
			m, err := promwatch.New(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			opts := append([]stream.Option{stream.FromStart()}, m.Options()...)
			return cloudtowerprom.Events(m, stream.Watch[*models.ResourceChangeEvent](ctx, src, opts...))
		})
	})
}

func BenchmarkMetricsEvents(b *testing.B) {
	srv, _ := catchUpServer(b)
	var evs []*models.ResourceChangeEvent
	for _, p := range rawPages(b, srv)[:1] {
		resp, err := cloudtower.DecodeResponse(p)
		if err != nil {
			b.Fatal(err)
		}
		evs = resp.Data
	}
	seq := func(yield func(*models.ResourceChangeEvent, error) bool) {
		for {
			for _, ev := range evs {
				if !yield(ev, nil) {
					return
				}
			}
		}
	}
	bench := func(b *testing.B, s iter.Seq2[*models.ResourceChangeEvent, error]) {
		b.ReportAllocs()
		n := 0
		for _, err := range s {
			if err != nil {
				b.Fatal(err)
			}
			if n++; n == b.N {
				break
			}
		}
	}
	b.Run("impl=plain", func(b *testing.B) { bench(b, seq) })
	b.Run("impl=metrics", func(b *testing.B) {
		m, err := promwatch.New(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		bench(b, cloudtowerprom.Events(m, seq))
	})
}
