package operators_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
)

// Change is the item type of the examples' in-memory feed.
type Change struct {
	Rev  uint64
	Kind string // "vm", "host", ...
	ID   string
}

var errEndOfFeed = errors.New("end of the example feed")

// exampleSource serves changes as a stream.Source; after the last one it
// ends the stream with stream.Fatal(errEndOfFeed). failAfter, when not
// zero, makes the polls after that revision fail a few times first.
func exampleSource(changes []Change, failAfter uint64) stream.Source[Change] {
	var mu sync.Mutex
	failures := 0
	poll := func(ctx context.Context, after stream.Revision, limit int) (stream.Page[Change], error) {
		a, _ := after.Uint64()
		mu.Lock()
		if failAfter != 0 && a == failAfter && failures < 2 {
			failures++
			mu.Unlock()
			return stream.Page[Change]{}, errors.New("connection reset")
		}
		mu.Unlock()
		var p stream.Page[Change]
		p.Head = stream.RevisionFromUint64(changes[len(changes)-1].Rev)
		for _, c := range changes {
			if c.Rev > a && len(p.Items) < limit {
				p.Items = append(p.Items, c)
			}
		}
		if len(p.Items) == 0 {
			return p, stream.Fatal(errEndOfFeed)
		}
		return p, nil
	}
	return stream.NewSource(poll, func(c Change) (stream.Revision, error) {
		return stream.RevisionFromUint64(c.Rev), nil
	})
}

var demo = []Change{
	{1, "vm", "vm-a"}, {2, "host", "h-1"}, {3, "vm", "vm-b"}, {4, "vm", "vm-a"},
	{5, "vm", "vm-c"}, {6, "host", "h-1"}, {7, "vm", "vm-b"},
}

// The stream options of the examples: from the first change, quiet, and a
// short poll interval (the feed's end is noticed one interval after its
// last change).
var (
	fromStart = stream.FromStart()
	quiet     = stream.Logger(slog.New(slog.DiscardHandler))
	fast      = stream.PollInterval(time.Millisecond)
	opts      = []stream.Option{fromStart, quiet, fast}
)

func isVM(c Change) bool { return c.Kind == "vm" }

func ExampleFilter() {
	ctx := context.Background()
	for c, err := range operators.Filter(stream.Watch(ctx, exampleSource(demo, 0), opts...), isVM) {
		if err != nil {
			fmt.Println("end:", errors.Is(err, errEndOfFeed))
			break
		}
		fmt.Println(c.Rev, c.ID)
	}
	// Output:
	// 1 vm-a
	// 3 vm-b
	// 4 vm-a
	// 5 vm-c
	// 7 vm-b
	// end: true
}

func ExampleMap() {
	ctx := context.Background()
	ids := operators.Map(stream.Watch(ctx, exampleSource(demo, 0), opts...),
		func(c Change) string { return c.Kind + "/" + c.ID })
	for id, err := range ids {
		if err != nil {
			break
		}
		fmt.Print(id, " ")
	}
	fmt.Println()
	// Output:
	// vm/vm-a host/h-1 vm/vm-b vm/vm-a vm/vm-c host/h-1 vm/vm-b
}

func ExampleBatch() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the reading goroutine, also after a break
	events := stream.Watch(ctx, exampleSource(demo, 0), opts...)
	for batch, err := range operators.Batch(ctx, events, 3, 100*time.Millisecond) {
		if err != nil {
			fmt.Println("end:", errors.Is(err, errEndOfFeed))
			break
		}
		var revs []uint64
		for _, c := range batch {
			revs = append(revs, c.Rev)
		}
		fmt.Println(revs)
	}
	// Output:
	// [1 2 3]
	// [4 5 6]
	// [7]
	// end: true
}

func ExampleCoalesceByKey() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := stream.Watch(ctx, exampleSource(demo, 0), opts...)
	// A reconciler that needs only the latest change per object, at most
	// once a second. Here the feed ends at once, which flushes the window.
	latest := operators.CoalesceByKey(ctx, events, func(c Change) string { return c.ID }, time.Second)
	for c, err := range latest {
		if err != nil {
			fmt.Println("end:", errors.Is(err, errEndOfFeed))
			break
		}
		fmt.Println(c.Rev, c.ID)
	}
	// Output:
	// 4 vm-a
	// 5 vm-c
	// 6 h-1
	// 7 vm-b
	// end: true
}

func ExampleResume() {
	ctx := context.Background()
	// The polls after revision 3 fail twice: the stream gives up after one
	// retry (MaxRetries(1)), and Resume reopens it after revision 3.
	src := exampleSource(demo, 3)
	seq := operators.Resume(ctx, src,
		operators.WithStreamOptions(stream.FromStart(), quiet, fast, stream.PageSize(3), stream.MaxRetries(1),
			stream.Backoff(time.Millisecond, time.Millisecond)),
		operators.ReopenBackoff(stream.RetryPolicy{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: stream.NoRetryLimit}),
		operators.OnReopen(func(err error) { fmt.Println("reopening:", errors.Is(err, stream.ErrRetriesExhausted)) }),
		operators.OnCompaction(operators.Restart))
	for c, err := range seq {
		if errors.Is(err, operators.ErrGap) {
			// Not final: re-list the state you mirror, then go on.
			var gap *operators.GapError
			errors.As(err, &gap)
			fmt.Println("gap after", gap.From, "up to", gap.To, ": re-list")
			continue
		}
		if err != nil {
			fmt.Println("end:", errors.Is(err, errEndOfFeed))
			break
		}
		fmt.Print(c.Rev, " ")
	}
	// Output:
	// 1 2 3 reopening: true
	// 4 5 6 7 end: true
}

func ExampleCheckpoint() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "checkpoint-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := operators.NewFileStore(filepath.Join(dir, "checkpoint.json"))
	src := exampleSource(demo, 0)

	// One run of a consumer: start after the stored revision, record each
	// change once handled.
	run := func(stopAt uint64) {
		// Nothing stored yet (the first run): from the beginning.
		after, err := operators.LoadAfter(ctx, store, stream.FromStart())
		if err != nil {
			panic(err) // a corrupt file: errors.Is(err, operators.ErrCorruptCheckpoint)
		}
		events := stream.Watch(ctx, src, after, quiet, fast)
		for c, err := range operators.Checkpoint(ctx, events, store, src.Revision, operators.SaveEvery(2)) {
			if err != nil {
				break // the last finished revision is saved before the error
			}
			if c.Rev == stopAt {
				break // not handled: it comes again in the next run
			}
			fmt.Print(c.Rev, " ")
		}
		rev, _ := store.Load(ctx)
		fmt.Println("| checkpoint", rev)
	}
	run(4) // stops at 4
	run(0) // restarts after 3
	b, _ := os.ReadFile(store.Path())
	fmt.Println(strings.Split(string(b), `,"updated"`)[0] + "...")
	// Output:
	// 1 2 3 | checkpoint 3
	// 4 5 6 7 | checkpoint 7
	// {"version":1,"revision":"7"...
}

// A consumer that writes buffered output checkpoints what it has written:
// BeforeSave flushes the output before each save, so the checkpoint never
// runs ahead of it, and SaveWhenIdle saves once the stream goes quiet, not
// only every SaveEvery changes.
func ExampleCheckpoint_flushBeforeSave() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the goroutine SaveWhenIdle reads the stream in
	dir, err := os.MkdirTemp("", "checkpoint-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := operators.NewFileStore(filepath.Join(dir, "checkpoint.json"))
	src := exampleSource(demo, 0)

	out := bufio.NewWriter(os.Stdout)
	after, err := operators.LoadAfter(ctx, store, stream.FromStart())
	if err != nil {
		panic(err)
	}
	events := stream.Watch(ctx, src, after, quiet, fast)
	for c, err := range operators.Checkpoint(ctx, events, store, src.Revision,
		operators.SaveWhenIdle(20*time.Millisecond),
		operators.BeforeSave(func(context.Context) error { return out.Flush() })) {
		if err != nil {
			break // the output is flushed and the last change saved before the error
		}
		fmt.Fprintln(out, c.Rev, c.ID)
	}
	rev, _ := store.Load(ctx)
	fmt.Println("checkpoint", rev)
	// Output:
	// 1 vm-a
	// 2 h-1
	// 3 vm-b
	// 4 vm-a
	// 5 vm-c
	// 6 h-1
	// 7 vm-b
	// checkpoint 7
}

func ExampleBroadcast() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := exampleSource(demo, 0)
	release := make(chan struct{})
	b := operators.Broadcast(ctx, func(ctx context.Context) iter.Seq2[Change, error] {
		<-release // for a deterministic example: wait until both have joined
		return stream.Watch(ctx, src, opts...)
	}, operators.Buffer(16), operators.WhenSlow(operators.DropSlow))

	var wg sync.WaitGroup
	results := make([][]string, 2)
	for i, kind := range []string{"vm", "host"} {
		wg.Go(func() {
			for c, err := range operators.Filter(b.Subscribe(ctx), func(c Change) bool { return c.Kind == kind }) {
				if err != nil {
					results[i] = append(results[i], "end")
					return
				}
				results[i] = append(results[i], c.ID)
			}
		})
	}
	if err := b.WaitSubscribers(ctx, 2); err != nil {
		panic(err)
	}
	close(release)
	wg.Wait()
	fmt.Println(results[0])
	fmt.Println(results[1])
	// Output:
	// [vm-a vm-b vm-a vm-c vm-b end]
	// [h-1 h-1 end]
}
