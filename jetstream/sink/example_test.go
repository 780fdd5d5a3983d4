package sink_test

import (
	"fmt"
	"time"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/stream"
)

// A Publisher reads the stream's position back, then appends after it.
func ExamplePublisher() {
	js, ctx, stop := natstest.ForExample() // an embedded nats-server -js
	defer stop()

	cfg := sink.Config{MaxAge: 24 * time.Hour}
	if _, err := sink.EnsureStream(ctx, js, cfg); err != nil {
		panic(err)
	}
	pub := sink.NewPublisher(js, natstest.Codec{}, cfg)
	pos, err := pub.Sync(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("empty stream:", pos.Revision.IsZero())
	pub.Restart(stream.RevisionFromUint64(41)) // the feed starts after 41
	for r := uint64(42); r <= 44; r++ {
		if err := pub.Publish(ctx, natstest.Item{Rev: r, Key: "Vm"}); err != nil {
			panic(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		panic(err)
	}
	fmt.Println("acknowledged:", pub.Acked().Revision, "at sequence", pub.Acked().Sequence)
	// Output:
	// empty stream: true
	// acknowledged: 44 at sequence 3
}
