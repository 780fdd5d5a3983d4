package informer

import (
	"cmp"
	"context"
	"fmt"
)

// Lister lists every current object of the informer's kind.
//
// List calls yield with successive pages of objects until all have been
// given, then returns nil; it returns the first error of yield at once. An
// error is retried (the whole start over) unless it is final for the
// stream (stream.Fatal, stream.ErrInvalidOption) or ctx is done. An object
// may be given twice (the later one wins); the informer checks nothing
// else, so the lister must not miss an object that exists during the
// whole listing: OffsetLister gives that guarantee over offset paging.
type Lister[V any] interface {
	List(ctx context.Context, yield func(page []V) error) error
}

// ListFunc adapts a function to the Lister interface.
type ListFunc[V any] func(ctx context.Context, yield func(page []V) error) error

// List calls f.
func (f ListFunc[V]) List(ctx context.Context, yield func(page []V) error) error {
	return f(ctx, yield)
}

// FetchFunc fetches one page for OffsetLister: at most limit objects,
// skipping the first skip, in ascending key order.
type FetchFunc[V any] func(ctx context.Context, skip, limit int) ([]V, error)

// OffsetLister returns a Lister over an API paged by offset (skip/first),
// ordered by an ascending key, such as CloudTower's get-* operations with
// orderBy id_ASC. Offset paging alone misses objects when objects before
// the current offset are deleted during the listing (the rest shift down
// a page); OffsetLister does not: each page after the first is requested
// from the position of the previous page's last object, must start at or
// before that key (otherwise it steps back, doubling, until it does), and
// objects up to that key are dropped. Objects inserted or deleted while it
// lists may or may not be included; the informer's replay of the changes
// made meanwhile corrects that. limit must be at least 2.
//
// The fetch function's order must agree with Go's < on K.
func OffsetLister[K cmp.Ordered, V any](key func(V) K, limit int, fetch FetchFunc[V]) Lister[V] {
	return ListFunc[V](func(ctx context.Context, yield func([]V) error) error {
		if limit < 2 || key == nil || fetch == nil {
			return fmt.Errorf("informer: OffsetLister: want limit >= 2 (got %d), non-nil key and fetch", limit)
		}
		var (
			last K
			have bool // last is set
			skip int  // offset of the next request
			back int  // current step back
		)
		for {
			page, err := fetch(ctx, skip, limit)
			if err != nil {
				return err
			}
			for i := 1; i < len(page); i++ {
				if key(page[i]) <= key(page[i-1]) {
					return fmt.Errorf("informer: OffsetLister: page at offset %d is not in ascending key order (%v then %v)", skip, key(page[i-1]), key(page[i]))
				}
			}
			if have && skip > 0 && (len(page) == 0 || key(page[0]) > last) {
				// Objects before the offset were deleted: the page may
				// have skipped some. Step back until it overlaps.
				back = max(1, back*2)
				skip = max(0, skip-back)
				continue
			}
			back = 0
			from := 0
			if have {
				for from < len(page) && key(page[from]) <= last {
					from++
				}
			}
			if fresh := page[from:]; len(fresh) > 0 {
				if err := yield(fresh); err != nil {
					return err
				}
				last, have = key(fresh[len(fresh)-1]), true
			}
			if len(page) < limit {
				return nil
			}
			skip += len(page) - 1 // the next page starts with the last one seen
		}
	})
}
