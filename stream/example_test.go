package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
