package stream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// change is the item type of the in-memory feed.
type change struct {
	Rev string
	Key string
}

// feed is an in-memory change feed with the knobs DESIGN.md lists for the
// real server, and scripted faults. It implements stream.Source[change].
type feed struct {
	mu        sync.Mutex
	log       []uint64 // revisions, ascending
	compact   uint64
	inclusive bool // start revision included in the page
	oldest    bool // absent start revision returns the oldest page (else newest)
	shuffle   *rand.Rand
	repeat    int // every repeat-th poll returns the previous page again
	faults    []func(ctx context.Context) error
	polls     []pollCall
	last      stream.Page[change]
	onPoll    func(ctx context.Context) error // runs before each poll, outside the lock
}

type pollCall struct {
	After stream.Revision
	Limit int
	At    time.Time
}

func newFeed(n int) *feed {
	f := &feed{}
	f.append(n)
	return f
}

func (f *feed) append(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := uint64(1)
	if len(f.log) > 0 {
		next = f.log[len(f.log)-1] + 1
	}
	for i := 0; i < n; i++ {
		f.log = append(f.log, next+uint64(i))
	}
}

// compactTo discards history up to and including rev.
func (f *feed) compactTo(rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := slices.BinarySearch(f.log, rev+1)
	f.log = slices.Delete(f.log, 0, i)
	f.compact = rev
}

// since returns the revisions after rev, as the consumer should see them.
func (f *feed) since(rev uint64) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.log {
		if r > rev {
			out = append(out, strconv.FormatUint(r, 10))
		}
	}
	return out
}

func (f *feed) inject(faults ...func(context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

func (f *feed) calls() []pollCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.polls)
}

func (f *feed) Revision(c change) (stream.Revision, error) { return stream.ParseRevision(c.Rev) }

func (f *feed) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[change], error) {
	if f.onPoll != nil {
		if err := f.onPoll(ctx); err != nil {
			return stream.Page[change]{}, err
		}
	}
	f.mu.Lock()
	f.polls = append(f.polls, pollCall{After: after, Limit: limit, At: time.Now()})
	var fault func(context.Context) error
	if len(f.faults) > 0 {
		fault, f.faults = f.faults[0], f.faults[1:]
	}
	f.mu.Unlock()
	if fault != nil {
		if err := fault(ctx); err != nil {
			return stream.Page[change]{}, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repeat > 0 && len(f.polls)%f.repeat == 0 && f.last.Items != nil {
		return f.last, nil
	}
	var start int
	switch {
	case after.IsZero() && f.oldest:
		start = 0
	case after.IsZero():
		start = max(0, len(f.log)-limit)
	default:
		a, _ := after.Uint64()
		if f.inclusive {
			start, _ = slices.BinarySearch(f.log, a)
		} else {
			start, _ = slices.BinarySearch(f.log, a+1)
		}
	}
	end := min(len(f.log), start+limit)
	page := stream.Page[change]{
		Head:    stream.RevisionFromUint64(f.compact),
		Compact: stream.RevisionFromUint64(f.compact),
	}
	if len(f.log) > 0 {
		page.Head = stream.RevisionFromUint64(f.log[len(f.log)-1])
	}
	for _, r := range f.log[start:end] {
		page.Items = append(page.Items, change{Rev: strconv.FormatUint(r, 10)})
	}
	if f.shuffle != nil {
		f.shuffle.Shuffle(len(page.Items), func(i, j int) { page.Items[i], page.Items[j] = page.Items[j], page.Items[i] })
	}
	f.last = page
	return page, nil
}

// Faults for feed.inject.
var errFlaky = errors.New("flaky: 503 service unavailable")

func failWith(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// collect drains seq, returning the revisions and the final error.
func collect(seq func(func(change, error) bool), max int) (revs []string, err error) {
	for c, e := range seq {
		if e != nil {
			return revs, e
		}
		revs = append(revs, c.Rev)
		if len(revs) == max {
			break
		}
	}
	return revs, nil
}

func quiet() stream.Option {
	return stream.Logger(slogDiscard)
}

func TestFeedSanity(t *testing.T) {
	f := newFeed(3)
	if got := fmt.Sprint(f.since(1)); got != "[2 3]" {
		t.Fatal(got)
	}
}
