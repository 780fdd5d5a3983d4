package streamtest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

// A Feed is a Source for tests: here it fails one poll, which the engine
// retries, and ends once drained.
func ExampleFeed() {
	f := streamtest.NewFeed(5)
	f.FailNext()
	f.EndWhenDrained(stream.Fatal(errors.New("end of the test feed")))

	for it, err := range f.Watch(context.Background(), stream.FromStart(), stream.Backoff(1, 1),
		stream.Logger(slog.New(slog.DiscardHandler)),
		stream.OnWarning(func(err error) { fmt.Println("retried:", err) })) {
		if err != nil {
			fmt.Println("ended:", err)
			break
		}
		fmt.Println(it.Rev, it.Key, it.Value)
	}
	fmt.Println(len(f.Polls()), "polls")
	// Output:
	// retried: streamtest: injected fault
	// 1 b v1
	// 2 c v2
	// 3 a v3
	// 4 b v4
	// 5 c v5
	// ended: end of the test feed
	// 3 polls
}
