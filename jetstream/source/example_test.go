package source_test

import (
	"fmt"

	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/stream"
)

// A consumer on the far side of a bridge resumes after the last revision
// it handled, with the same stream.Watch loop as against CloudTower.
func Example() {
	js, ctx, stop := natstest.ForExample() // an embedded nats-server -js
	defer stop()

	// What a bridge would have published: revisions 1 to 5.
	if _, err := sink.EnsureStream(ctx, js, sink.Config{}); err != nil {
		panic(err)
	}
	pub := sink.NewPublisher(js, natstest.Codec{}, sink.Config{})
	pub.Sync(ctx)
	pub.Restart(stream.RevisionFromUint64(0))
	for r := uint64(1); r <= 5; r++ {
		pub.Publish(ctx, natstest.Item{Rev: r, Key: "Vm"})
	}
	if err := pub.Flush(ctx); err != nil {
		panic(err)
	}

	src, err := source.New(ctx, js, natstest.Codec{}, source.Config{})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	for it, err := range src.Watch(ctx, source.After(stream.RevisionFromUint64(2))) {
		if err != nil {
			panic(err)
		}
		fmt.Println("revision", it.Rev, it.Key)
		if it.Rev == 5 {
			break
		}
	}
	// Output:
	// revision 3 Vm
	// revision 4 Vm
	// revision 5 Vm
}
