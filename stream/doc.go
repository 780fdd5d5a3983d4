// Package stream turns any ordered, polled change feed into a Go iterator
// with the delivery guarantees of a watch: ordered, unique, reliable,
// resumable, bounded and prompt.
//
// A feed plugs in as a Source: a Poller that fetches one page of changes
// after a Revision, plus a way to read each item's revision. Watch drives
// it and returns an iter.Seq2[E, error]:
//
//	for ev, err := range stream.Watch(ctx, src, stream.After(rev)) {
//		if err != nil {
//			return err // the stream has ended; see the errors below
//		}
//		handle(ev)
//	}
//
// # Guarantees
//
// Along one range loop, revisions strictly increase (ordered), no revision
// is delivered twice, also across retries (unique), and no change between
// the start position and the end of the loop is skipped (reliable):
// a page that arrives unsorted is sorted, items at or below the last
// delivered revision are dropped (a server may include the start revision,
// or repeat a page), and a page holding an item without a valid revision is
// rejected whole and retried. Starting again with After(r), where r is the
// last revision handled, yields exactly what followed r (resumable).
//
// # Blocking and timing
//
// Watch starts nothing until the loop starts. The loop body runs on the
// ranging goroutine; the engine polls on it too, except that while catching
// up it fetches the next page in one extra goroutine (see Prefetch), never
// more than one page ahead, so memory stays bounded by two pages whatever
// the backlog and however slow the consumer. A Source that calls
// HintNext lets that fetch start as soon as the response has arrived,
// while it is still being decoded (still two pages: the engine does this
// only while it waits, with nothing being delivered). ParallelCatchUp(n)
// raises the number of polls ahead to n, at estimated start revisions,
// with n + 1 pages in memory at most. While a page is full, or its
// last change is below the server's head, the next poll follows at once;
// only once caught up does the engine wait PollInterval between polls.
//
// Breaking out of the loop or cancelling ctx stops the in-flight poll, the
// backoff wait and the prefetch before the range statement returns: no
// goroutine outlives the loop.
//
// # Start positions
//
// FromNow (the default) starts at the server's head, After(r) after the
// revision r, FromStart at the oldest change the server keeps. After with
// the zero Revision is an invalid option.
//
// # Options
//
// An option given a bad value records an error wrapping ErrInvalidOption.
// Option.Err returns it where the option is made and Validate checks a
// list, so a caller (a command-line parser, a constructor) can report it
// before anything runs; Watch yields the same error as its only value.
//
// # Errors
//
// The sequence ends with exactly one non-nil error unless the consumer
// breaks first:
//
//   - ctx.Err() when the context is done;
//   - a *CompactedError (errors.Is(err, ErrCompacted)) when the position is
//     below the server's compact revision: history was lost;
//   - an error marked with Fatal by the source (bad request, refused
//     credentials, unsupported server), at once, without retrying;
//   - a *RetryError (errors.Is(err, ErrRetriesExhausted)) once the retry
//     policy's MaxRetries retries in a row have failed;
//   - an error wrapping ErrInvalidOption, as the only value, for bad options.
//
// Every other failure is retried under the RetryPolicy (see Retry;
// exponential backoff with jitter, forever by default); it is reported to
// the OnWarning hook and logged, but never yielded.
//
// IsFinal is the one rule for what such an error means to the layers
// above: ctx.Err(), Fatal errors, ErrInvalidOption and ErrCompacted are
// final (opening the stream again cannot help without a new decision),
// a *RetryError is not (a supervisor such as operators.Resume reopens
// After(RetryError.Position)). RetryPolicy and Retrier are exported so
// that those layers wait between reopens exactly as the engine waits
// between polls.
//
// # When a Source is polled
//
// What a Source may infer from a call of Poll(ctx, after, limit), for
// example to acknowledge what the consumer has finished with:
//
//   - With Prefetch(false), when Poll is called after a revision r other
//     than the start position (After's revision, the head FromNow learned,
//     or 0 or the compact revision FromStart moved to), the item with
//     revision r has been delivered
//     and the loop body that received it has returned; so has every item
//     before it. The next poll follows that return (and, once caught up,
//     the poll interval).
//   - With prefetching (the default), Poll after r may be called as soon
//     as the page holding r has been received, before r and the rest of
//     that page are delivered: while catching up, the engine asks for the
//     next page at once. What holds then is one page less: every item up
//     to the after revision of the previous successful poll (the start of
//     the page holding r) has been delivered and handled. A poll that
//     finds the stream caught up is never followed by a prefetch, so the
//     next poll after it behaves as with Prefetch(false).
//   - With a Source that calls HintNext, the next poll may start while
//     the poll holding r has not returned yet, after the hinted revision
//     (which may be an estimate, no item's revision). What holds is the
//     same as with prefetching: every item up to the after revision of
//     the poll that hinted has been delivered and handled. That poll may
//     turn out to find the stream caught up; the poll started on its hint
//     is then cancelled or its page dropped, and the next poll follows the
//     poll interval as usual.
//   - With ParallelCatchUp, while catching up, the after revision of a
//     poll may be an estimate ahead of what has been received: such a
//     poll implies nothing about delivery. Once a poll finds the stream
//     caught up, the polls still in flight are cancelled and the next poll
//     behaves as with Prefetch(false), until the stream falls behind again.
//   - A failed poll is retried with the same after revision; a poll after
//     the zero Revision (learning the head, FromNow) carries no such
//     meaning, and neither does a poll whose ctx is cancelled before it
//     returns (the consumer broke out, or a prefetch was abandoned): no
//     item of its page is delivered.
//   - Poll after r never implies that an item newer than r was delivered.
//
// The position only moves with delivered items. A source that filters on
// the server (such as CloudTower's resource_type) may therefore sit at an
// old revision while the feed moves on; if the server then compacts past
// it, the stream ends with ErrCompacted even when no change that the filter
// keeps was lost. That errs on the safe side: the consumer re-lists.
package stream
