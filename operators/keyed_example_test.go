package operators_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

var errEndOfKeyedFeed = errors.New("end of the example feed")

// Apply VM changes with 4 workers: the changes of one VM in revision
// order, different VMs in parallel, a failed apply retried. Checkpoint
// saves HandleByKey's watermark, so the second run resumes after
// everything the first one applied.
func ExampleHandleByKey() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keyed-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := operators.NewFileStore(filepath.Join(dir, "checkpoint.json"))
	// An in-memory change feed: Item.Key is the VM. A poll after its
	// last change ends the stream, so that a run ends.
	feed := &streamtest.Feed{}
	feed.EndWhenDrained(stream.Fatal(errEndOfKeyedFeed))
	add := func(vms ...string) {
		for _, vm := range vms {
			feed.Add(streamtest.Item{Key: vm})
		}
	}

	var (
		mu      sync.Mutex
		state   = map[string]uint64{} // VM -> revision applied last
		applied int
		failed  bool
	)
	apply := func(ctx context.Context, c streamtest.Item) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Rev == 5 && !failed {
			failed = true
			return errors.New("database timeout") // retried after 1 ms
		}
		if c.Rev <= state[c.Key] {
			panic("out of order") // never: one VM's changes come in order
		}
		state[c.Key] = c.Rev
		applied++
		return nil
	}
	vm := func(c streamtest.Item) string { return c.Key }
	retry := operators.RetryHandler(stream.RetryPolicy{Min: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2, MaxRetries: 5})

	run := func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops HandleByKey's reading goroutine, whatever ends the loop
		// After the saved watermark; from the start on the first run.
		after, err := operators.LoadAfter(ctx, store, stream.FromStart())
		if err != nil {
			panic(err)
		}
		events := stream.Watch(ctx, feed, after,
			stream.PollInterval(time.Millisecond), stream.Logger(slog.New(slog.DiscardHandler)))
		marks := operators.HandleByKey(ctx, events, 4, vm, feed.Revision, apply, retry)
		for _, err := range operators.Checkpoint(ctx, marks, store, operators.WatermarkRevision) {
			if err != nil {
				break // the end of the feed: the watermark is saved before it
			}
		}
		checkpoint, _ := store.Load(ctx)
		mu.Lock()
		defer mu.Unlock()
		for _, vm := range slices.Sorted(maps.Keys(state)) {
			fmt.Printf("%s:%d ", vm, state[vm])
		}
		fmt.Printf("| applied %d | checkpoint %s\n", applied, checkpoint)
		applied = 0
	}
	add("vm-a", "vm-b", "vm-a", "vm-c", "vm-b", "vm-a", "vm-c")
	run()
	add("vm-b", "vm-d", "vm-a")
	run()
	// Output:
	// vm-a:6 vm-b:5 vm-c:7 | applied 7 | checkpoint 7
	// vm-a:10 vm-b:8 vm-c:7 vm-d:9 | applied 3 | checkpoint 10
}
