package bridge_test

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// A bridge publishes a feed (here an in-memory one; bridge.NewCloudTower
// for CloudTower) from its start, and a second run resumes after what the
// first published.
func ExampleBridge_Published() {
	js, ctx, stop := natstest.ForExample() // an embedded nats-server -js
	defer stop()

	feed := natstest.NewFeed()
	feed.Append(3)
	cfg := bridge.Config{Start: stream.FromStart(), Logger: slog.New(slog.DiscardHandler)}
	for run := 1; run <= 2; run++ {
		b, err := bridge.New(js, stream.Source[natstest.Item](feed), natstest.Codec{}, cfg)
		if err != nil {
			panic(err)
		}
		for it, err := range b.Published(ctx) {
			if err != nil {
				panic(err)
			}
			fmt.Println("run", run, "published", it.Rev)
			if it.Rev == feed.Head() {
				break // stops the bridge and hands the lock over
			}
		}
		feed.Append(2)
	}
	pos, _ := sink.ReadLast(ctx, js, wire.DefaultStream, wire.DefaultPrefix+".>")
	fmt.Println("last on the stream:", pos.Revision, "at sequence", pos.Sequence)
	// Output:
	// run 1 published 1
	// run 1 published 2
	// run 1 published 3
	// run 2 published 4
	// run 2 published 5
	// last on the stream: 5 at sequence 5
}

// Validate checks a configuration before anything contacts a server; its
// errors wrap stream.ErrInvalidOption.
func ExampleConfig_Validate() {
	err := bridge.Config{Lock: bridge.LockConfig{TTL: time.Millisecond}}.Validate()
	fmt.Println(errors.Is(err, stream.ErrInvalidOption))
	fmt.Println(err)
	// Output:
	// true
	// bridge: invalid option: lock TTL 1ms below 100ms
}
