package stream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// The contract of the package doc's "When a Source is polled": what a
// Poll after r says about the delivery and handling of r, with and without
// prefetching, while catching up and once caught up.
func TestPollAfterMeansHandled(t *testing.T) {
	for _, tc := range []struct{ prefetch, hint bool }{{false, false}, {true, false}, {true, true}} {
		prefetch := tc.prefetch
		t.Run(fmt.Sprintf("prefetch=%v/hint=%v", prefetch, tc.hint), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeed(95)
				var handled atomic.Uint64 // the revision whose loop body returned last
				type call struct {
					after, handled uint64
					full           bool // the page it returned was full
				}
				var mu sync.Mutex
				var calls []call
				src := stream.NewSource(func(ctx context.Context, after stream.Revision, limit int) (stream.Page[change], error) {
					h := handled.Load()
					p, err := f.Poll(ctx, after, limit)
					if tc.hint && err == nil && len(p.Items) > 0 {
						// The response has arrived; decoding it takes a while.
						stream.HintNext(ctx, stream.RevisionFromUint64(p.Items[len(p.Items)-1].Rev))
						time.Sleep(time.Millisecond)
					}
					a, _ := after.Uint64()
					mu.Lock()
					calls = append(calls, call{after: a, handled: h, full: len(p.Items) == limit})
					mu.Unlock()
					return p, err
				}, f.Revision)

				n := 0
				for c, err := range stream.Watch(t.Context(), src, stream.FromStart(), stream.PageSize(10),
					stream.Prefetch(prefetch), stream.PollInterval(time.Second), quiet()) {
					if err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Millisecond) // handling takes (fake) time
					handled.Store(c.Rev)
					if n++; n == 95 {
						f.Append(25) // a second backlog once caught up
					}
					if n == 120 {
						break
					}
				}

				mu.Lock()
				defer mu.Unlock()
				ahead := 0
				for i, c := range calls[1:] {
					prev := calls[i]
					switch {
					case c.handled == c.after:
					case prefetch && (prev.full || tc.hint) && c.handled == prev.after:
						// With a hint, also after a page that turns out
						// short: the hinted poll starts before the engine
						// knows, and its page is dropped.
						ahead++
					default:
						t.Errorf("poll %d after %d: %d handled (previous poll after %d, full page %v)",
							i+1, c.after, c.handled, prev.after, prev.full)
					}
				}
				if prefetch != (ahead > 0) {
					t.Errorf("%d polls ran ahead of the consumer, prefetch %v", ahead, prefetch)
				}
			})
		})
	}
}
