package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
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

// A flight is a poll started ahead, on its own goroutine: the prefetch,
// a speculative poll of ParallelCatchUp, or the poll after a HintNext.
type flight[E any] struct {
	after  Revision
	ch     chan result[E] // buffered: the goroutine never blocks
	hint   chan Revision  // buffered: HintNext never blocks
	cancel context.CancelFunc
}

// stop cancels f and waits for its goroutine, which must not have
// delivered its result yet.
func (f *flight[E]) stop() {
	f.cancel()
	<-f.ch
}

type engine[E any] struct {
	cfg *config
	src Source[E]
	pos Revision // last revision delivered, or started after
	// fromStart: nothing delivered yet, and the stream starts at the
	// oldest change kept, so a compact revision above pos moves pos.
	fromStart bool

	// queue holds the flights, by ascending after revision, at most
	// depth() of them. While the engine waits for the poll of the page it
	// will deliver next, that poll is not in queue (see await).
	queue []*flight[E]

	// scratch, reused between pages
	revs  []Revision
	order []int
}

// errUseless: a speculative page (started below the position) holds
// nothing new although it is full. It is discarded, not retried.
var errUseless = errors.New("speculative page holds nothing new")

// depth is how many polls may be in flight while catching up and a page
// is being delivered.
func (e *engine[E]) depth() int {
	if !e.cfg.prefetch {
		return 0
	}
	return max(e.cfg.parallel, 1)
}

// launch starts a poll after rev on its own goroutine.
func (e *engine[E]) launch(ctx context.Context, after Revision) *flight[E] {
	fctx, cancel := context.WithCancel(ctx)
	f := &flight[E]{after: after, ch: make(chan result[E], 1), hint: make(chan Revision, 1), cancel: cancel}
	fctx = context.WithValue(fctx, hintKey{}, f.hint)
	go func() { f.ch <- e.poll(fctx, after) }()
	return f
}

// pushFront starts a poll after rev ahead of every queued one (rev is
// below them), dropping the last flight if that makes too many.
func (e *engine[E]) pushFront(ctx context.Context, rev Revision, limit int) {
	e.trim(limit - 1) // first, so that no more than limit are ever in flight
	e.queue = slices.Insert(e.queue, 0, e.launch(ctx, rev))
}

// trim stops the flights beyond the first limit.
func (e *engine[E]) trim(limit int) {
	for len(e.queue) > max(limit, 0) {
		n := len(e.queue) - 1
		e.queue[n].stop()
		e.queue[n] = nil
		e.queue = e.queue[:n]
	}
}

// stopAll stops every queued flight.
func (e *engine[E]) stopAll() {
	for _, f := range e.queue {
		f.cancel()
	}
	for i, f := range e.queue {
		<-f.ch
		e.queue[i] = nil
	}
	e.queue = e.queue[:0]
}

// speculate appends flights at estimated start revisions until the queue
// holds depth() of them. span is the distance between the start and the
// last revision of the full page just received; the next page is
// estimated to start after the previous start plus
// max(PageSize-1, 0.9·span): a full page after s holds PageSize distinct
// revisions above s (at s or above, for a server that includes s), so on
// a feed without gaps the estimate never overshoots. Revisions that do not
// fit in a uint64 are not estimated: the engine then runs one poll ahead,
// as without ParallelCatchUp.
func (e *engine[E]) speculate(ctx context.Context, span uint64) {
	step := max(uint64(e.cfg.pageSize-1), span/10*9+span%10*9/10, 1)
	for len(e.queue) > 0 && len(e.queue) < e.depth() {
		prev, ok := e.queue[len(e.queue)-1].after.Uint64()
		if !ok || prev > math.MaxUint64-step {
			return
		}
		e.queue = append(e.queue, e.launch(ctx, RevisionFromUint64(prev+step)))
	}
}

// run drives the watch. It returns the error that ends the stream, or nil
// when the consumer stopped.
func (e *engine[E]) run(parent context.Context, yield func(E, error) bool) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer e.stopAll()

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
	var span uint64 // of the last full page, for the estimates
	for {
		var res result[E]
		switch {
		case needHead:
			res = e.poll(ctx, Revision{})
		case len(e.queue) > 0:
			if e.pos.Less(e.queue[0].after) { // would leave a gap: poll after pos first
				e.pushFront(ctx, e.pos, e.depth())
			}
			head := e.queue[0]
			e.queue = slices.Delete(e.queue, 0, 1)
			var err error
			if res, err = e.await(ctx, head, span); err != nil {
				return parent.Err()
			}
		default:
			res = e.poll(ctx, e.pos)
		}
		if parent.Err() != nil {
			return parent.Err()
		}
		// Here res.after <= pos: the loop only awaits a poll that starts at
		// or below the position, so its page leaves no gap.

		var caughtUp bool
		err := res.err
		if err == nil && !needHead {
			caughtUp, err = e.accept(res)
		}
		if errors.Is(err, errUseless) {
			continue
		}
		if err != nil {
			e.stopAll()
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
		switch {
		case caughtUp:
			e.stopAll() // no poll in flight once caught up
		case e.depth() > 0 && len(e.order) > 0:
			last := e.revs[e.order[len(e.order)-1]]
			if len(e.queue) > 0 && last.Less(e.queue[0].after) {
				// The estimate overshot: the speculative polls wait
				// behind a poll of the gap.
				e.cfg.logger.Debug("towerwatch: speculative poll above the page, polling the gap", "page", last.String(), "speculative", e.queue[0].after.String())
			}
			if len(e.queue) == 0 || last.Less(e.queue[0].after) {
				e.pushFront(ctx, last, e.depth())
			}
			span = 0
			if len(items) >= e.cfg.pageSize {
				a, ok1 := res.after.Uint64()
				l, ok2 := last.Uint64()
				if ok1 && ok2 && a < l {
					span = l - a
					e.speculate(ctx, span)
				}
			}
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

// await waits for the result of head, the poll of the page to deliver
// next. Meanwhile nothing is being delivered, so once head's response
// has arrived (the source calls HintNext), one more poll may start: the
// poll after the hinted revision if the queue has none at or below it,
// else the next estimate. It returns a non-nil error only when ctx is done.
func (e *engine[E]) await(ctx context.Context, head *flight[E], span uint64) (result[E], error) {
	defer head.cancel()
	hint := head.hint
	for {
		select {
		case res := <-head.ch:
			return res, nil
		case h := <-hint:
			hint = nil // one hint per poll
			switch {
			case len(e.queue) >= e.depth() || !head.after.Less(h):
			case len(e.queue) == 0 || h.Less(e.queue[0].after):
				e.queue = slices.Insert(e.queue, 0, e.launch(ctx, h))
			case span > 0:
				e.speculate(ctx, span)
			}
		case <-ctx.Done():
			head.stop()
			return result[E]{}, ctx.Err()
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
	if full && len(e.order) == 0 && res.after.Less(e.pos) {
		return false, errUseless
	}
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
