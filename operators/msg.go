package operators

// msg is one value of a sequence, handed from a reading goroutine to the
// consumer.
type msg[T any] struct {
	v   T
	err error
}
