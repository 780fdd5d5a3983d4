package cli

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// TestDemo: --demo needs no server and starts at revision 0, so the demo
// log's changes come out in order; -o table works there too.
func TestDemo(t *testing.T) {
	res := run(t, nil, "--demo", "--limit", "150", "--demo-latency", "0")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	recs := parseNDJSON(t, res.stdout)
	if len(recs) != 150 {
		t.Fatalf("%d changes, want 150", len(recs))
	}
	for i, r := range recs {
		if r.Revision != strconv.Itoa(i+1) || r.Type == "" || r.ID == "" || r.Action == "" || r.Time == "" {
			t.Fatalf("change %d: %+v", i, r)
		}
	}
	if !strings.Contains(res.stderr, "ctwatch: demo: watching an embedded fake CloudTower") {
		t.Errorf("no demo banner on stderr:\n%s", res.stderr)
	}

	res = run(t, nil, "--demo", "--limit", "3", "-o", "table", "-q")
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if res.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "REVISION  TYPE") || !strings.HasPrefix(lines[3], "3 ") {
		t.Errorf("-o table: exit %d\n%s", res.code, res.stdout)
	}
	if res.stderr != "" {
		t.Errorf("-q: stderr %q", res.stderr)
	}
}

// TestFromNowByDefault: without --from or --checkpoint, ctwatch prints
// only changes made after it started, in order.
func TestFromNowByDefault(t *testing.T) {
	srv := newServer(t, 500)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.RunGenerator(ctx, 2*time.Millisecond, 1) })
	defer func() { cancel(); wg.Wait() }()

	res := run(t, serverEnv(srv), "--limit", "5", "--poll-interval", "10ms")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	recs := parseNDJSON(t, res.stdout)
	if len(recs) != 5 {
		t.Fatalf("%d changes, want 5", len(recs))
	}
	first, _ := strconv.ParseUint(recs[0].Revision, 10, 64)
	if first <= 500 {
		t.Errorf("first revision %d: the backlog (1-500) was printed", first)
	}
	checkRecords(t, recs, srv.Events(first - 1)[:5])
}

// TestResourceAndActionFilters: --resource-id and --action reach the
// server's query; only matching changes are printed.
func TestResourceAndActionFilters(t *testing.T) {
	srv := newServer(t, 800)
	all := srv.Events(0)
	id := all[0].ResourceID // created first, then updated
	var want []fakeserver.Event
	for _, e := range all {
		if e.ResourceID == id && e.Action == "UPDATE" {
			want = append(want, e)
		}
	}
	if len(want) < 2 {
		t.Fatalf("resource %s has %d updates in the generated log; pick another seed", id, len(want))
	}
	res := run(t, serverEnv(srv), "--from", "0", "--resource-id", id, "--action", "UPDATE", "--limit", strconv.Itoa(len(want)))
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkRecords(t, parseNDJSON(t, res.stdout), want)
	var sawFilter bool
	for _, r := range srv.Requests() {
		sawFilter = sawFilter || (r.ResourceID == id && r.Action == "UPDATE")
	}
	if !sawFilter {
		t.Errorf("no request carried the filters")
	}
}
