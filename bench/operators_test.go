package bench

// The operator benchmarks: the same pipeline written three ways, side by
// side in one run,
//
//	impl=towerwatch  operators.Filter + operators.Map, operators.Batch
//	impl=rxgo        rxgo's Filter + Map, BufferWithTimeOrCount
//	impl=channels    one goroutine per stage, connected by channels
//
// over 1,000,000 items generated in memory (no I/O, so only the pipeline
// is measured):
//
//	BenchmarkFilterMap  keep the VM changes (half of them), map each to its
//	                    revision times two, sum
//	BenchmarkBatch      batches of at most 100, or fewer once 10 ms passed
//	                    since the first item of a batch; count the items
//	BenchmarkCoalesce   the newest item per key (10,000 keys) within 10 ms
//	                    windows; sum the newest revision per key (towerwatch
//	                    and channels only: rxgo has no such operator)
//
// Each reports ns/item and allocs/item. Run (about a minute):
//
//	go test -run '^$' -bench 'FilterMap|Batch|Coalesce' -count 6 ./bench | tee ops.txt
//	benchstat -col /impl ops.txt
//
// rxgo and the channels use buffered channels of chanBuffer items: the
// fastest setting for both, and fair to the goroutine-per-stage designs.

import (
	"context"
	"iter"
	"runtime"
	"testing"
	"time"

	"github.com/reactivex/rxgo/v2"

	"github.com/towerwatch/towerwatch/operators"
)

const (
	pipelineItems = 1_000_000
	batchSize     = 100
	batchWait     = 10 * time.Millisecond
	chanBuffer    = 128
)

// change is the benchmarks' item: a small struct, like the summary of a
// change event that a real pipeline would carry.
type change struct {
	Rev  uint64
	Kind uint8
}

const kindVM = 1

// mkChange returns the i-th item; every other one is a VM change.
func mkChange(i int) change { return change{Rev: uint64(i + 1), Kind: uint8(i % 2)} }

func isVMChange(c change) bool { return c.Kind == kindVM }

func double(c change) uint64 { return c.Rev * 2 }

// wantSum is what BenchmarkFilterMap's pipeline sums to.
func wantSum(n int) uint64 {
	var s uint64
	for i := range n {
		if c := mkChange(i); isVMChange(c) {
			s += double(c)
		}
	}
	return s
}

// changes yields n items, as the towerwatch operators' upstream.
func changes(n int) iter.Seq2[change, error] {
	return func(yield func(change, error) bool) {
		for i := range n {
			if !yield(mkChange(i), nil) {
				return
			}
		}
	}
}

// rxChanges is changes as an rxgo observable.
func rxChanges(n int) rxgo.Observable {
	return rxgo.Defer([]rxgo.Producer{func(ctx context.Context, next chan<- rxgo.Item) {
		for i := range n {
			if !rxgo.Of(mkChange(i)).SendContext(ctx, next) {
				return
			}
		}
	}}, rxgo.WithBufferedChannel(chanBuffer))
}

// chanChanges sends n items on a new channel from a new goroutine, which
// closes it at the end or returns when ctx is done.
func chanChanges(ctx context.Context, n int) <-chan change {
	out := make(chan change, chanBuffer)
	go func() {
		defer close(out)
		for i := range n {
			if !send(ctx, out, mkChange(i)) {
				return
			}
		}
	}()
	return out
}

// send sends v on out, unless ctx is done first.
func send[T any](ctx context.Context, out chan<- T, v T) bool {
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// perItem runs pass (one pass over n items, returning a checksum) as the
// benchmark's loop and reports ns/item and allocs/item.
func perItem(b *testing.B, n int, want uint64, pass func(ctx context.Context) uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	passes := 0
	for b.Loop() {
		ctx, cancel := context.WithCancel(b.Context())
		got := pass(ctx)
		cancel()
		if got != want {
			b.Fatalf("checksum %d, want %d", got, want)
		}
		passes++
	}
	runtime.ReadMemStats(&after)
	items := float64(passes) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/items, "ns/item")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/items, "allocs/item")
}

func BenchmarkFilterMap(b *testing.B) {
	want := wantSum(pipelineItems)
	b.Run("impl=towerwatch", func(b *testing.B) {
		perItem(b, pipelineItems, want, func(context.Context) uint64 {
			var sum uint64
			for v, err := range operators.Map(operators.Filter(changes(pipelineItems), isVMChange), double) {
				if err != nil {
					b.Fatal(err)
				}
				sum += v
			}
			return sum
		})
	})
	b.Run("impl=rxgo", func(b *testing.B) {
		perItem(b, pipelineItems, want, func(ctx context.Context) uint64 {
			obs := rxChanges(pipelineItems).
				Filter(func(v any) bool { return isVMChange(v.(change)) }, rxgo.WithBufferedChannel(chanBuffer)).
				Map(func(_ context.Context, v any) (any, error) { return double(v.(change)), nil }, rxgo.WithBufferedChannel(chanBuffer))
			var sum uint64
			for item := range obs.Observe(rxgo.WithContext(ctx)) {
				if item.E != nil {
					b.Fatal(item.E)
				}
				sum += item.V.(uint64)
			}
			return sum
		})
	})
	b.Run("impl=channels", func(b *testing.B) {
		perItem(b, pipelineItems, want, func(ctx context.Context) uint64 {
			filtered := chanStage(ctx, chanChanges(ctx, pipelineItems), func(c change) (change, bool) { return c, isVMChange(c) })
			mapped := chanStage(ctx, filtered, func(c change) (uint64, bool) { return double(c), true })
			var sum uint64
			for v := range mapped {
				sum += v
			}
			return sum
		})
	})
}

// chanStage is one stage of a channel pipeline: a goroutine that sends f(v)
// for each v from in for which f reports true, and closes its channel at
// the end of in or when ctx is done.
func chanStage[I, O any](ctx context.Context, in <-chan I, f func(I) (O, bool)) <-chan O {
	out := make(chan O, chanBuffer)
	go func() {
		defer close(out)
		for v := range in {
			if o, ok := f(v); ok && !send(ctx, out, o) {
				return
			}
		}
	}()
	return out
}

func BenchmarkBatch(b *testing.B) {
	// The checksum counts the items; an empty batch fails it. A batch
	// larger than batchSize is counted (rxgo's BufferWithTimeOrCount makes
	// some: it appends the next items while its flushing goroutine waits
	// for the lock) and reported as oversized/pass.
	run := func(b *testing.B, pass func(ctx context.Context, batch func(n int)) error) {
		oversized, passes := 0, 0
		perItem(b, pipelineItems, pipelineItems, func(ctx context.Context) uint64 {
			var sum uint64
			err := pass(ctx, func(n int) {
				if n == 0 {
					b.Fatal("empty batch")
				}
				if n > batchSize {
					oversized++
				}
				sum += uint64(n)
			})
			if err != nil {
				b.Fatal(err)
			}
			passes++
			return sum
		})
		b.ReportMetric(float64(oversized)/float64(passes), "oversized/pass")
	}
	b.Run("impl=towerwatch", func(b *testing.B) {
		run(b, func(ctx context.Context, batch func(int)) error {
			for items, err := range operators.Batch(ctx, changes(pipelineItems), batchSize, batchWait) {
				if err != nil {
					return err
				}
				batch(len(items))
			}
			return nil
		})
	})
	b.Run("impl=rxgo", func(b *testing.B) {
		run(b, func(ctx context.Context, batch func(int)) error {
			obs := rxChanges(pipelineItems).
				BufferWithTimeOrCount(rxgo.WithDuration(batchWait), batchSize, rxgo.WithBufferedChannel(chanBuffer))
			for item := range obs.Observe(rxgo.WithContext(ctx)) {
				if item.E != nil {
					return item.E
				}
				batch(len(item.V.([]any)))
			}
			return nil
		})
	})
	b.Run("impl=channels", func(b *testing.B) {
		run(b, func(ctx context.Context, batch func(int)) error {
			for items := range chanBatch(ctx, chanChanges(ctx, pipelineItems)) {
				batch(len(items))
			}
			return nil
		})
	})
}

// chanBatch is Batch(batchSize, batchWait) as a channel stage: a goroutine
// that reads in, and sends a batch when it is full, when batchWait has
// passed since its first item, and at the end.
func chanBatch(ctx context.Context, in <-chan change) <-chan []change {
	var pending []change
	return chanWindows(ctx, in, batchWait,
		func(c change) bool {
			if pending == nil {
				pending = make([]change, 0, batchSize)
			}
			pending = append(pending, c)
			return len(pending) == batchSize
		},
		func() []change {
			p := pending
			pending = nil
			return p
		})
}

// chanWindows is the goroutine of a channel stage that groups the items of
// in into windows: it calls add for each item, and sends take() (unless it
// is empty) when add reports the window full, when wait has passed since
// the window's first item, and at the end of in.
func chanWindows[S ~[]E, E any](ctx context.Context, in <-chan change, wait time.Duration, add func(change) (full bool), take func() S) <-chan S {
	out := make(chan S)
	go func() {
		defer close(out)
		var (
			open    bool // the window holds an item
			timer   = time.NewTimer(wait)
			timeout <-chan time.Time
		)
		timer.Stop()
		defer timer.Stop()
		send := func() bool {
			timer.Stop()
			timeout = nil
			open = false
			if w := take(); len(w) > 0 {
				return send(ctx, out, w)
			}
			return true
		}
		for {
			select {
			case c, ok := <-in:
				if !ok {
					send()
					return
				}
				if !open {
					open = true
					timer.Reset(wait)
					timeout = timer.C
				}
				if add(c) && !send() {
					return
				}
			case <-timeout:
				if !send() {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

const (
	coalesceKeys   = 10_000
	coalesceWindow = 10 * time.Millisecond
)

// coalesceKey spreads the items over coalesceKeys keys, like changes to
// that many resources.
func coalesceKey(c change) uint64 { return c.Rev % coalesceKeys }

func BenchmarkCoalesce(b *testing.B) {
	// The checksum sums the newest revision per key: what a consumer that
	// mirrors the state ends up with. Every item must also be newer than
	// the one before it (newest per key, in revision order, window after
	// window). out/pass is the number of items emitted per pass: how much
	// was coalesced away, which depends on how fast the upstream is read.
	var want uint64
	for i := pipelineItems - coalesceKeys; i < pipelineItems; i++ {
		want += mkChange(i).Rev
	}
	run := func(b *testing.B, pass func(ctx context.Context, emit func(change)) error) {
		latest := make([]uint64, coalesceKeys)
		out, passes := 0, 0
		perItem(b, pipelineItems, want, func(ctx context.Context) uint64 {
			clear(latest)
			var prev uint64
			err := pass(ctx, func(c change) {
				if c.Rev <= prev {
					b.Fatalf("revision %d after %d", c.Rev, prev)
				}
				prev = c.Rev
				latest[coalesceKey(c)] = c.Rev
				out++
			})
			if err != nil {
				b.Fatal(err)
			}
			passes++
			var sum uint64
			for _, r := range latest {
				sum += r
			}
			return sum
		})
		b.ReportMetric(float64(out)/float64(passes), "out/pass")
	}
	b.Run("impl=towerwatch", func(b *testing.B) {
		run(b, func(ctx context.Context, emit func(change)) error {
			for c, err := range operators.CoalesceByKey(ctx, changes(pipelineItems), coalesceKey, coalesceWindow) {
				if err != nil {
					return err
				}
				emit(c)
			}
			return nil
		})
	})
	b.Run("impl=channels", func(b *testing.B) {
		run(b, func(ctx context.Context, emit func(change)) error {
			for window := range chanCoalesce(ctx, chanChanges(ctx, pipelineItems)) {
				for _, c := range window {
					emit(c)
				}
			}
			return nil
		})
	})
}

// chanCoalesce is CoalesceByKey(coalesceKey, coalesceWindow) as a channel
// stage: a goroutine that reads in, keeps the newest item per key in the
// order of their newest occurrence, and sends them as one slice when
// coalesceWindow has passed since the window's first item, and at the end.
// A superseded item is left as a hole (Rev 0) until the window is sent, so
// it holds every item of a window, not only one per key.
func chanCoalesce(ctx context.Context, in <-chan change) <-chan []change {
	var (
		index = make(map[uint64]int) // key -> position in held
		held  []change
	)
	return chanWindows(ctx, in, coalesceWindow,
		func(c change) bool {
			k := coalesceKey(c)
			if i, ok := index[k]; ok {
				held[i].Rev = 0
			}
			index[k] = len(held)
			held = append(held, c)
			return false
		},
		func() []change {
			window := make([]change, 0, len(index))
			for _, c := range held {
				if c.Rev != 0 {
					window = append(window, c)
				}
			}
			held = held[:0]
			clear(index)
			return window
		})
}
