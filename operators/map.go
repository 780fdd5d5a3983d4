package operators

import "iter"

// Map returns fn(v) for each value v of seq, in order. Errors pass through
// unchanged, paired with the zero U (fn is not called for them).
//
// Map runs on the range goroutine and allocates nothing per value beyond
// what fn allocates. A nil fn is an error wrapping
// stream.ErrInvalidOption, yielded as the only value.
func Map[T, U any](seq iter.Seq2[T, error], fn func(T) U) iter.Seq2[U, error] {
	return func(yield func(U, error) bool) {
		if fn == nil {
			var zero U
			yield(zero, invalid("Map: nil function"))
			return
		}
		for v, err := range seq {
			if err != nil {
				var zero U
				if !yield(zero, err) {
					return
				}
				continue
			}
			if !yield(fn(v), nil) {
				return
			}
		}
	}
}
