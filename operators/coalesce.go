package operators

import (
	"context"
	"errors"
	"iter"
	"time"
)

// CoalesceByKey keeps, within each window, only the newest value of seq per
// key (for example per resource id), for consumers such as reconcilers
// that only need the latest state of each object.
//
// A window opens when a value arrives while none is held, and closes
// window later: then the held values are yielded, one per key, in the
// order of their newest occurrence (for a stream, revision order). While
// the consumer handles them, seq waits; the next value opens the next
// window.
//
// Memory is bounded by the number of distinct keys seen in one window.
//
// An error from seq first flushes the held values, then passes through;
// CoalesceByKey goes on reading seq after it. When seq ends, the held
// values are flushed. When ctx is done, they are flushed and the sequence
// ends with ctx.Err().
//
// A nil key function or window <= 0 is an error wrapping
// ErrInvalidArgument, yielded as the only value.
//
// CoalesceByKey reads seq in one goroutine per pass, like Batch; see the
// package documentation for how that goroutine is stopped.
func CoalesceByKey[T any, K comparable](ctx context.Context, seq iter.Seq2[T, error], key func(T) K, window time.Duration) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if key == nil {
			yield(zero, invalid("CoalesceByKey: nil key function"))
			return
		}
		if window <= 0 {
			yield(zero, invalid("CoalesceByKey: window %v, must be positive", window))
			return
		}
		values, stop := pull(seq)
		defer stop()

		var (
			held    coalescer[T, K]
			timer   *time.Timer
			timeout <-chan time.Time
		)
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		flush := func() bool {
			if timer != nil {
				timer.Stop()
			}
			timeout = nil
			return held.flush(yield)
		}
		for {
			select {
			case m, ok := <-values:
				if !ok {
					flush()
					return
				}
				if m.err != nil {
					if !flush() {
						return
					}
					if cerr := ctx.Err(); cerr != nil && errors.Is(m.err, cerr) {
						// The upstream ended because ctx is done: end
						// with ctx.Err() once, as below.
						yield(zero, cerr)
						return
					}
					if !yield(zero, m.err) {
						return
					}
					continue
				}
				if held.live == 0 {
					if timer == nil {
						timer = time.NewTimer(window)
					} else {
						timer.Reset(window)
					}
					timeout = timer.C
				}
				held.add(key(m.v), m.v)
			case <-timeout:
				timeout = nil
				if !flush() {
					return
				}
			case <-ctx.Done():
				if flush() {
					yield(zero, ctx.Err())
				}
				return
			}
		}
	}
}

// coalescer holds the newest value per key, in the order of their newest
// occurrence. Superseded entries become holes, compacted away when they
// outnumber the live ones, so memory stays within a small factor of the
// number of distinct keys.
type coalescer[T any, K comparable] struct {
	index   map[K]int // key -> position in entries
	entries []entry[T, K]
	live    int
}

type entry[T any, K comparable] struct {
	v    T
	k    K
	live bool
}

func (c *coalescer[T, K]) add(k K, v T) {
	if c.index == nil {
		c.index = make(map[K]int)
	}
	if i, ok := c.index[k]; ok {
		c.entries[i] = entry[T, K]{} // free the old value now
		c.live--
	}
	c.index[k] = len(c.entries)
	c.entries = append(c.entries, entry[T, K]{v: v, k: k, live: true})
	c.live++
	if len(c.entries) >= 64 && len(c.entries) > 2*c.live {
		c.compact()
	}
}

func (c *coalescer[T, K]) compact() {
	j := 0
	for _, e := range c.entries {
		if e.live {
			c.entries[j] = e
			c.index[e.k] = j
			j++
		}
	}
	clear(c.entries[j:])
	c.entries = c.entries[:j]
}

// flush yields the live values in order and empties c. It reports whether
// the consumer wants more.
func (c *coalescer[T, K]) flush(yield func(T, error) bool) bool {
	if c.live == 0 {
		return true
	}
	entries := c.entries
	c.entries = nil
	c.live = 0
	clear(c.index)
	for i := range entries {
		if !entries[i].live {
			continue
		}
		v := entries[i].v
		entries[i] = entry[T, K]{}
		if !yield(v, nil) {
			return false
		}
	}
	c.entries = entries[:0]
	return true
}
