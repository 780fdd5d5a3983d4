// Package ctxtime holds the one timing helper that the stream engine, the
// operators and the JetStream bridge share.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done, whichever comes first. It returns
// nil after a full wait and ctx.Err() otherwise, also when d <= 0 and ctx
// is already done. The timer is released before it returns.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
