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
// the backlog and however slow the consumer. While a page is full, or its
// last change is below the server's head, the next poll follows at once;
// only once caught up does the engine wait PollInterval between polls.
//
// Breaking out of the loop or cancelling ctx stops the in-flight poll, the
// backoff wait and the prefetch before the range statement returns: no
// goroutine outlives the loop.
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
//   - a *RetryError (errors.Is(err, ErrRetriesExhausted)) once MaxRetries
//     retries in a row have failed;
//   - an error wrapping ErrInvalidOption, as the only value, for bad options.
//
// Every other failure is retried with exponential backoff and jitter,
// forever by default; it is reported to the OnWarning hook and logged, but
// never yielded.
//
// The position only moves with delivered items. A source that filters on
// the server (such as CloudTower's resource_type) may therefore sit at an
// old revision while the feed moves on; if the server then compacts past
// it, the stream ends with ErrCompacted even when no change that the filter
// keeps was lost. That errs on the safe side: the consumer re-lists.
package stream
