package bench

// The catch-up over a slow link: the same 100,000-change backlog as
// BenchmarkCatchUp, from the same fake server over loopback HTTP through
// the SDK, but with 5 ms added to every request (fakeserver's Latency, a
// round trip to a real CloudTower and its query):
//
//	impl=serial    stream.Watch over the CloudTower source, defaults
//	impl=parallel  the same with stream.ParallelCatchUp(4)
//
// Run:
//
//	go test -run '^$' -bench CatchUpLatency -benchtime 1x -count 6 ./bench | tee latency.txt
//	benchstat -col /impl latency.txt
//
// A serial client gets at most one page per round trip (here at best
// 1000 changes per 5 ms, 200,000/s); four requests in flight at most four.

import (
	"context"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// requestLatency is the latency the fake server adds to every request.
const requestLatency = 5 * time.Millisecond

func BenchmarkCatchUpLatency(b *testing.B) {
	for _, bc := range []struct {
		impl string
		opts []stream.Option
	}{
		{"serial", nil},
		{"parallel", []stream.Option{stream.ParallelCatchUp(4)}},
	} {
		b.Run("impl="+bc.impl, func(b *testing.B) {
			srv, c := catchUpServer(b)
			srv.SetLatency(requestLatency)
			defer srv.SetLatency(0)
			src := cloudtower.New(c)
			drain(b, backlog, func(ctx context.Context, n int) int {
				got := 0
				for _, err := range src.Watch(ctx, append(bc.opts, stream.FromStart())...) {
					if err != nil {
						b.Fatal(err)
					}
					if got++; got == n {
						break
					}
				}
				return got
			})
		})
	}
}
