package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A short run against the embedded fake server ends in sync.
func TestInventoryInSync(t *testing.T) {
	code, err := run(t.Context(), flags{duration: time.Second, every: 400 * time.Millisecond})
	if err != nil || code != 0 {
		t.Fatalf("run = %d, %v; want 0, nil", code, err)
	}
}
