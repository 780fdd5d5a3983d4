package operators

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

func TestMap(t *testing.T) {
	g := collect(Map(seqOf(nil, 1, 2, 3), strconv.Itoa))
	wantEqual(t, "values", g.vals, []string{"1", "2", "3"})
}

func TestMapEmpty(t *testing.T) {
	g := collect(Map(seqOf[int](nil), strconv.Itoa))
	if len(g.vals)+len(g.errs) != 0 {
		t.Fatalf("got %v, want nothing", g)
	}
}

func TestMapPassesErrors(t *testing.T) {
	calls := 0
	var out []any
	for v, err := range Map(seqOf(errBoom, 1, 2), func(v int) int { calls++; return v * 10 }) {
		if err != nil {
			wantEqual(t, "value with the error", v, 0)
			out = append(out, err)
			continue
		}
		out = append(out, v)
	}
	wantEqual(t, "sequence", out, []any{10, 20, errBoom})
	wantEqual(t, "calls", calls, 2)
}

func TestMapBreak(t *testing.T) {
	var yielded int
	for v := range Map(count(&yielded), strconv.Itoa) {
		wantEqual(t, "first", v, "1")
		break
	}
	wantEqual(t, "values pulled from upstream", yielded, 1)
}

func TestMapNil(t *testing.T) {
	g := collect(Map[int, string](seqOf(nil, 1), nil))
	if len(g.vals) != 0 || len(g.errs) != 1 {
		t.Fatalf("got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
}

func TestMapCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		f := newFeed[int]()
		time.AfterFunc(time.Second, cancel)
		g := collect(Map(f.seq(ctx), strconv.Itoa))
		if len(g.errs) != 1 || g.errs[0] != context.Canceled {
			t.Fatalf("errors %v, want [context.Canceled]", g.errs)
		}
	})
}

func TestFilterMapNoAllocs(t *testing.T) {
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
		for v, err := range Map(Filter(src, isEven), func(v int) int { return v + 1 }) {
			if err == nil {
				n += v
			}
		}
	})
	if allocs > 6 {
		t.Fatalf("%v allocations for a pass over 1000 values, want at most 6", allocs)
	}
}
