package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the quickstart as README's command does (-n 50) and
// checks that it prints changes in CloudTower's vocabulary. The fake
// server accepts only HTTP Basic API credentials on the resource-change
// endpoint, so getting any change at all proves they were on the wire.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out, 50, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50:\n%s", len(lines), out.String())
	}
	known := map[string]bool{}
	for _, ty := range fakeserver.ResourceTypes() {
		known[ty] = true
	}
	actions := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 || !known[f[2]] {
			t.Fatalf("line %q: want revision, action, a known type, id", l)
		}
		actions[f[1]]++
	}
	if actions[fakeserver.ActionInsert] == 0 || actions[fakeserver.ActionUpdate] == 0 || len(actions) > 3 {
		t.Errorf("actions %v", actions)
	}
}

// TestQuickstartTypes is the -types example of the package documentation.
func TestQuickstartTypes(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 5, "Vm,Host"); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if f := strings.Fields(l); len(f) != 4 || (f[2] != fakeserver.TypeVM && f[2] != fakeserver.TypeHost) {
			t.Errorf("line %q: want a Vm or Host change", l)
		}
	}
}
