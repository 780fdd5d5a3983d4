package operators

import (
	"errors"
	"fmt"
)

// ErrInvalidArgument is wrapped by the error an operator yields, as the
// only value of its sequence, when it is given a bad argument (a batch
// size below one, a negative wait, a nil function).
var ErrInvalidArgument = errors.New("invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("operators: %w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
