package operators

import (
	"fmt"

	"github.com/towerwatch/towerwatch/stream"
)

// invalid returns the error for a bad argument or option: it wraps
// stream.ErrInvalidOption, the one sentinel for bad arguments in every
// package of this module.
func invalid(format string, args ...any) error {
	return fmt.Errorf("operators: %w: "+format, append([]any{stream.ErrInvalidOption}, args...)...)
}
