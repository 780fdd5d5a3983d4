package bench

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/source/cloudtower"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(closeAfterRun{m})
}

// closeAfterRun runs the tests and benchmarks, then stops what
// BenchmarkCatchUp keeps for the whole process (its fake server and its
// client's keep-alive connections), so that goleak sees only real leaks.
type closeAfterRun struct{ m *testing.M }

func (c closeAfterRun) Run() int {
	code := c.m.Run()
	if catchUp.srv != nil {
		if catchUp.c != nil {
			cloudtower.CloseIdleConnections(catchUp.c)
		}
		catchUp.srv.Close()
	}
	return code
}
