package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
)

// Watch returns the changes of src as a sequence, in revision order, each
// revision once, none skipped, until ctx is done, the loop breaks, or a
// fatal error happens:
//
//	for ev, err := range stream.Watch(ctx, src, stream.After(rev)) {
//		if err != nil {
//			// The stream has ended: errors.Is(err, stream.ErrCompacted),
//			// stream.ErrRetriesExhausted, a Fatal error from the source,
//			// or ctx.Err().
//			return err
//		}
//		handle(ev)
//	}
//
// The sequence yields either an item with a nil error or, as its last value,
// the zero item with a non-nil error. It never ends without an error unless
// the consumer breaks: when ctx is done it yields ctx.Err(). Ranging with a
// single variable (for ev := range ...) compiles, but then that final error
// is invisible; use the two-value form.
//
// Failed polls that will be retried are not yielded: they go to the
// OnWarning hook and the logger. Breaking out of the loop, or cancelling
// ctx, stops the in-flight request, the wait and the prefetch before the
// loop statement returns, and leaves no goroutine behind.
//
// Each range over the returned sequence starts a new, independent watch
// with the same options. A bad option is reported as the sequence's only
// value, an error wrapping ErrInvalidOption.
func Watch[E any](ctx context.Context, src Source[E], opts ...Option) iter.Seq2[E, error] {
	cfg := newConfig(opts)
	return func(yield func(E, error) bool) {
		var zero E
		if err := errors.Join(cfg.errs...); err != nil {
			yield(zero, err)
			return
		}
		if src == nil {
			yield(zero, fmt.Errorf("%w: nil Source", ErrInvalidOption))
			return
		}
		e := &engine[E]{cfg: cfg, src: src}
		if err := e.run(ctx, yield); err != nil {
			yield(zero, err)
		}
	}
}

type result[E any] struct {
	after    Revision
	page     Page[E]
	err      error
	duration time.Duration
}

type engine[E any] struct {
	cfg *config
	src Source[E]
	pos Revision // last revision delivered, or started after
	// fromStart: nothing delivered yet, and the stream starts at the
	// oldest change kept, so a compact revision above pos moves pos.
	fromStart bool

	// scratch, reused between pages
	revs  []Revision
	order []int
}

// run drives the watch. It returns the error that ends the stream, or nil
// when the consumer stopped.
func (e *engine[E]) run(parent context.Context, yield func(E, error) bool) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	var pending chan result[E] // the prefetch in flight, if any
	defer func() {
		if pending != nil {
			cancel()
			<-pending
		}
	}()

	needHead := false
	switch e.cfg.start {
	case startNow:
		needHead = true
	case startFirst:
		e.pos, e.fromStart = Revision{d: "0"}, true
	case startAfter:
		e.pos = e.cfg.after
	}
	retry := e.cfg.retry.Start()
	for {
		var res result[E]
		switch {
		case needHead:
			res = e.poll(ctx, Revision{})
		case pending != nil:
			select {
			case res = <-pending:
				pending = nil
			case <-ctx.Done():
				return parent.Err()
			}
		default:
			res = e.poll(ctx, e.pos)
		}
		if parent.Err() != nil {
			return parent.Err()
		}

		var caughtUp bool
		err := res.err
		if err == nil && !needHead {
			caughtUp, err = e.accept(res)
		}
		if err != nil {
			// ctx is live here: a context error is the poll's own timeout, retried.
			if isFinalFailure(err) {
				return err
			}
			wait, ok := retry.Next(err)
			if !ok {
				return &RetryError{Attempts: retry.Failures(), Err: err, Position: e.pos}
			}
			e.warn(err, retry.Failures(), wait)
			if err := ctxtime.Sleep(ctx, wait); err != nil {
				return parent.Err()
			}
			continue
		}
		if retry.Failures() > 0 {
			e.cfg.logger.Info("towerwatch: poll recovered", "failures", retry.Failures(), "position", e.pos.String())
		}
		retry.Reset()

		if needHead {
			needHead = false
			e.pos = res.page.Head
			if e.pos.IsZero() { // no head known: from the oldest change kept
				e.pos, e.fromStart = Revision{d: "0"}, true
			}
			e.cfg.logger.Debug("towerwatch: starting from the head revision", "head", e.pos.String())
			continue
		}

		items := res.page.Items
		if !caughtUp && e.cfg.prefetch && len(e.order) > 0 {
			next := e.revs[e.order[len(e.order)-1]]
			ch := make(chan result[E], 1)
			go func() { ch <- e.poll(ctx, next) }()
			pending = ch
		}
		for _, j := range e.order {
			if err := parent.Err(); err != nil {
				return err // no change after ctx is done
			}
			e.pos, e.fromStart = e.revs[j], false
			if !yield(items[j], nil) {
				return nil
			}
		}
		if caughtUp {
			if err := ctxtime.Sleep(ctx, jitter(e.cfg.interval)); err != nil {
				return parent.Err()
			}
		}
	}
}

// poll asks the source for one page after rev, within the poll timeout.
func (e *engine[E]) poll(ctx context.Context, after Revision) result[E] {
	limit := e.cfg.pageSize
	if after.IsZero() {
		limit = 1 // only the head revision is wanted
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if e.cfg.pollTimeout > 0 {
		pctx, cancel = context.WithTimeout(ctx, e.cfg.pollTimeout)
	}
	defer cancel()
	start := time.Now()
	page, err := e.src.Poll(pctx, after, limit)
	d := time.Since(start)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		err = fmt.Errorf("poll timed out after %v: %w", e.cfg.pollTimeout, err)
	}
	return result[E]{after: after, page: page, err: err, duration: d}
}

// accept checks a page against the position and sets e.order to the
// indexes of the items to deliver, in revision order; the revision of item
// j is e.revs[j].
func (e *engine[E]) accept(res result[E]) (caughtUp bool, err error) {
	p := res.page
	if e.fromStart && e.pos.Less(p.Compact) {
		e.cfg.logger.Debug("towerwatch: starting after the compact revision", "compact", p.Compact.String())
		e.pos = p.Compact
	}
	if !p.Compact.IsZero() && e.pos.Less(p.Compact) {
		return false, &CompactedError{Position: e.pos, Compact: p.Compact}
	}
	e.revs = slices.Grow(e.revs[:0], len(p.Items))[:len(p.Items)]
	e.order = e.order[:0]
	sorted := true
	for i, it := range p.Items {
		r, err := e.src.Revision(it)
		if err != nil {
			return false, fmt.Errorf("%w: item %d of the page after %s: %w", ErrProtocol, i, res.after, err)
		}
		if r.IsZero() {
			return false, fmt.Errorf("%w: item %d of the page after %s has no revision", ErrProtocol, i, res.after)
		}
		e.revs[i] = r
		if !r.Less(e.pos) && r != e.pos { // r > pos
			if n := len(e.order); n > 0 && !e.revs[e.order[n-1]].Less(r) {
				sorted = false
			}
			e.order = append(e.order, i)
		}
	}
	if !sorted {
		slices.SortStableFunc(e.order, func(a, b int) int { return e.revs[a].Compare(e.revs[b]) })
		e.order = slices.CompactFunc(e.order, func(a, b int) bool { return e.revs[a] == e.revs[b] })
	}
	full := len(p.Items) >= e.cfg.pageSize
	if full && len(e.order) == 0 {
		return false, fmt.Errorf("%w: full page after %s has no revision above %s", ErrProtocol, res.after, e.pos)
	}
	var last Revision
	if n := len(e.order); n > 0 {
		last = e.revs[e.order[n-1]]
	}
	// Caught up when the page was not full and either it was empty (nothing
	// more matches) or it reached the head. A filtered feed may never reach
	// the head, so a short non-empty page below it costs one more poll.
	caughtUp = !full && (len(e.order) == 0 || p.Head.IsZero() || !last.Less(p.Head))
	if e.cfg.onPoll != nil {
		e.cfg.onPoll(PollInfo{Position: e.pos, Last: last, Head: p.Head, Compact: p.Compact,
			Items: len(p.Items), New: len(e.order), CaughtUp: caughtUp, Duration: res.duration})
	}
	return caughtUp, nil
}

func (e *engine[E]) warn(err error, failures int, wait time.Duration) {
	e.cfg.logger.Warn("towerwatch: poll failed, retrying", "error", err, "failures", failures,
		"retry_in", wait, "position", e.pos.String())
	if e.cfg.onWarning != nil {
		e.cfg.onWarning(err)
	}
}

// jitter adds up to 10% to d.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/10+1)
}
