package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/internal/cli"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestMain(m *testing.M) {
	if os.Getenv(signalChildEnv) == "1" {
		signalChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// buffer is a bytes.Buffer safe for the writes of Run's goroutines.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ctwatch runs the command in-process, bounded by a deadline, and returns
// its exit code, stdout and stderr.
func ctwatch(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr buffer
	code := cli.Run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr, newNATS().Extension())
	if ctx.Err() != nil {
		t.Fatalf("ctwatch %s: still running after a minute\n%s", strings.Join(args, " "), stderr.String())
	}
	return code, stdout.String(), stderr.String()
}

type line struct {
	Revision     string `json:"revision"`
	ResourceType string `json:"type"`
	Action       string `json:"action"`
	ResourceID   string `json:"id"`
}

func parse(t *testing.T, out string) []line {
	t.Helper()
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, v)
	}
	return lines
}

func revisions(t *testing.T, lines []line) []uint64 {
	t.Helper()
	out := make([]uint64, len(lines))
	for i, l := range lines {
		r, err := strconv.ParseUint(l.Revision, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// TestPublishThenRead runs ctwatch as a bridge twice (the second run
// resumes after the first) and reads the stream back with --from-nats.
func TestPublishThenRead(t *testing.T) {
	fake, _ := natstest.CloudTower(t, 3000)
	fake.SetRandomFaults(3, 0.1, fakeserver.Fault500, fakeserver.Fault503)
	srv := natstest.Start(t)
	url := srv.ClientURL()
	env := map[string]string{"CLOUDTOWER_PASSWORD": fake.Password(), "CLOUDTOWER_API_PASSWORD": fake.APIPassword()}
	bridgeArgs := []string{"--server", fake.URL(), "--username", fake.Username(), "--api-username", fake.APIUsername(),
		"-q", "--nats-lock-ttl", "1s", "--page-size", "500"}

	// First run: from the beginning of CloudTower's log, 2000 changes.
	code, stdout, stderr := ctwatch(t, env, append(bridgeArgs, "--publish", url, "--from", "0", "--limit", "2000")...)
	if code != 0 || stdout != "" {
		t.Fatalf("bridge: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	// Second run: --from is only for an empty stream; it resumes after the
	// first run's last change. (A bridge stopped by --limit N has published
	// N changes, or N+1: the one it had published when it was told to stop.)
	fake.Generate(1000)
	code, _, stderr = ctwatch(t, env, append(bridgeArgs, "--publish", url, "--from", "0", "--limit", "900")...)
	if code != 0 {
		t.Fatalf("second bridge: exit %d\n%s", code, stderr)
	}
	js := srv.JetStream(t)
	stored := natstest.Revisions(t, js, wire.DefaultStream)
	n := uint64(len(stored))
	if n < 2900 || n > 2902 {
		t.Fatalf("the bridges published %d changes, want 2900 to 2902", n)
	}
	natstest.CheckRange(t, stored, 1, n)

	// Read it all back, as CloudTower has it.
	code, stdout, stderr = ctwatch(t, nil, "--from-nats", url, "--from", "0", "--limit", strconv.FormatUint(n, 10), "-q", "-o", "ndjson")
	if code != 0 {
		t.Fatalf("reader: exit %d\n%s", code, stderr)
	}
	lines := parse(t, stdout)
	natstest.CheckRange(t, revisions(t, lines), 1, n)
	want := fake.Events(0)
	for i, l := range lines {
		if w := want[i]; l.ResourceID != w.ResourceID || l.ResourceType != w.ResourceType || l.Action != w.Action {
			t.Fatalf("change %s: %+v, CloudTower has %+v", l.Revision, l, w)
		}
	}

	// Filters become subject filters; a checkpoint resumes a reader.
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	var vms []uint64
	for _, e := range want {
		if e.Revision <= n && e.ResourceType == fakeserver.TypeVM && e.Action == "UPDATE" {
			vms = append(vms, e.Revision)
		}
	}
	if len(vms) < 20 {
		t.Fatalf("only %d Vm updates", len(vms))
	}
	var got []uint64
	for i, limit := range []int{10, len(vms) - 10} {
		args := []string{"--from-nats", url, "--types", fakeserver.TypeVM, "--action", "UPDATE",
			"--checkpoint", ckpt, "--limit", strconv.Itoa(limit), "-q", "-o", "ndjson"}
		if i == 0 {
			args = append(args, "--from", "0") // then from the checkpoint
		}
		code, stdout, stderr = ctwatch(t, nil, args...)
		if code != 0 {
			t.Fatalf("filtered reader: exit %d\n%s", code, stderr)
		}
		got = append(got, revisions(t, parse(t, stdout))...)
		if limit == 10 {
			// Once the checkpoint holds a revision, --from is an error.
			if code, _, _ := ctwatch(t, nil, "--from-nats", url, "--from", "0", "--checkpoint", ckpt); code != cli.ExitUsage {
				t.Fatalf("--from with a checkpoint: exit %d", code)
			}
		}
	}
	if len(got) != len(vms) {
		t.Fatalf("filtered: got %d changes, want %d", len(got), len(vms))
	}
	for i := range vms {
		if got[i] != vms[i] {
			t.Fatalf("filtered change #%d: %d, want %d", i, got[i], vms[i])
		}
	}
}

// TestPublishDemo bridges the embedded demo CloudTower (--demo) into
// JetStream and reads the changes back with --from-nats.
func TestPublishDemo(t *testing.T) {
	srv := natstest.Start(t)
	url := srv.ClientURL()
	const n = 250
	code, stdout, stderr := ctwatch(t, nil, "--publish", url, "--demo", "--demo-latency", "0", "--limit", strconv.Itoa(n), "-q", "--nats-lock-ttl", "1s")
	if code != 0 || stdout != "" {
		t.Fatalf("bridge: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	// --demo starts at the beginning of the demo's log (revision 1). --limit
	// N stops the bridge after N changes; up to two more may be stored: one
	// that Run's reading goroutine took but did not count, and one the
	// bridge had handed over but not yielded (see bridge.Published).
	stored := natstest.Revisions(t, srv.JetStream(t), wire.DefaultStream)
	if len(stored) < n || len(stored) > n+2 {
		t.Fatalf("published %d changes, want %d to %d", len(stored), n, n+2)
	}
	natstest.CheckRange(t, stored, 1, uint64(len(stored)))

	code, stdout, stderr = ctwatch(t, nil, "--from-nats", url, "--from", "0", "--limit", strconv.Itoa(n), "-q", "-o", "ndjson")
	if code != 0 {
		t.Fatalf("reader: exit %d\n%s", code, stderr)
	}
	lines := parse(t, stdout)
	natstest.CheckRange(t, revisions(t, lines), 1, n)
	for _, l := range lines {
		if l.ResourceType == "" || l.ResourceID == "" || l.Action == "" {
			t.Fatalf("change %+v: fields missing", l)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--publish", "nats://127.0.0.1:1", "--from-nats", "nats://127.0.0.1:1"},
		{"--from-nats", "nats://127.0.0.1:1", "--demo"},
		{"--publish", "nats://127.0.0.1:1", "--server", "x", "--token", "t", "--checkpoint", filepath.Join(t.TempDir(), "c")},
		{"--publish", "nats://127.0.0.1:1", "--server", "x", "--token", "t", "--nats-lock-ttl", "10ms"},
		{"--from-nats", "nats://127.0.0.1:1", "--nats-prefix", "a.*"},
		{"--from-nats", "nats://127.0.0.1:1", "--nats-stream", "a.b"},
		{"--publish", "nats://127.0.0.1:1"},                                         // no CloudTower
		{"--publish", "nats://127.0.0.1:1", "--server", "x", "--api-username", "a"}, // no password, no prompt
	} {
		code, _, stderr := ctwatch(t, nil, args...)
		if code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, cli.ExitUsage, stderr)
		}
	}
	// No NATS server there: a runtime error that says what to check.
	code, _, stderr := ctwatch(t, nil, "--from-nats", "nats://127.0.0.1:1")
	if code != cli.ExitFailure || !strings.Contains(stderr, "-js") {
		t.Errorf("unreachable server: exit %d\n%s", code, stderr)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@host:4222": "nats://***@host:4222",
		"u:p@host":             "***@host",
		"nats://host:4222":     "nats://host:4222",
		// A list of servers (nats.Connect takes one), and an '@' in a password.
		"nats://u:p1@a:4222,nats://u:p2@b:4222": "nats://***@a:4222,nats://***@b:4222",
		"nats://a:4222,nats://u:p2@b:4222":      "nats://a:4222,nats://***@b:4222",
		"nats://u:p@ss@host:4222":               "nats://***@host:4222",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// signalChildEnv makes the test binary run signalChild instead of the
// tests.
const signalChildEnv = "CTWATCH_TEST_SIGNAL_CHILD"

// signalChild takes main's signal context, interrupts itself once (which
// must cancel the context), then again until the default action kills it.
// Exit status 3 means the first signal did not cancel the context, 0 that
// the later ones were swallowed for 10 s.
func signalChild() {
	ctx, _ := cli.SignalContext()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		os.Exit(3)
	}
	// The context's AfterFunc restores the default action in a goroutine
	// of its own: signal again until it has.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(time.Millisecond)
	}
	os.Exit(0)
}

// TestSecondSignalKills: the first Ctrl-C ends the watch cleanly, a second
// one kills the process at once (as in the plain ctwatch).
func TestSecondSignalKills(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{signalChildEnv + "=1", "GORACE=atexit_sleep_ms=0"}
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want killed by SIGINT", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("child: %v, want killed by SIGINT (exit 3: the first signal was lost; 0: the second was swallowed)", err)
	}
}

// TestBadURLKeepsSecret: a malformed NATS URL is a usage error whose
// message does not show the URL's password (url.Parse's error quotes it).
func TestBadURLKeepsSecret(t *testing.T) {
	for _, flag := range []string{"--from-nats", "--publish"} {
		code, _, stderr := ctwatch(t, nil, flag, "nats://u:s3cret@ho st:4222", "--demo="+strconv.FormatBool(flag == "--publish"))
		if code != cli.ExitUsage || strings.Contains(stderr, "s3cret") || !strings.Contains(stderr, "ho st") {
			t.Errorf("%s: exit %d, want %d, and the URL without its password:\n%s", flag, code, cli.ExitUsage, stderr)
		}
	}
}
