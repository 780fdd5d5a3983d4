package rx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/reactivex/rxgo/v2"

	"github.com/towerwatch/towerwatch/rx"
	"github.com/towerwatch/towerwatch/stream"
)

type Change struct {
	Rev  uint64
	Kind string
}

var errEndOfFeed = errors.New("end of the example feed")

// memorySource serves changes, then ends the stream with
// stream.Fatal(errEndOfFeed).
func memorySource(changes []Change) stream.Source[Change] {
	poll := func(ctx context.Context, after stream.Revision, limit int) (stream.Page[Change], error) {
		a, _ := after.Uint64()
		p := stream.Page[Change]{Head: stream.RevisionFromUint64(changes[len(changes)-1].Rev)}
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

// Filter and batch a change stream with rxgo operators, then read the
// batches back as a typed sequence.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := memorySource([]Change{
		{1, "vm"}, {2, "host"}, {3, "vm"}, {4, "vm"}, {5, "host"}, {6, "vm"}, {7, "vm"},
	})
	obs := rx.FromSource(ctx, src, []stream.Option{
		stream.After(stream.RevisionFromUint64(0)),
		stream.PollInterval(time.Millisecond),
		stream.Logger(slog.New(slog.DiscardHandler)),
	}).
		Filter(func(v any) bool { return v.(Change).Kind == "vm" }).
		BufferWithTimeOrCount(rxgo.WithDuration(time.Second), 2)

	// rxgo batches are []any; its timing makes batch boundaries vary, so
	// this example prints the revisions in order.
	var revs []uint64
	for batch, err := range rx.ToSeq[[]any](ctx, obs) {
		if err != nil {
			fmt.Println("stream ended:", errors.Is(err, errEndOfFeed))
			continue // rxgo flushes the last batch after the error
		}
		for _, v := range batch {
			revs = append(revs, v.(Change).Rev)
		}
	}
	slices.Sort(revs)
	fmt.Println("vm changes:", revs)
	// Output:
	// stream ended: true
	// vm changes: [1 3 4 6 7]
}
