package operators

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

func isEven(v int) bool { return v%2 == 0 }

func TestFilter(t *testing.T) {
	g := collect(Filter(seqOf(nil, 1, 2, 3, 4, 5, 6), isEven))
	wantEqual(t, "values", g.vals, []int{2, 4, 6})
	wantEqual(t, "errors", len(g.errs), 0)
}

func TestFilterEmpty(t *testing.T) {
	g := collect(Filter(seqOf[int](nil), isEven))
	if len(g.vals)+len(g.errs) != 0 {
		t.Fatalf("got %v, want nothing", g)
	}
}

func TestFilterPassesErrorsInOrder(t *testing.T) {
	var out []any
	seq := func(yield func(int, error) bool) {
		_ = yield(1, nil) && yield(2, nil) && yield(7, errBoom) && yield(3, nil) && yield(4, nil)
	}
	for v, err := range Filter(seq, isEven) {
		if err != nil {
			wantEqual(t, "value with the error", v, 7) // unchanged
			out = append(out, err)
			continue
		}
		out = append(out, v)
	}
	wantEqual(t, "sequence", out, []any{2, errBoom, 4})
}

func TestFilterBreak(t *testing.T) {
	var yielded int
	for v, err := range Filter(count(&yielded), isEven) {
		if err != nil || v != 2 {
			t.Fatalf("first value %v, %v; want 2", v, err)
		}
		break
	}
	wantEqual(t, "values pulled from upstream", yielded, 2)
}

func TestFilterNil(t *testing.T) {
	g := collect(Filter(seqOf(nil, 1, 2), nil))
	if len(g.vals) != 0 || len(g.errs) != 1 {
		t.Fatalf("got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
}

func TestFilterCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		f := newFeed[int]()
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		g := collect(Filter(f.seq(ctx), isEven))
		if len(g.errs) != 1 || g.errs[0] != context.Canceled {
			t.Fatalf("errors %v, want [context.Canceled]", g.errs)
		}
		wantEqual(t, "ended after", time.Since(start), time.Second)
	})
}

func TestFilterNoAllocs(t *testing.T) {
	items := make([]int, 1000)
	src := func(yield func(int, error) bool) {
		for _, v := range items {
			if !yield(v, nil) {
				return
			}
		}
	}
	n := 0
	allocs := testing.AllocsPerRun(10, func() {
		for v, err := range Filter(src, isEven) {
			if err == nil {
				n += v
			}
		}
	})
	// The closures of one pass may allocate a few times; never per value.
	if allocs > 3 {
		t.Fatalf("%v allocations for a pass over 1000 values, want at most 3", allocs)
	}
}
