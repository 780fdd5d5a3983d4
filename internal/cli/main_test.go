package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// output is a concurrency-safe buffer for stdout or stderr that can claim
// to be a terminal and can watch what is written.
type output struct {
	mu      sync.Mutex
	b       bytes.Buffer
	tty     bool
	onWrite func(all string) // called with everything written so far, under the lock
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	if o.onWrite != nil {
		o.onWrite(o.b.String())
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func (o *output) IsTerminal() bool { return o.tty }

func mapEnv(m map[string]string) Env {
	return func(k string) string { return m[k] }
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command in-process with plain (non-terminal) outputs.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runWith(t, context.Background(), env, &output{}, &output{}, nil, args...)
}

func runWith(t *testing.T, ctx context.Context, env map[string]string, stdout, stderr *output, exts []Extension, args ...string) result {
	t.Helper()
	code := Run(ctx, args, mapEnv(env), strings.NewReader(""), stdout, stderr, exts...)
	res := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if t.Failed() || testing.Verbose() {
		t.Logf("ctwatch %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, res.stderr)
	}
	return res
}
