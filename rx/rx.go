package rx

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"

	"github.com/reactivex/rxgo/v2"

	"github.com/towerwatch/towerwatch/stream"
)

// ErrItemType is wrapped by the error ToSeq yields for an item whose value
// is not of the requested type.
var ErrItemType = errors.New("rx: unexpected item type")

// FromSeq returns a cold observable of seq's values: each Observe ranges
// over seq anew, sends each value v as rxgo.Of(v) and each error err as
// rxgo.Error(err), and closes the channel when seq ends.
//
// The pass stops when ctx or the Observe context is done. Because seq was
// built elsewhere, FromSeq cannot interrupt it while it waits for its next
// value: build seq with ctx (or a context cancelled with it), or use
// FromSeqFunc. opts are rxgo options for the observable, such as
// rxgo.WithBufferedChannel.
func FromSeq[T any](ctx context.Context, seq iter.Seq2[T, error], opts ...rxgo.Option) rxgo.Observable {
	return FromSeqFunc(ctx, func(context.Context) iter.Seq2[T, error] { return seq }, opts...)
}

// FromSeqFunc is like FromSeq, but builds the sequence for each pass by
// calling open with a context that is done when ctx or the Observe
// context is done, so cancelling either interrupts the sequence at once
// (an in-flight poll, a wait between polls) and the pass's goroutine
// returns.
func FromSeqFunc[T any](ctx context.Context, open func(ctx context.Context) iter.Seq2[T, error], opts ...rxgo.Option) rxgo.Observable {
	producer := func(obsCtx context.Context, next chan<- rxgo.Item) {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(obsCtx, cancel)
		defer stop()
		for v, err := range open(pctx) {
			item := rxgo.Of(v)
			if err != nil {
				item = rxgo.Error(err)
			}
			select {
			case next <- item:
			case <-pctx.Done():
				return
			}
		}
	}
	// rxgo appends to the options it keeps: give it a slice of its own.
	return rxgo.Defer([]rxgo.Producer{producer}, slices.Clip(opts)...)
}

// FromSource returns a cold observable that runs stream.Watch(ctx', src,
// opts...) for each pass, where ctx' is done when ctx or the Observe
// context is done: each observation is an independent watch, and disposing
// of it stops the poll at once. It takes the options stream.Watch takes, in
// the same form; rxgo options for the observable (such as
// rxgo.WithBufferedChannel) go where it is observed: to Observe, ToSeq or
// an operator of the chain, or use FromSeqFunc.
func FromSource[E any](ctx context.Context, src stream.Source[E], opts ...stream.Option) rxgo.Observable {
	opts = slices.Clip(opts) // each pass gets the caller's options, never appends to them
	return FromSeqFunc(ctx, func(ctx context.Context) iter.Seq2[E, error] {
		return stream.Watch(ctx, src, opts...)
	})
}

// ToSeq returns obs's items as a sequence. Each range loop observes obs
// with opts plus rxgo.WithContext(c), where c is a child of ctx cancelled
// when the loop ends, so breaking out stops the observation.
//
// An item with a value of type T is yielded as (v, nil); a nil value is
// yielded as the zero T when T is an interface type. An error item is
// yielded as (zero, err). An item of another type is yielded as (zero, e)
// with e wrapping ErrItemType. Errors do not end the sequence: it ends when
// obs completes (closes its channel), after rxgo's own error strategy
// (StopOnError by default, under which an error is the last item). When
// ctx is done, the sequence ends with ctx.Err().
func ToSeq[T any](ctx context.Context, obs rxgo.Observable, opts ...rxgo.Option) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if obs == nil {
			yield(zero, fmt.Errorf("rx: %w: ToSeq: nil Observable", stream.ErrInvalidOption))
			return
		}
		octx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch := obs.Observe(append(opts[:len(opts):len(opts)], rxgo.WithContext(octx))...)
		var last error // the last error yielded
		for {
			select {
			case item, ok := <-ch:
				if !ok {
					// obs may complete because ctx is done (it is cancelled
					// with it): end with ctx.Err() then too, once.
					if cerr := ctx.Err(); cerr != nil && !errors.Is(last, cerr) {
						yield(zero, cerr)
					}
					return
				}
				var v T
				var err error
				switch {
				case item.E != nil:
					err = item.E
				case item.V == nil && any(zero) == nil: // nil for an interface type
				default:
					var isT bool
					if v, isT = item.V.(T); !isT {
						err = fmt.Errorf("%w: got %T, want %v", ErrItemType, item.V, reflect.TypeFor[T]())
					}
				}
				last = err
				if !yield(v, err) {
					return
				}
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			}
		}
	}
}
