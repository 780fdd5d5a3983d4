package operators

import "iter"

// msg is one value of a sequence, handed from a reading goroutine to the
// consumer.
type msg[T any] struct {
	v   T
	err error
}

// pull reads seq in a new goroutine and hands its values over the returned
// channel, unbuffered, so that the goroutine is never more than one value
// ahead of the consumer. The channel is closed when seq ends.
//
// stop tells the goroutine to quit: at once if it is waiting to hand a
// value over, else when seq yields its next value (the goroutine then
// returns false to seq) or ends. stop does not wait; it may be called more
// than once.
func pull[T any](seq iter.Seq2[T, error]) (values <-chan msg[T], stop func()) {
	ch := make(chan msg[T])
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for v, err := range seq {
			select {
			case ch <- msg[T]{v, err}:
			case <-done:
				return
			}
		}
	}()
	stopped := false
	return ch, func() {
		if !stopped {
			stopped = true
			close(done)
		}
	}
}
