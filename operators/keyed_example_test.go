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
)

// keyedVMChange is the item type of HandleByKey's example feed.
type keyedVMChange struct {
	Rev uint64
	VM  string
}

// keyedVMFeed is an in-memory change feed. A poll after its last change ends
// the stream with stream.Fatal(errEndOfKeyedFeed), so that a run ends.
type keyedVMFeed struct {
	mu      sync.Mutex
	changes []keyedVMChange
}

var errEndOfKeyedFeed = errors.New("end of the example feed")

func (f *keyedVMFeed) add(vms ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, vm := range vms {
		f.changes = append(f.changes, keyedVMChange{Rev: uint64(len(f.changes) + 1), VM: vm})
	}
}

func (f *keyedVMFeed) source() stream.Source[keyedVMChange] {
	poll := func(ctx context.Context, after stream.Revision, limit int) (stream.Page[keyedVMChange], error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		a, _ := after.Uint64()
		var p stream.Page[keyedVMChange]
		for _, c := range f.changes {
			if c.Rev > a && len(p.Items) < limit {
				p.Items = append(p.Items, c)
			}
		}
		if len(p.Items) == 0 {
			return p, stream.Fatal(errEndOfKeyedFeed)
		}
		return p, nil
	}
	return stream.NewSource(poll, func(c keyedVMChange) (stream.Revision, error) {
		return stream.RevisionFromUint64(c.Rev), nil
	})
}

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
	feed := &keyedVMFeed{}
	src := feed.source()

	var (
		mu      sync.Mutex
		state   = map[string]uint64{} // VM -> revision applied last
		applied int
		failed  bool
	)
	apply := func(ctx context.Context, c keyedVMChange) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Rev == 5 && !failed {
			failed = true
			return errors.New("database timeout") // retried after 1 ms
		}
		if c.Rev <= state[c.VM] {
			panic("out of order") // never: one VM's changes come in order
		}
		state[c.VM] = c.Rev
		applied++
		return nil
	}
	vm := func(c keyedVMChange) string { return c.VM }
	retry := operators.RetryHandler(stream.RetryPolicy{Min: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2, MaxRetries: 5})

	run := func() {
		// After the saved watermark; from the start on the first run.
		after, err := operators.LoadAfter(ctx, store, stream.FromStart())
		if err != nil {
			panic(err)
		}
		events := stream.Watch(ctx, src, after,
			stream.PollInterval(time.Millisecond), stream.Logger(slog.New(slog.DiscardHandler)))
		marks := operators.HandleByKey(ctx, events, 4, vm, src.Revision, apply, retry)
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
	feed.add("vm-a", "vm-b", "vm-a", "vm-c", "vm-b", "vm-a", "vm-c")
	run()
	feed.add("vm-b", "vm-d", "vm-a")
	run()
	// Output:
	// vm-a:6 vm-b:5 vm-c:7 | applied 7 | checkpoint 7
	// vm-a:10 vm-b:8 vm-c:7 vm-d:9 | applied 3 | checkpoint 10
}
