package cloudtower

import (
	"testing"

	"github.com/towerwatch/towerwatch/stream"
)

// The guarantee matrix of TestEndToEndKnobs and TestEndToEndFaults, with
// stream.ParallelCatchUp(4): through Dial, the SDK and loopback HTTP, for
// every combination of the server's unknown semantics and under every
// fault, the delivered sequence is exactly the server's.
func TestEndToEndKnobsParallel(t *testing.T) { testEndToEndKnobs(t, stream.ParallelCatchUp(4)) }

func TestEndToEndFaultsParallel(t *testing.T) { testEndToEndFaults(t, true) }
