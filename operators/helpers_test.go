package operators

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

var (
	errBoom = errors.New("boom")
	errEnd  = errors.New("end of the test feed")
)

// seqOf yields vals, then err if it is not nil.
func seqOf[T any](err error, vals ...T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, v := range vals {
			if !yield(v, nil) {
				return
			}
		}
		if err != nil {
			var zero T
			yield(zero, err)
		}
	}
}

// count yields 1, 2, 3, ... forever, and counts the values it yielded.
func count(yielded *int) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := 1; ; i++ {
			*yielded = i
			if !yield(i, nil) {
				return
			}
		}
	}
}

// feed is a sequence the test drives: it yields what is sent on ch, an
// error when one is sent on errs, and ends when ch is closed (or with
// ctx.Err() when ctx is done), like a live stream.
type feed[T any] struct {
	ch   chan T
	errs chan error
}

func newFeed[T any]() *feed[T] { return &feed[T]{ch: make(chan T), errs: make(chan error)} }

func (f *feed[T]) seq(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			select {
			case v, ok := <-f.ch:
				if !ok {
					return
				}
				if !yield(v, nil) {
					return
				}
			case err := <-f.errs:
				if !yield(zero, err) {
					return
				}
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			}
		}
	}
}

// got collects what a sequence yields.
type got[T any] struct {
	vals []T
	errs []error
}

func collect[T any](seq iter.Seq2[T, error]) got[T] {
	var g got[T]
	for v, err := range seq {
		if err != nil {
			g.errs = append(g.errs, err)
			continue
		}
		g.vals = append(g.vals, v)
	}
	return g
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func wantErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one matching %v", err, target)
	}
}

// event is the item type of the in-memory source.
type event struct {
	Rev uint64
	Key string
}

func rev(n uint64) stream.Revision { return stream.RevisionFromUint64(n) }

func eventRev(e event) (stream.Revision, error) { return rev(e.Rev), nil }

func revs(evs []event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Rev
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// memSource is a streamtest.Feed with events 1..n (keys a, b, c by
// revision), read from the oldest on a poll after the zero Revision. Once
// a poll finds nothing new and end is set, it fails with Fatal(errEnd), so
// that a stream over it ends. hook, when set, runs first on every poll
// (numbered from 1) and may fail it; polls counts them. mu guards hook and
// polls.
type memSource struct {
	feed  *streamtest.Feed
	mu    sync.Mutex
	polls int
	hook  func(ctx context.Context, poll int, after stream.Revision) error
}

func newMemSource(n int, end bool) *memSource {
	s := &memSource{feed: streamtest.NewFeed(n)}
	s.feed.SetBehavior(streamtest.Behavior{OldestOnAbsent: true})
	if end {
		s.feed.EndWhenDrained(stream.Fatal(errEnd))
	}
	return s
}

// add appends n events.
func (s *memSource) add(n int) { s.feed.Append(n) }

// compact discards the events up to and including rev.
func (s *memSource) compact(rev uint64) { s.feed.Compact(rev) }

func (s *memSource) source() stream.Source[event] {
	return stream.NewSource(stream.PollFunc[event](s.poll), eventRev)
}

func (s *memSource) poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[event], error) {
	s.mu.Lock()
	s.polls++
	n, hook := s.polls, s.hook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n, after); err != nil {
			return stream.Page[event]{}, err
		}
	}
	p, err := s.feed.Poll(ctx, after, limit)
	if err != nil {
		return stream.Page[event]{}, err
	}
	out := stream.Page[event]{Head: p.Head, Compact: p.Compact, Items: make([]event, len(p.Items))}
	for i, it := range p.Items {
		out.Items[i] = event{Rev: it.Rev, Key: it.Key}
	}
	return out, nil
}

// fastOpts make a stream over memSource quick under synctest.
func fastOpts(extra ...stream.Option) []stream.Option {
	return append([]stream.Option{
		stream.PollInterval(10 * time.Millisecond),
		stream.Backoff(time.Millisecond, time.Millisecond),
		stream.PageSize(4),
		stream.Logger(discardLogger),
	}, extra...)
}

var discardLogger = slog.New(slog.DiscardHandler)
