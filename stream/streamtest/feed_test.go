package streamtest_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

func TestFeedPages(t *testing.T) {
	ctx := t.Context()
	f := streamtest.NewFeed(10)
	f.SetKeys("x")
	f.Add(streamtest.Item{Key: "k", Value: "v"})
	f.Compact(3)
	p, err := f.Poll(ctx, streamtest.Rev(5), 3)
	if err != nil || !slices.Equal(streamtest.Revs(p.Items), []uint64{6, 7, 8}) || p.Head.String() != "11" || p.Compact.String() != "3" {
		t.Fatalf("page after 5: %+v, %v", p, err)
	}
	if it := f.Items(10); len(it) != 1 || it[0] != (streamtest.Item{Rev: 11, Key: "k", Value: "v"}) {
		t.Fatalf("Items(10) = %v", it)
	}
	f.SetBehavior(streamtest.Behavior{Inclusive: true})
	if p, _ := f.Poll(ctx, streamtest.Rev(5), 2); !slices.Equal(streamtest.Revs(p.Items), []uint64{5, 6}) {
		t.Fatalf("inclusive page after 5: %v", streamtest.Revs(p.Items))
	}
	if p, _ := f.Poll(ctx, stream.Revision{}, 2); !slices.Equal(streamtest.Revs(p.Items), []uint64{10, 11}) {
		t.Fatalf("page after none: %v", streamtest.Revs(p.Items))
	}
	f.Append(1)
	if it := f.Items(11); it[0].Key != "x" {
		t.Fatalf("SetKeys: %v", it)
	}
	if _, err := f.Revision(streamtest.Item{}); err == nil {
		t.Fatal("an item without revision has one")
	}
}

func TestFeedFaults(t *testing.T) {
	ctx := t.Context()
	f := streamtest.NewFeed(3)
	errX := errors.New("x")
	f.FailEvery(2, errX)
	f.Inject(streamtest.FailWith(streamtest.ErrFault))
	var errs []error
	for range 4 {
		_, err := f.Poll(ctx, streamtest.Rev(1), 10)
		errs = append(errs, err)
	}
	if !errors.Is(errs[0], streamtest.ErrFault) || !errors.Is(errs[1], errX) || errs[2] != nil || !errors.Is(errs[3], errX) {
		t.Fatalf("errors %v", errs)
	}
	f.FailEvery(0, nil)
	f.EndWhenDrained(errX)
	if _, err := f.Poll(ctx, streamtest.Rev(3), 10); !errors.Is(err, errX) {
		t.Fatalf("drained: %v", err)
	}
	if n := len(f.Polls()); n != 5 {
		t.Fatalf("%d polls recorded", n)
	}
}
