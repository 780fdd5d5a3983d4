package stream_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// change is the item type of the in-memory feed.
type change = streamtest.Item

func newFeed(n int) *streamtest.Feed { return streamtest.NewFeed(n) }

// since returns the revisions after rev, as the consumer should see them.
func since(f *streamtest.Feed, rev uint64) []string {
	var out []string
	for _, it := range f.Items(rev) {
		out = append(out, strconv.FormatUint(it.Rev, 10))
	}
	return out
}

// Faults for Feed.Inject.
var errFlaky = errors.New("flaky: 503 service unavailable")

func failWith(err error) streamtest.Fault { return streamtest.FailWith(err) }

func hang(ctx context.Context) error { return streamtest.Hang(ctx) }

// collect drains seq, returning the revisions and the final error.
func collect(seq func(func(change, error) bool), max int) (revs []string, err error) {
	for c, e := range seq {
		if e != nil {
			return revs, e
		}
		revs = append(revs, strconv.FormatUint(c.Rev, 10))
		if len(revs) == max {
			break
		}
	}
	return revs, nil
}

func quiet() stream.Option {
	return stream.Logger(slogDiscard)
}
