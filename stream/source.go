package stream

import "context"

// Page is what a Poller returns for one request.
type Page[E any] struct {
	// Items are the changes after the requested revision, at most the
	// requested limit. They may be unsorted, may include the requested
	// revision itself, and may repeat items already delivered: the engine
	// sorts, drops and deduplicates.
	Items []E
	// Head is the server's newest revision (CloudTower's currentRevision),
	// or zero if unknown.
	Head Revision
	// Compact is the newest revision whose history the server has discarded
	// (CloudTower's compactRevision), or zero if none. A position below it
	// cannot be resumed without a gap.
	Compact Revision
}

// Poller fetches one page of changes.
//
// Poll returns changes after the revision after (all of them if after is
// zero: the server decides which page that is; the engine then only wants
// the head), at most limit of them. FromStart polls after revision 0. Poll
// must honour ctx. An error is retried under the stream's RetryPolicy
// unless it is marked with Fatal or wraps ErrInvalidOption or ErrCompacted
// (IsFinal's rule; a context error while ctx is live is a timeout, and is
// retried), or ctx is done. The package doc, under "When a Source is polled", says what a call
// tells about the consumer's progress.
type Poller[E any] interface {
	Poll(ctx context.Context, after Revision, limit int) (Page[E], error)
}

// Source is a Poller that can also read the revision of each of its items.
// Revision returns an error for an item whose revision is missing or
// invalid; the engine then rejects the whole page as a retryable protocol
// error, so that such an item is never delivered and nothing is skipped.
type Source[E any] interface {
	Poller[E]
	Revision(item E) (Revision, error)
}

// PollFunc adapts a function to the Poller interface.
type PollFunc[E any] func(ctx context.Context, after Revision, limit int) (Page[E], error)

// Poll calls f.
func (f PollFunc[E]) Poll(ctx context.Context, after Revision, limit int) (Page[E], error) {
	return f(ctx, after, limit)
}

// NewSource builds a Source from a poll function and a revision accessor.
func NewSource[E any](poll PollFunc[E], revision func(E) (Revision, error)) Source[E] {
	return funcSource[E]{poll: poll, rev: revision}
}

type funcSource[E any] struct {
	poll PollFunc[E]
	rev  func(E) (Revision, error)
}

func (s funcSource[E]) Poll(ctx context.Context, after Revision, limit int) (Page[E], error) {
	return s.poll(ctx, after, limit)
}

func (s funcSource[E]) Revision(item E) (Revision, error) { return s.rev(item) }

type hintKey struct{}

// HintNext lets a Source say, from inside Poll and with the ctx Poll was
// given, where the next page will start before Poll returns: typically
// the last revision of a full page, found by a quick scan of the response
// before it is decoded. While the engine is catching up and waiting for
// this poll, it may then start the next poll after rev at once, so that
// fetching the next page overlaps decoding this one.
//
// The hint is an estimate and need not be exact: when this Poll returns,
// a poll after a hint above the page's last new revision is discarded and
// redone, so a wrong hint costs a request, never a change. Only the first
// hint of a poll counts; a zero rev, a ctx that does not come from the
// engine, or a poll that is not a prefetch is ignored. HintNext never
// blocks.
func HintNext(ctx context.Context, rev Revision) {
	if rev.IsZero() || ctx == nil {
		return
	}
	if ch, ok := ctx.Value(hintKey{}).(chan Revision); ok {
		select {
		case ch <- rev:
		default:
		}
	}
}
