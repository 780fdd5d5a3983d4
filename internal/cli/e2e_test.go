package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// newServer starts a fake CloudTower on loopback with n generated changes.
func newServer(t *testing.T, n int) *fakeserver.Server {
	t.Helper()
	srv := fakeserver.New(fakeserver.Config{Seed: 42, Password: "pa55-w0rd"})
	if n > 0 {
		srv.Generate(n)
	}
	srv.StartHTTP()
	t.Cleanup(srv.Close)
	return srv
}

// serverEnv is the environment that points ctwatch at srv.
func serverEnv(srv *fakeserver.Server) map[string]string {
	return map[string]string{
		"CLOUDTOWER_SERVER":   srv.URL() + fakeserver.BasePath,
		"CLOUDTOWER_USERNAME": srv.Username(),
		"CLOUDTOWER_PASSWORD": srv.Password(),
		// HTTP Basic on the resource-change feed, as the fake (like CloudTower) wants
		"CLOUDTOWER_API_USERNAME": srv.APIUsername(),
		"CLOUDTOWER_API_PASSWORD": srv.APIPassword(),
	}
}

// parseNDJSON parses ctwatch's ndjson output.
func parseNDJSON(t *testing.T, out string) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", len(recs)+1, err, sc.Text())
		}
		recs = append(recs, r)
	}
	return recs
}

// checkRecords compares records with the server's events, field by field:
// the values are compared as decoded JSON.
func checkRecords(t *testing.T, got []Record, want []fakeserver.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d changes, want %d", len(got), len(want))
	}
	for i, e := range want {
		r := got[i]
		wantTime := e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		if r.Revision != strconv.FormatUint(e.Revision, 10) || r.Type != e.ResourceType || r.ID != e.ResourceID ||
			r.Action != e.Action || r.Time != wantTime {
			t.Fatalf("change %d: got %s %s %s %s %s, want %d %s %s %s %s", i, r.Revision, r.Type, r.ID, r.Action, r.Time,
				e.Revision, e.ResourceType, e.ResourceID, e.Action, wantTime)
		}
		sameJSON(t, fmt.Sprintf("change %d new", i), r.New, e.NewValue)
		sameJSON(t, fmt.Sprintf("change %d old", i), r.Old, e.OldValue)
	}
}

func sameJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Fatalf("%s: got %s, want it omitted", what, got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if _, ok := g.(map[string]any); !ok {
		t.Fatalf("%s: got %s, want a JSON object (decoded, not a string)", what, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the server's value is not JSON: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, got, want)
	}
}

func TestNDJSONMatchesServer(t *testing.T) {
	srv := newServer(t, 2500)
	res := run(t, serverEnv(srv), "--from", "0", "--limit", "2500")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkRecords(t, parseNDJSON(t, res.stdout), srv.Events(0))
	if strings.Contains(res.stderr, srv.Password()) {
		t.Errorf("stderr shows the password")
	}
}

func TestNDJSONFilteredFromRevision(t *testing.T) {
	srv := newServer(t, 600)
	var want []fakeserver.Event
	for _, e := range srv.Events(100) {
		if e.ResourceType == fakeserver.TypeVM || e.ResourceType == fakeserver.TypeHost {
			want = append(want, e)
		}
	}
	want = want[:50]
	res := run(t, serverEnv(srv), "--from", "100", "--types", "Vm,Host", "--limit", "50", "--page-size", "7")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkRecords(t, parseNDJSON(t, res.stdout), want)
}

func TestJSONArray(t *testing.T) {
	srv := newServer(t, 30)
	res := run(t, serverEnv(srv), "--from", "0", "--limit", "30", "-o", "json")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	var recs []Record
	if err := json.Unmarshal([]byte(res.stdout), &recs); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, res.stdout)
	}
	checkRecords(t, recs, srv.Events(0))
}

func TestTable(t *testing.T) {
	srv := newServer(t, 20)
	res := runWith(t, context.Background(), serverEnv(srv), &output{tty: true}, &output{}, nil, "--from", "0", "--limit", "20")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != 21 {
		t.Fatalf("%d lines, want a header and 20 rows:\n%s", len(lines), res.stdout)
	}
	header := strings.Fields(lines[0])
	if !reflect.DeepEqual(header, []string{"REVISION", "TYPE", "ID", "ACTION", "TIME", "NAME"}) {
		t.Errorf("header %q", lines[0])
	}
	col := strings.Index(lines[0], "ACTION")
	for i, e := range srv.Events(0) {
		l := lines[i+1]
		f := strings.Fields(l)
		if f[0] != strconv.FormatUint(e.Revision, 10) || f[1] != e.ResourceType || f[2] != e.ResourceID || f[3] != e.Action {
			t.Errorf("row %d: %q", i, l)
		}
		if !strings.HasPrefix(l[col:], e.Action) {
			t.Errorf("row %d not aligned with the header:\n%s\n%s", i, lines[0], l)
		}
	}
}

// TestCheckpointResume reads the feed in two runs sharing a checkpoint
// file: together they print the server's sequence exactly, with no gap
// and no duplicate (a run that ends normally commits everything it
// printed).
func TestCheckpointResume(t *testing.T) {
	srv := newServer(t, 2000)
	ckpt := filepath.Join(t.TempDir(), "ckpt.json")
	env := serverEnv(srv)

	first := run(t, env, "--checkpoint", ckpt, "--from", "0", "--limit", "1234")
	if first.code != 0 {
		t.Fatalf("first run: exit %d\n%s", first.code, first.stderr)
	}
	saved, err := operators.NewFileStore(ckpt).Load(t.Context())
	if err != nil || saved.String() != "1234" {
		t.Fatalf("checkpoint after the first run: %q, %v; want 1234", saved, err)
	}
	second := run(t, env, "--checkpoint", ckpt, "--limit", "766")
	if second.code != 0 {
		t.Fatalf("second run: exit %d\n%s", second.code, second.stderr)
	}
	all := append(parseNDJSON(t, first.stdout), parseNDJSON(t, second.stdout)...)
	checkRecords(t, all, srv.Events(0))

	// A third run with --from conflicts with the stored revision.
	third := run(t, env, "--checkpoint", ckpt, "--from", "0", "--limit", "1")
	if third.code != ExitUsage || !strings.Contains(third.stderr, "revision 2000 stored") {
		t.Errorf("third run: exit %d\n%s", third.code, third.stderr)
	}
}

// TestCancelFlushesAndCheckpoints cancels the context (Ctrl-C) once some
// output has arrived: the exit code is 0, and the checkpoint holds the
// revision of the last change printed.
func TestCancelFlushesAndCheckpoints(t *testing.T) {
	srv := newServer(t, 3000)
	ckpt := filepath.Join(t.TempDir(), "ckpt.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &output{onWrite: func(all string) {
		if strings.Count(all, "\n") >= 1500 {
			cancel()
		}
	}}
	res := runWith(t, ctx, serverEnv(srv), stdout, &output{}, nil, "--checkpoint", ckpt, "--from", "0")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	recs := parseNDJSON(t, res.stdout)
	if len(recs) < 1500 {
		t.Fatalf("%d changes printed", len(recs))
	}
	checkRecords(t, recs, srv.Events(0)[:len(recs)])
	saved, err := operators.NewFileStore(ckpt).Load(t.Context())
	if err != nil || saved.String() != recs[len(recs)-1].Revision {
		t.Errorf("checkpoint %q, %v; want the last printed revision %s", saved, err, recs[len(recs)-1].Revision)
	}
}

func TestCompacted(t *testing.T) {
	srv := newServer(t, 1000)
	srv.Compact(500)
	ckpt := filepath.Join(t.TempDir(), "ck")
	if err := operators.NewFileStore(ckpt).Save(t.Context(), stream.MustParseRevision("100")); err != nil {
		t.Fatal(err)
	}
	env := serverEnv(srv)
	for _, args := range [][]string{
		{"--from", "100", "--types", "Vm"},
		{"--checkpoint", ckpt},
	} {
		res := run(t, env, args...)
		if res.code != ExitCompacted {
			t.Errorf("%q: exit %d, want %d", args, res.code, ExitCompacted)
		}
		want := "ctwatch --types Vm --from 500"
		if args[0] == "--checkpoint" {
			want = "rm -f " + shellQuote(ckpt) + " && ctwatch --checkpoint " + shellQuote(ckpt) + " --from 500"
		}
		for _, s := range []string{"compact revision 500", "Re-list", want} {
			if !strings.Contains(res.stderr, s) {
				t.Errorf("%q: stderr does not contain %q:\n%s", args, s, res.stderr)
			}
		}
	}
	// The resume command works.
	res := run(t, env, "--types", "Vm", "--from", "500", "--limit", "3")
	if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 3 {
		t.Errorf("resume: exit %d\n%s", res.code, res.stdout)
	}
}

func TestUnsupportedServer(t *testing.T) {
	for _, fault := range []fakeserver.FaultKind{fakeserver.Fault404, fakeserver.Fault404Text} {
		srv := newServer(t, 10)
		srv.InjectFaults(fault)
		res := run(t, serverEnv(srv), "--from", "0")
		if res.code != ExitUnsupported || !strings.Contains(res.stderr, "404") {
			t.Errorf("%v: exit %d, want %d\n%s", fault, res.code, ExitUnsupported, res.stderr)
		}
	}
	// A server without the API at all: the login is not found either.
	srv := newServer(t, 0)
	env := serverEnv(srv)
	env["CLOUDTOWER_SERVER"] = srv.URL() + "/no/api"
	if res := run(t, env); res.code != ExitUnsupported {
		t.Errorf("wrong base path: exit %d, want %d\n%s", res.code, ExitUnsupported, res.stderr)
	}
}

func TestAuthenticationRefused(t *testing.T) {
	srv := newServer(t, 10)
	env := serverEnv(srv)
	env["CLOUDTOWER_PASSWORD"] = "not-the-password"
	res := run(t, env, "--from", "0")
	if res.code != ExitUnauthorized || !strings.Contains(res.stderr, "refused") || !strings.Contains(res.stderr, "check --username, --password") {
		t.Errorf("wrong password: exit %d, want %d\n%s", res.code, ExitUnauthorized, res.stderr)
	}
	if strings.Contains(res.stderr, "not-the-password") {
		t.Errorf("stderr shows the password:\n%s", res.stderr)
	}

	res = run(t, map[string]string{"CLOUDTOWER_SERVER": srv.URL(), "CLOUDTOWER_TOKEN": "expired-token"}, "--from", "0")
	if res.code != ExitUnauthorized || strings.Contains(res.stderr, "expired-token") {
		t.Errorf("bad token: exit %d, want %d\n%s", res.code, ExitUnauthorized, res.stderr)
	}

	// A 401 in the middle of the stream (an expired token) ends it too.
	srv.InjectFaults(fakeserver.FaultNone, fakeserver.Fault401)
	res = run(t, serverEnv(srv), "--from", "0", "--page-size", "5")
	if res.code != ExitUnauthorized || len(parseNDJSON(t, res.stdout)) != 5 {
		t.Errorf("401: exit %d, want %d\n%s", res.code, ExitUnauthorized, res.stdout)
	}
}

// TestTransientFaultsWarn: retried failures show as warnings and lose
// nothing.
func TestTransientFaultsWarn(t *testing.T) {
	srv := newServer(t, 300)
	srv.InjectFaults(fakeserver.Fault503, fakeserver.FaultNone, fakeserver.FaultReset)
	res := run(t, serverEnv(srv), "--from", "0", "--limit", "300", "--page-size", "100")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkRecords(t, parseNDJSON(t, res.stdout), srv.Events(0))
	if n := strings.Count(res.stderr, "ctwatch: warning:"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, res.stderr)
	}
}

func TestInsecureWarns(t *testing.T) {
	srv := newServer(t, 3)
	env := serverEnv(srv)
	res := run(t, env, "--from", "0", "--limit", "3", "--insecure-skip-verify")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: --insecure-skip-verify") {
		t.Errorf("exit %d\n%s", res.code, res.stderr)
	}
}

// TestProgressLines: without a terminal, progress is a line every
// --progress-interval while catching up, and a summary once caught up.
func TestProgressLines(t *testing.T) {
	srv := newServer(t, 3000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &output{onWrite: func(all string) {
		if strings.Contains(all, "caught up:") {
			cancel()
		}
	}}
	res := runWith(t, ctx, serverEnv(srv), &output{}, stderr, nil, "--from", "0", "--progress-interval", "1ns", "--page-size", "500")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "ctwatch: catching up: ") || !strings.Contains(res.stderr, " of 3000 (") ||
		!strings.Contains(res.stderr, "ctwatch: caught up: 3000 changes up to revision 3000") {
		t.Errorf("stderr:\n%.2000s", res.stderr)
	}
	if strings.Contains(res.stderr, "\r") {
		t.Errorf("carriage return without a terminal")
	}

	quiet := run(t, serverEnv(srv), "--from", "0", "--limit", "3000", "--progress-interval", "1ns", "-q")
	if quiet.code != 0 || quiet.stderr != "" {
		t.Errorf("-q: exit %d, stderr %q", quiet.code, quiet.stderr)
	}
}

// TestProgressTerminal: on a terminal the line is redrawn in place, and
// cleared once caught up.
func TestProgressTerminal(t *testing.T) {
	srv := newServer(t, 1000)
	// The second page comes late, so that the catch-up lasts long enough
	// for the line to show.
	srv.InjectFaults(fakeserver.FaultNone)
	srv.InjectDelay(2 * showAfter)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stdout := &output{tty: true}
	stderr := &output{tty: true}
	var sawClear bool
	stderr.onWrite = func(all string) {
		// After the last row is printed and the line cleared, stop.
		if strings.Contains(all, "catching up") && strings.HasSuffix(all, "\r\x1b[K") && strings.Count(stdout.String(), "\n") > 1000 {
			sawClear = true
			cancel()
		}
	}
	res := runWith(t, ctx, serverEnv(srv), stdout, stderr, nil, "--from", "0", "--page-size", "100")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	if !sawClear {
		t.Errorf("the progress line was not cleared once caught up: %q", res.stderr[max(0, len(res.stderr)-500):])
	}
	if !strings.HasPrefix(res.stdout, "REVISION  TYPE") {
		t.Errorf("no table header:\n%.300s", res.stdout)
	}
	if !strings.Contains(res.stderr, "\r\x1b[Kctwatch: catching up: ") {
		t.Errorf("no progress line drawn in place:\n%q", res.stderr)
	}
}

// TestProgressClearedWhenCaughtUpLate: with a filter, a short page below
// the head is not enough to know the feed is caught up; when the poll that
// tells comes back slowly, after the output has gone idle, the progress
// line must still be cleared (not left on the screen until the next
// change).
func TestProgressClearedWhenCaughtUpLate(t *testing.T) {
	srv := newServer(t, 1000)
	var vms []fakeserver.Event
	for _, e := range srv.Events(0) {
		if e.ResourceType == fakeserver.TypeVM {
			vms = append(vms, e)
		}
	}
	const page = 20
	if vms[len(vms)-1].Revision == srv.Head() || len(vms)%page == 0 || len(vms) < 3*page {
		t.Fatalf("the generated log does not suit the test: %d VM changes, the last at %d of %d", len(vms), vms[len(vms)-1].Revision, srv.Head())
	}
	pages := len(vms)/page + 1 // the last one short, below the head
	// Page 2 late (the line shows), the poll after the last page late too.
	srv.InjectFaults(fakeserver.FaultNone)
	srv.InjectDelay(2 * showAfter)
	for range pages - 2 {
		srv.InjectFaults(fakeserver.FaultNone)
	}
	srv.InjectDelay(10 * idleGrace)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stdout, stderr := &output{tty: true}, &output{tty: true}
	var cleared bool
	stderr.onWrite = func(all string) {
		if ctx.Err() == nil && strings.Contains(all, "catching up") && strings.HasSuffix(all, "\r\x1b[K") &&
			strings.Count(stdout.String(), "\n") == len(vms)+1 { // not the final clear after the timeout
			cleared = true
			cancel()
		}
	}
	res := runWith(t, ctx, serverEnv(srv), stdout, stderr, nil, "--from", "0", "--types", "Vm", "--page-size", strconv.Itoa(page))
	if res.code != 0 || !cleared {
		t.Errorf("exit %d; progress line cleared: %t; stderr ends %q", res.code, cleared, res.stderr[max(0, len(res.stderr)-200):])
	}
}
