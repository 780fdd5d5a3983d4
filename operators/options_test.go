package operators

import (
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// TestOptionErr: every option type checks its value where it is given
// (Err), with the one sentinel stream.ErrInvalidOption.
func TestOptionErr(t *testing.T) {
	bad := map[string]interface{ Err() error }{
		"StartAfter(zero)":           StartAfter(stream.Revision{}),
		"OnCompaction(7)":            OnCompaction(7),
		"MaxReopens(-2)":             MaxReopens(-2),
		"ReopenBackoff(negative)":    ReopenBackoff(stream.RetryPolicy{Min: -time.Second}),
		"ReopenBackoff(jitter 2)":    ReopenBackoff(stream.RetryPolicy{Jitter: 2}),
		"WithStreamOptions(page 0)":  WithStreamOptions(stream.PageSize(0)),
		"WithStreamOptions(After 0)": WithStreamOptions(stream.After(stream.Revision{})),
		"Buffer(-1)":                 Buffer(-1),
		"WhenSlow(9)":                WhenSlow(9),
	}
	for name, o := range bad {
		t.Run(name, func(t *testing.T) { wantErrIs(t, o.Err(), stream.ErrInvalidOption) })
	}
	good := []interface{ Err() error }{
		ResumeOption(nil), StartAfter(rev(3)), OnCompaction(Restart), MaxReopens(stream.NoRetryLimit), MaxReopens(0),
		ReopenBackoff(DefaultReopenBackoff()), WithStreamOptions(stream.FromStart(), stream.PageSize(2)), OnReopen(nil),
		BroadcastOption(nil), Buffer(0), WhenSlow(DropSlow),
	}
	for i, o := range good {
		if err := o.Err(); err != nil {
			t.Errorf("option %d: %v", i, err)
		}
	}
	if err := DefaultReopenBackoff().Validate(); err != nil {
		t.Error(err)
	}
}
