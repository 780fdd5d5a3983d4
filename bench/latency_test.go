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
//
// Besides the rate, each sub-benchmark reports req/page (the fake
// server's resource-change requests per page of 1000: above 1, the polls
// a wrong estimate wasted or the consumer's break cancelled), ms/poll (a
// poll's mean duration, request and decoding, over the polls whose page
// was accepted) and polls-active (their summed durations over the
// elapsed time: how many polls were under way on average). events/s is
// about 1000 × polls-active / ms/poll, so parallel/serial splits into
// how many more polls are under way and how much slower each one is.

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
			srv.ResetStats()
			drains, polls := 0, 0
			var polling time.Duration // summed over the polls, from call to return
			onPoll := stream.OnPoll(func(pi stream.PollInfo) { polls++; polling += pi.Duration })
			defer func() {
				if drains == 0 || polls == 0 {
					return
				}
				// Requests per page of 1000: 1 + the polls that a wrong
				// estimate wasted, or that were cancelled at the end.
				b.ReportMetric(float64(srv.Stats().ResourceChanges)/float64(drains*backlog/1000), "req/page")
				// How long a poll takes (request and decoding), and how
				// many are under way on average: events/s is about
				// 1000 × polls-active / ms/poll.
				b.ReportMetric(float64(polling.Microseconds())/1e3/float64(polls), "ms/poll")
				b.ReportMetric(float64(polling)/float64(b.Elapsed()), "polls-active")
			}()
			drain(b, backlog, func(ctx context.Context, n int) int {
				drains++
				got := 0
				for _, err := range src.Watch(ctx, append(bc.opts, stream.FromStart(), onPoll)...) {
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
