package bench

// BenchmarkKeyed: handling a stream of changes with a slow handler (1 ms
// of simulated I/O: a time.Sleep in the handler, as a database or cloud
// API call would take), five ways, side by side in one run:
//
//	impl=sequential             one loop, one change at a time
//	impl=keyed-n8, -n32, -n128  operators.HandleByKey with 8, 32, 128 workers
//	impl=keyed-n32-checkpoint   the same with 32 workers, its watermark saved
//	                            by operators.Checkpoint in a FileStore (at its
//	                            defaults: every 100 watermarks or 1 s, fsync'd)
//	impl=goroutine-per-change   one goroutine per change, at most 128 at a
//	                            time (errgroup.SetLimit): no per-key order
//
// The changes are spread over keyedKeys keys at random (fixed seed), like
// changes to that many resources. Each pass handles keyedChanges changes
// (100,000), except the sequential loop, which handles keyedSeqChanges
// (2,000) so that the whole benchmark stays within about 30 s at
// -benchtime 1x (100,000 would take 100 s); the rate is what is compared.
// Each sub-benchmark reports (keyed-n32-checkpoint also saves, the
// number of checkpoint saves in the pass)
//
//	changes/s    changes handled per second of wall time
//	violations   handler calls that broke per-key order: a call that
//	             started while a call of the same key was in progress, or
//	             after a later change of its key
//
// Run (once, as CI does):
//
//	go test -run '^$' -bench Keyed -benchtime 1x -count 1 ./bench

import (
	"context"
	"iter"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
)

const (
	keyedChanges    = 100_000
	keyedSeqChanges = 2_000
	keyedKeys       = 1_000
	keyedWork       = time.Millisecond
)

type keyedChange struct {
	Rev uint64
	Key int
}

// keyedFeed returns n changes, revisions 1..n, over keyedKeys keys.
func keyedFeed(n int) []keyedChange {
	rng := rand.New(rand.NewPCG(1, 2))
	cs := make([]keyedChange, n)
	for i := range cs {
		cs[i] = keyedChange{Rev: uint64(i + 1), Key: rng.IntN(keyedKeys)}
	}
	return cs
}

func keyedSeq(cs []keyedChange) iter.Seq2[keyedChange, error] {
	return func(yield func(keyedChange, error) bool) {
		for _, c := range cs {
			if !yield(c, nil) {
				return
			}
		}
	}
}

// keyedHandler is the slow handler. It counts the calls that break
// per-key order and the changes handled.
type keyedHandler struct {
	keys       [keyedKeys]keyedKeyState
	mu         sync.Mutex
	violations int
	handled    int
}

type keyedKeyState struct {
	mu     sync.Mutex
	last   uint64
	active bool
}

func (h *keyedHandler) handle(_ context.Context, c keyedChange) error {
	k := &h.keys[c.Key]
	k.mu.Lock()
	bad := k.active || c.Rev < k.last
	k.active = true
	k.last = max(k.last, c.Rev)
	k.mu.Unlock()

	time.Sleep(keyedWork) // simulated I/O

	k.mu.Lock()
	k.active = false
	k.mu.Unlock()
	h.mu.Lock()
	h.handled++
	if bad {
		h.violations++
	}
	h.mu.Unlock()
	return nil
}

func BenchmarkKeyed(b *testing.B) {
	run := func(b *testing.B, n int, pass func(ctx context.Context, cs []keyedChange, h *keyedHandler) error) {
		cs := keyedFeed(n)
		handled, violations := 0, 0
		for b.Loop() {
			h := &keyedHandler{}
			if err := pass(b.Context(), cs, h); err != nil {
				b.Fatal(err)
			}
			if h.handled != len(cs) {
				b.Fatalf("handled %d changes, want %d", h.handled, len(cs))
			}
			handled += h.handled
			violations += h.violations
		}
		b.ReportMetric(float64(handled)/b.Elapsed().Seconds(), "changes/s")
		b.ReportMetric(float64(violations), "violations")
	}
	b.Run("impl=sequential", func(b *testing.B) {
		run(b, keyedSeqChanges, func(ctx context.Context, cs []keyedChange, h *keyedHandler) error {
			for _, c := range cs {
				if err := h.handle(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
	})
	for _, n := range []int{8, 32, 128} {
		b.Run("impl=keyed-n"+strconv.Itoa(n), func(b *testing.B) {
			run(b, keyedChanges, func(ctx context.Context, cs []keyedChange, h *keyedHandler) error {
				key := func(c keyedChange) int { return c.Key }
				rev := func(c keyedChange) (stream.Revision, error) { return stream.RevisionFromUint64(c.Rev), nil }
				var last stream.Revision
				for w, err := range operators.HandleByKey(ctx, keyedSeq(cs), n, key, rev, h.handle) {
					if err != nil {
						return err
					}
					last = w
				}
				if want := stream.RevisionFromUint64(uint64(len(cs))); last != want {
					b.Fatalf("last watermark %s, want %s", last, want)
				}
				return nil
			})
		})
	}
	b.Run("impl=keyed-n32-checkpoint", func(b *testing.B) {
		run(b, keyedChanges, func(ctx context.Context, cs []keyedChange, h *keyedHandler) error {
			key := func(c keyedChange) int { return c.Key }
			rev := func(c keyedChange) (stream.Revision, error) { return stream.RevisionFromUint64(c.Rev), nil }
			store := operators.NewFileStore(filepath.Join(b.TempDir(), "checkpoint.json"))
			saves := 0 // BeforeSave runs right before each save
			for _, err := range operators.Checkpoint(ctx, operators.HandleByKey(ctx, keyedSeq(cs), 32, key, rev, h.handle), store, operators.WatermarkRevision, operators.BeforeSave(func(context.Context) error { saves++; return nil })) {
				if err != nil {
					return err
				}
			}
			b.ReportMetric(float64(saves), "saves")
			return nil
		})
	})
	b.Run("impl=goroutine-per-change", func(b *testing.B) {
		run(b, keyedChanges, func(ctx context.Context, cs []keyedChange, h *keyedHandler) error {
			var g errgroup.Group
			g.SetLimit(128)
			for _, c := range cs {
				g.Go(func() error { return h.handle(ctx, c) })
			}
			return g.Wait()
		})
	})
}
