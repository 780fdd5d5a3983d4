package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// A Source over any ordered feed takes a few lines: here, a slice whose
// index+1 is the revision.
func ExampleNewSource() {
	log := []string{"vm-1 created", "vm-1 started", "host-7 updated"}
	src := stream.NewSource(
		func(ctx context.Context, after stream.Revision, limit int) (stream.Page[string], error) {
			n, _ := after.Uint64() // zero Revision: 0, the start
			head := stream.RevisionFromUint64(uint64(len(log)))
			end := min(len(log), int(n)+limit)
			var items []string
			for i := int(n); i < end; i++ {
				items = append(items, strconv.Itoa(i+1)+" "+log[i])
			}
			return stream.Page[string]{Items: items, Head: head}, nil
		},
		func(item string) (stream.Revision, error) {
			rev, _, _ := strings.Cut(item, " ")
			return stream.ParseRevision(rev)
		},
	)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for item, err := range stream.Watch(ctx, src, stream.FromStart()) {
		if err != nil {
			fmt.Println("stream ended:", err)
			return
		}
		fmt.Println(item)
		if n++; n == len(log) {
			cancel() // the next value is the final error: context.Canceled
		}
	}
	// Output:
	// 1 vm-1 created
	// 2 vm-1 started
	// 3 host-7 updated
	// stream ended: context canceled
}

// Compaction ends the stream with an error that carries the revision to
// restart from.
func ExampleCompactedError() {
	src := stream.NewSource(
		func(ctx context.Context, after stream.Revision, limit int) (stream.Page[string], error) {
			return stream.Page[string]{Head: stream.MustParseRevision("900"), Compact: stream.MustParseRevision("500")}, nil
		},
		func(string) (stream.Revision, error) { return stream.Revision{}, nil },
	)
	for _, err := range stream.Watch(context.Background(), src, stream.After(stream.MustParseRevision("100"))) {
		var ce *stream.CompactedError
		if errors.As(err, &ce) {
			fmt.Println("lost history up to", ce.Compact, "- re-list, then watch after it")
		}
	}
	// Output:
	// lost history up to 500 - re-list, then watch after it
}

// A supervisor opens a stream again when it gave up after its retries (a
// *RetryError, not final), after the position it reached, waiting between
// reopens under a RetryPolicy; it stops at a final error.
func ExampleIsFinal() {
	polls := 0
	src := stream.NewSource(
		func(ctx context.Context, after stream.Revision, limit int) (stream.Page[string], error) {
			switch polls++; {
			case polls <= 2:
				return stream.Page[string]{}, errors.New("503 service unavailable")
			case polls == 3:
				return stream.Page[string]{Items: []string{"42 vm-7 created"}, Head: stream.MustParseRevision("42")}, nil
			}
			return stream.Page[string]{}, stream.Fatal(errors.New("401 unauthorized"))
		},
		func(item string) (stream.Revision, error) {
			rev, _, _ := strings.Cut(item, " ")
			return stream.ParseRevision(rev)
		},
	)
	ctx := context.Background()
	opts := []stream.Option{stream.MaxRetries(1), stream.Backoff(time.Millisecond, time.Millisecond),
		stream.PollInterval(time.Millisecond), stream.Logger(slog.New(slog.DiscardHandler))}
	reopen := stream.RetryPolicy{Min: time.Millisecond, Max: time.Second, MaxRetries: stream.NoRetryLimit}.Start()
	start := stream.After(stream.MustParseRevision("41"))
	for {
		var end error
		for item, err := range stream.Watch(ctx, src, append(opts, start)...) {
			if end = err; err != nil {
				break
			}
			fmt.Println(item)
			reopen.Reset()
		}
		if stream.IsFinal(end) {
			fmt.Println("final:", end)
			return
		}
		var re *stream.RetryError
		if errors.As(end, &re) && !re.Position.IsZero() {
			start = stream.After(re.Position)
		}
		fmt.Println("reopening:", end)
		if err := reopen.Wait(ctx, end); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// reopening: retries exhausted after 2 attempts at revision 41: 503 service unavailable
	// 42 vm-7 created
	// final: 401 unauthorized
}

// Over a slow link, ParallelCatchUp(4) keeps up to four polls in flight
// while a backlog is drained; the sequence delivered is the same as
// without it.
func ExampleParallelCatchUp() {
	const backlog = 2500
	src := stream.NewSource(
		func(ctx context.Context, after stream.Revision, limit int) (stream.Page[int], error) {
			n, _ := after.Uint64()
			var items []int
			for r := n + 1; r <= backlog && len(items) < limit; r++ {
				items = append(items, int(r))
			}
			return stream.Page[int]{Items: items, Head: stream.RevisionFromUint64(backlog)}, nil
		},
		func(r int) (stream.Revision, error) { return stream.RevisionFromUint64(uint64(r)), nil },
	)
	sum, last := 0, 0
	for r, err := range stream.Watch(context.Background(), src, stream.FromStart(), stream.PageSize(100), stream.ParallelCatchUp(4)) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if r != last+1 {
			fmt.Println("out of order:", r)
		}
		sum, last = sum+r, r
		if r == backlog {
			break
		}
	}
	fmt.Println(last, sum)
	// Output: 2500 3126250
}
