package operators

import (
	"context"
	"errors"
	"iter"
	"sync"
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
// stream.ErrInvalidOption, yielded as the only value.
//
// CoalesceByKey reads seq in one goroutine per pass, like Batch. That
// goroutine coalesces the values of the open window itself and hands the
// whole window over when it closes, so the cost per value is a map update
// under an uncontended lock. It calls key, never while the loop body runs;
// a panic in key is raised again on the goroutine of the range loop.
// Build seq with ctx and cancel ctx when the loop is done, or that
// goroutine outlives the loop until seq's next value (see the package
// documentation):
//
//	ctx, cancel := context.WithCancel(ctx)
//	defer cancel() // stops the reading goroutine, whatever ends the loop
//	for ev, err := range operators.CoalesceByKey(ctx, stream.Watch(ctx, src), id, time.Second) {
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
		w := &windower[T, K]{key: key, window: window, timer: time.NewTimer(window),
			out: make(chan windowMsg), done: make(chan struct{})}
		w.timer.Stop()
		defer w.timer.Stop()
		w.idle.L = &w.mu
		go w.read(seq)
		defer w.stop()
		for {
			select {
			case m, ok := <-w.out:
				if !ok { // seq has ended: flush the last window
					if w.held.flush(yield) {
						if cerr := ctx.Err(); cerr != nil {
							yield(zero, cerr) // the upstream ended silently on cancel
						}
					}
					return
				}
				if m.panicked {
					panic(m.panic)
				}
				if !w.held.flush(yield) {
					return
				}
				if cerr := ctx.Err(); cerr != nil && errors.Is(m.err, cerr) {
					// The upstream ended because ctx is done: end with
					// ctx.Err() once, as below.
					yield(zero, cerr)
					return
				}
				if !yield(zero, m.err) {
					return
				}
				w.handled()
			case <-w.timer.C:
				if !w.takeDue() {
					continue
				}
				if !w.held.flush(yield) {
					return
				}
				w.handled()
			case <-ctx.Done():
				w.cancelled(ctx, yield)
				return
			}
		}
	}
}

// windower is one pass of CoalesceByKey. Its goroutine (read) adds values
// to held and hands errors over out, each with the held values to flush
// first; the consumer takes held when its window has passed, and when out
// is closed. Only one
// window exists at a time: whoever takes it (read for an error, the
// consumer at the window's end) sets busy, and read waits for the consumer
// to clear busy, once it has yielded the window, before it touches held
// again. So the consumer reads held without the lock while busy.
type windower[T any, K comparable] struct {
	key    func(T) K
	window time.Duration
	timer  *time.Timer
	out    chan windowMsg
	done   chan struct{} // closed when the consumer has left

	mu    sync.Mutex
	idle  sync.Cond // signalled when busy is cleared or quit set
	held  coalescer[T, K]
	first time.Time // when the open window's first value arrived
	busy  bool      // the consumer is handling held (or will, for a message)
	quit  bool      // the consumer has left, or has taken held for good
}

// windowMsg tells the consumer to flush held, then yield err, or to panic
// again with the value of a panic in the key function.
type windowMsg struct {
	err      error
	panic    any
	panicked bool
}

// read is the reading goroutine. It returns when seq ends, or when the
// consumer has left: at once if it is waiting to hand a message over or
// for the consumer to handle a window, else at seq's next value.
func (w *windower[T, K]) read(seq iter.Seq2[T, error]) {
	defer close(w.out)
	for v, err := range seq {
		if !w.wait() {
			return
		}
		var m windowMsg
		if err == nil {
			k, panicked, p := w.keyOf(v)
			if !panicked {
				if w.held.live == 0 {
					w.first = time.Now()
					w.timer.Reset(w.window)
				}
				w.held.add(k, v)
				w.mu.Unlock()
				continue
			}
			m = windowMsg{panic: p, panicked: true}
		} else {
			m = windowMsg{err: err}
		}
		w.busy = true
		w.timer.Stop() // the window is closed
		w.mu.Unlock()
		if !w.send(m) || m.panicked {
			return
		}
	}
	// Leave the last window to the consumer, which flushes it once out is
	// closed; it must not touch held before then.
	if w.wait() {
		w.mu.Unlock()
	}
}

// keyOf returns key(v), or the value of a panic in key.
func (w *windower[T, K]) keyOf(v T) (k K, panicked bool, p any) {
	panicked = true
	defer func() {
		if panicked {
			p = recover()
		}
	}()
	k = w.key(v)
	return k, false, nil
}

// wait locks w.mu once the consumer is done with held. It returns false,
// with w.mu unlocked, if the consumer has left.
func (w *windower[T, K]) wait() bool {
	w.mu.Lock()
	for w.busy && !w.quit {
		w.idle.Wait()
	}
	if w.quit {
		w.mu.Unlock()
		return false
	}
	return true
}

// takeDue gives held to the consumer if its window has passed. A timer
// tick that raced with an error, which took held out, must not cut the
// next window short.
func (w *windower[T, K]) takeDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy || w.held.live == 0 || time.Since(w.first) < w.window {
		return false
	}
	w.busy = true
	return true
}

// handled gives held back to read once the consumer has yielded it.
func (w *windower[T, K]) handled() { w.signal(func() { w.busy = false }) }

// leave stops read from touching held again.
func (w *windower[T, K]) leave() { w.signal(func() { w.quit = true }) }

// signal applies change under the lock and wakes read if it waits.
func (w *windower[T, K]) signal(change func()) {
	w.mu.Lock()
	change()
	w.idle.Signal()
	w.mu.Unlock()
}

// cancelled ends a pass whose ctx is done: it stops read from touching
// held, then yields held and ctx.Err(). If read has taken an error out, held
// holds the values to flush before it; the error is dropped, as a value
// read ahead is (read's send fails, so seq sees the loop stop).
func (w *windower[T, K]) cancelled(ctx context.Context, yield func(T, error) bool) {
	w.leave()
	if w.held.flush(yield) {
		var zero T
		yield(zero, ctx.Err())
	}
}

// send hands m to the consumer; false means the consumer has left.
func (w *windower[T, K]) send(m windowMsg) bool {
	select {
	case w.out <- m:
		return true
	case <-w.done:
		return false
	}
}

// stop tells the reading goroutine that the consumer has left.
func (w *windower[T, K]) stop() {
	w.leave()
	close(w.done)
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
