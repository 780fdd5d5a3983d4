package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// The tests run ctwatch as a process: the test binary re-executed with
// runMainEnv set runs main instead of the tests, so that exit codes,
// signals and terminals are the real ones.
const runMainEnv = "CTWATCH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// command returns a ctwatch process with args and env (on top of a clean
// environment: no CLOUDTOWER_* from the caller's).
func command(args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{runMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "TZ=UTC",
		"GORACE=atexit_sleep_ms=0", // no 1 s pause at exit under -race
	}, env...)
	return cmd
}

// exitCode runs cmd to the end and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("running ctwatch: %v", err)
	return -1
}

// capture collects what a reader yields, in a goroutine that ends with
// the reader, and lets a test wait for a condition on it.
type capture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on each read
	done    chan struct{} // closed when the reader has ended
}

func startCapture(r io.Reader) *capture {
	c := &capture{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor returns the text once cond holds for it; it fails the test if
// the reader ends first, or after a minute.
func (c *capture) waitFor(t *testing.T, what string, cond func(string) bool) string {
	t.Helper()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		s, changed := c.buf.String(), c.changed
		c.mu.Unlock()
		if cond(s) {
			return s
		}
		select {
		case <-changed:
		case <-c.done:
			if s := c.String(); cond(s) {
				return s
			}
			t.Fatalf("output ended before %s:\n%.3000s", what, c.String())
		case <-timeout.C:
			t.Fatalf("no %s after a minute:\n%.3000s", what, c.String())
		}
	}
}

// wait waits for the process to exit, killing it after a minute.
func wait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	var err error
	select {
	case err = <-done:
	case <-timeout.C:
		cmd.Process.Kill()
		<-done
		t.Fatalf("ctwatch did not exit")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("waiting for ctwatch: %v", err)
	}
	return 0
}

func loadCheckpoint(t *testing.T, path string) string {
	t.Helper()
	rev, err := operators.NewFileStore(path).Load(t.Context())
	if err != nil {
		t.Fatalf("loading the checkpoint: %v", err)
	}
	return rev.String()
}

// TestExitCodes: the process exits with the documented codes.
func TestExitCodes(t *testing.T) {
	srv := fakeserver.New(fakeserver.Config{Seed: 3})
	srv.Generate(100)
	srv.Compact(50)
	base := srv.StartHTTP() + fakeserver.BasePath
	t.Cleanup(srv.Close)
	login := []string{"CLOUDTOWER_SERVER=" + base, "CLOUDTOWER_USERNAME=" + srv.Username(), "CLOUDTOWER_PASSWORD=" + srv.Password(),
		"CLOUDTOWER_API_USERNAME=" + srv.APIUsername(), "CLOUDTOWER_API_PASSWORD=" + srv.APIPassword()}

	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stderr string
	}{
		{"limit reached", []string{"--from", "60", "--limit", "3", "-q"}, login, 0, ""},
		{"bad flag", []string{"--output", "xml"}, nil, 2, "Usage: ctwatch [flags]"},
		{"compacted", []string{"--from", "10"}, login, 3, "ctwatch --from 50"},
		{"unsupported", []string{"--server", strings.TrimSuffix(base, fakeserver.BasePath) + "/not/tower"}, login, 4, "404"},
		{"authentication", []string{"--password", "wrong"}, login, 5, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := command(tt.args, tt.env...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if code := exitCode(t, cmd); code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr.String())
			}
			if tt.code == 0 && strings.Count(stdout.String(), "\n") != 3 {
				t.Errorf("stdout:\n%s", stdout.String())
			}
		})
	}
}

// TestSIGTERMFlushes stops a catch-up with SIGTERM: ctwatch exits 0 with
// every change it read printed in whole, and the checkpoint at the last
// one.
func TestSIGTERMFlushes(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ck")
	cmd := command([]string{"--demo", "--checkpoint", ckpt, "-q"})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := startCapture(out)
	c.waitFor(t, "300 changes", func(s string) bool { return strings.Count(s, "\n") >= 300 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-c.done // the pipe is closed when the process exits
	if code := wait(t, cmd); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	lines := strings.Split(strings.TrimSuffix(c.String(), "\n"), "\n")
	var last struct{ Revision string }
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("line %d is not a whole JSON object: %v\n%s", i+1, err, l)
		}
	}
	if len(lines) < 300 || last.Revision != strconv.Itoa(len(lines)) {
		t.Errorf("%d lines, the last revision %s", len(lines), last.Revision)
	}
	if got := loadCheckpoint(t, ckpt); got != last.Revision {
		t.Errorf("checkpoint %s, want the last printed revision %s", got, last.Revision)
	}
}
