package rx_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/reactivex/rxgo/v2"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/rx"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// Filter and batch CloudTower's change feed with rxgo operators, then read
// the batches back as a typed sequence. Breaking out of the loop disposes
// of the whole chain: the rxgo stages and the poll stop.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The stand-in for CloudTower, with 200 changes of history.
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	defer srv.Close()
	srv.Generate(200)
	srv.StartHTTP()
	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: srv.Host(), Scheme: "http",
		Username: srv.Username(), Password: srv.Password(), APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cloudtower.CloseIdleConnections(c)

	obs := rx.FromSource(ctx, cloudtower.New(c),
		stream.FromStart(), // from the oldest change kept
		stream.PollInterval(10*time.Millisecond),
		stream.Logger(slog.New(slog.DiscardHandler))).
		Filter(func(v any) bool { return *v.(*models.ResourceChangeEvent).ResourceType == fakeserver.TypeVM }).
		Map(func(_ context.Context, v any) (any, error) {
			ev := v.(*models.ResourceChangeEvent)
			return *ev.Revision + ":" + *ev.Action, nil
		}).
		BufferWithCount(4)

	batches := 0
	for batch, err := range rx.ToSeq[[]any](ctx, obs) {
		if err != nil {
			fmt.Println("stream ended:", err)
			return
		}
		fmt.Println(batch)
		if batches++; batches == 3 {
			break // stops the rxgo chain and the watch
		}
	}
	// Output:
	// [6:INSERT 9:UPDATE 11:DELETE 12:INSERT]
	// [13:UPDATE 17:INSERT 19:UPDATE 20:DELETE]
	// [24:UPDATE 27:UPDATE 31:UPDATE 32:INSERT]
}

// ToSeq reads an observable as a typed sequence: an item of another type
// is an error wrapping rx.ErrItemType, not a panic.
func ExampleToSeq() {
	obs := rxgo.Just(1, 2, "three", 4)()
	for v, err := range rx.ToSeq[int](context.Background(), obs) {
		if errors.Is(err, rx.ErrItemType) {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// 1
	// 2
	// error: rx: unexpected item type: got string, want int
	// 4
}

// FromSeqFunc turns a sequence into an observable; the sequence is opened
// anew, with a context that disposal cancels, for each observation.
func ExampleFromSeqFunc() {
	ctx := context.Background()
	open := func(ctx context.Context) iter.Seq2[int, error] {
		return func(yield func(int, error) bool) {
			for i := 1; ctx.Err() == nil; i++ { // endless, until disposed of
				if !yield(i, nil) {
					return
				}
			}
		}
	}
	squares := rx.FromSeqFunc(ctx, open).
		Map(func(_ context.Context, v any) (any, error) { return v.(int) * v.(int), nil }).
		Take(4)
	for v, err := range rx.ToSeq[int](ctx, squares) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output:
	// 1 4 9 16
}
