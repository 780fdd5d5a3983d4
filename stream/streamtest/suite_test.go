package streamtest_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// feedHarness runs the suite over a Feed: the way any Source's test
// implements streamtest.Harness.
type feedHarness struct{ f *streamtest.Feed }

func (h feedHarness) Source() stream.Source[streamtest.Item] { return h.f }

func (h feedHarness) Append(n int) []stream.Revision {
	head := h.f.Head()
	h.f.Append(n)
	revs := make([]stream.Revision, n)
	for i := range revs {
		revs[i] = streamtest.Rev(head + uint64(i) + 1)
	}
	return revs
}

func (h feedHarness) Compact(upTo stream.Revision) {
	n, _ := upTo.Uint64()
	h.f.Compact(n)
}

func (h feedHarness) FailNext() { h.f.FailNext() }

func newFeedHarness(t *testing.T) streamtest.Harness[streamtest.Item] {
	return feedHarness{&streamtest.Feed{}}
}

func TestSourceOverFeed(t *testing.T) {
	streamtest.TestSource(t, newFeedHarness)
}

func TestSourceInBubbleOverFeed(t *testing.T) {
	streamtest.TestSourceInBubble(t, newFeedHarness)
}

// The suite passes with parallel catch-up too: the options given to
// TestSource reach every watch.
func TestSourceOverFeedParallel(t *testing.T) {
	streamtest.TestSource(t, newFeedHarness, stream.ParallelCatchUp(4))
	streamtest.TestSourceInBubble(t, newFeedHarness, stream.ParallelCatchUp(4))
}

// Under every server behaviour a Feed mimics, and with a fault every few
// polls, the engine still passes the suite.
func TestSourceOverOddFeeds(t *testing.T) {
	for name, b := range map[string]streamtest.Behavior{
		"inclusive": {Inclusive: true},
		"shuffled":  {Shuffle: true},
		"repeated":  {RepeatEvery: 3},
		"all":       {Inclusive: true, Shuffle: true, RepeatEvery: 4},
		"oldest":    {OldestOnAbsent: true},
	} {
		for _, n := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/parallel=%d", name, n), func(t *testing.T) {
				streamtest.TestSourceInBubble(t, func(t *testing.T) streamtest.Harness[streamtest.Item] {
					f := &streamtest.Feed{}
					f.SetBehavior(b)
					return feedHarness{f}
				}, stream.ParallelCatchUp(n))
			})
		}
	}
}
