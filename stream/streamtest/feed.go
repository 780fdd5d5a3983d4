package streamtest

import (
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// Item is a change of a Feed.
type Item struct {
	Rev   uint64 `json:"rev"` // the revision; 0 means none (Feed.Revision fails)
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// Revs returns the revisions of items, in order.
func Revs(items []Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Rev
	}
	return out
}

// Rev returns the revision n.
func Rev(n uint64) stream.Revision { return stream.RevisionFromUint64(n) }

// DefaultKeys are the keys Append cycles through: the item with revision
// r has key DefaultKeys[r%3].
var DefaultKeys = []string{"a", "b", "c"}

// ErrFault is the error of the failures FailNext and FailEvery inject.
var ErrFault = errors.New("streamtest: injected fault")

// A Fault is a scripted failure of one poll (see Feed.Inject): it runs
// with the poll's context and, if it returns an error, the poll fails with
// it. A nil Fault lets its poll pass.
type Fault func(ctx context.Context) error

// FailWith returns a Fault that fails its poll with err.
func FailWith(err error) Fault { return func(context.Context) error { return err } }

// Hang is a Fault that blocks its poll until the poll's context is done.
func Hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// Behavior sets the server behaviours that a change feed's API may leave
// open; the engine must keep its guarantees under each. The zero Behavior
// is the plain one.
type Behavior struct {
	// Inclusive: a page after r includes r itself, if it is kept.
	Inclusive bool
	// OldestOnAbsent: a poll after the zero Revision returns the oldest
	// page (else the newest).
	OldestOnAbsent bool
	// Shuffle: the items of a page come in a random (seeded) order.
	Shuffle bool
	// RepeatEvery, if positive, makes every RepeatEvery-th poll return the
	// previous page again: a stale page, if it was the page after a
	// revision no newer than this poll's.
	RepeatEvery int
}

// PollCall records one call of Feed.Poll.
type PollCall struct {
	After stream.Revision
	Limit int
	At    time.Time // time.Now() when the poll was recorded
}

// Feed is an in-memory change feed and a stream.Source[Item] over it. Its
// items have revisions 1, 2, 3, ... in the order appended. It can discard
// history (Compact), fail or hang polls (Inject, FailNext, FailEvery), and
// mimic the server behaviours of Behavior. It records every poll (Polls).
//
// A page after revision r holds the kept items after r, at most limit of
// them; its Head is the newest revision appended ("0" before the first),
// its Compact the newest discarded one (zero if none).
//
// The zero Feed is empty and ready to use. A Feed is safe for concurrent
// use; its hooks run without its lock held and may call its methods.
type Feed struct {
	mu       sync.Mutex
	items    []Item // kept items, ascending
	head     uint64 // newest revision appended
	compact  uint64 // newest revision discarded
	keys     []string
	behavior Behavior
	shuffle  *rand.Rand
	faults   []Fault
	failNth  int
	failErr  error
	endErr   error
	hook     func(ctx context.Context, after stream.Revision) error
	polls    []PollCall
	last     stream.Page[Item] // the previous page, for RepeatEvery
	lastAt   stream.Revision   // the revision it was after
}

// NewFeed returns a Feed holding n items, with revisions 1 to n.
func NewFeed(n int) *Feed {
	f := &Feed{}
	f.Append(n)
	return f
}

// Append adds n items and returns the new head revision. The item with
// revision r has key DefaultKeys[r%3] (or the keys set with SetKeys) and
// the value "v<r>".
func (f *Feed) Append(n int) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := f.keys
	if len(keys) == 0 {
		keys = DefaultKeys
	}
	for range n {
		f.head++
		r := f.head
		f.items = append(f.items, Item{Rev: r, Key: keys[r%uint64(len(keys))], Value: "v" + strconv.FormatUint(r, 10)})
	}
	return f.head
}

// Add appends items with the given keys and values, and returns the new
// head revision. Each item's Rev is set to the next revision.
func (f *Feed) Add(items ...Item) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range items {
		f.head++
		it.Rev = f.head
		f.items = append(f.items, it)
	}
	return f.head
}

// SetKeys sets the keys Append cycles through: revision r gets
// keys[r%len(keys)]. No keys means DefaultKeys.
func (f *Feed) SetKeys(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = slices.Clone(keys)
}

// Head returns the newest revision appended, 0 if none.
func (f *Feed) Head() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head
}

// Compact discards the items up to and including upTo (at most the head);
// upTo becomes the compact revision. Compacting below the current compact
// revision does nothing.
func (f *Feed) Compact(upTo uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	upTo = min(upTo, f.head)
	if upTo <= f.compact {
		return
	}
	f.items = slices.Delete(f.items, 0, f.indexAfter(upTo))
	f.compact = upTo
}

// CompactRevision returns the newest revision discarded, 0 if none.
func (f *Feed) CompactRevision() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compact
}

// Items returns the kept items after revision after: what a consumer
// watching after it should see.
func (f *Feed) Items(after uint64) []Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items[f.indexAfter(after):])
}

// SetBehavior sets the server behaviours the Feed mimics.
func (f *Feed) SetBehavior(b Behavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behavior = b
	f.shuffle = nil
	if b.Shuffle {
		f.shuffle = rand.New(rand.NewPCG(1, 2))
	}
}

// Inject scripts the next polls: the n-th poll from now runs faults[n-1].
// Faults queue up behind those not yet used.
func (f *Feed) Inject(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

// FailNext makes the next poll fail with ErrFault (after the faults
// already injected).
func (f *Feed) FailNext() { f.Inject(FailWith(ErrFault)) }

// FailEvery makes every n-th poll fail with err (ErrFault if nil), counting
// all polls so far; n <= 0 turns it off.
func (f *Feed) FailEvery(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrFault
	}
	f.failNth, f.failErr = n, err
}

// EndWhenDrained makes a poll after a revision fail with err once it finds
// no newer item (nil turns it off). Mark err with stream.Fatal to end a
// stream over the Feed once it has delivered everything.
func (f *Feed) EndWhenDrained(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endErr = err
}

// OnPoll sets a hook that runs at the start of each poll, before the poll
// is recorded and without the Feed's lock held; an error it returns fails
// the poll. nil removes it.
func (f *Feed) OnPoll(h func(ctx context.Context, after stream.Revision) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// Polls returns the polls so far, in order.
func (f *Feed) Polls() []PollCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.polls)
}

// Revision implements stream.Source: the item's Rev, an error if it is 0.
func (f *Feed) Revision(it Item) (stream.Revision, error) {
	if it.Rev == 0 {
		return stream.Revision{}, errors.New("streamtest: item without revision")
	}
	return Rev(it.Rev), nil
}

// Watch watches the Feed: stream.Watch(ctx, f, opts...).
func (f *Feed) Watch(ctx context.Context, opts ...stream.Option) iter.Seq2[Item, error] {
	return stream.Watch(ctx, f, opts...)
}

// Poll implements stream.Poller.
func (f *Feed) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[Item], error) {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, after); err != nil {
			return stream.Page[Item]{}, err
		}
	}

	f.mu.Lock()
	f.polls = append(f.polls, PollCall{After: after, Limit: limit, At: time.Now()})
	n := len(f.polls)
	var fault Fault
	if len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	if fault == nil && f.failNth > 0 && n%f.failNth == 0 {
		fault = FailWith(f.failErr)
	}
	f.mu.Unlock()
	if fault != nil {
		if err := fault(ctx); err != nil {
			return stream.Page[Item]{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return stream.Page[Item]{}, err
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.behavior
	if b.RepeatEvery > 0 && n%b.RepeatEvery == 0 && f.last.Items != nil &&
		!f.lastAt.IsZero() && !after.IsZero() && !after.Less(f.lastAt) {
		p := f.last
		p.Items = slices.Clone(p.Items)
		return p, nil
	}
	var start int
	switch {
	case after.IsZero() && b.OldestOnAbsent:
		start = 0
	case after.IsZero():
		start = max(0, len(f.items)-limit)
	default:
		start = len(f.items) // after a revision beyond uint64: nothing
		if a, ok := after.Uint64(); ok {
			start = f.indexAfter(a)
			if b.Inclusive && start > 0 && f.items[start-1].Rev == a {
				start--
			}
		}
	}
	end := min(len(f.items), start+max(limit, 0))
	page := stream.Page[Item]{Head: Rev(f.head), Items: slices.Clone(f.items[start:end])}
	if f.compact > 0 {
		page.Compact = Rev(f.compact)
	}
	if f.endErr != nil && !after.IsZero() && len(page.Items) == 0 {
		return stream.Page[Item]{}, f.endErr
	}
	if f.shuffle != nil {
		f.shuffle.Shuffle(len(page.Items), func(i, j int) { page.Items[i], page.Items[j] = page.Items[j], page.Items[i] })
	}
	if b.RepeatEvery > 0 {
		f.last, f.lastAt = page, after
		f.last.Items = slices.Clone(page.Items)
	}
	return page, nil
}

// indexAfter returns the index of the first kept item above rev.
func (f *Feed) indexAfter(rev uint64) int {
	i, _ := slices.BinarySearchFunc(f.items, rev, func(it Item, r uint64) int {
		if it.Rev <= r {
			return -1
		}
		return 1
	})
	return i
}
