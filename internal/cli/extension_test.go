package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// fakeExt is an extension like the NATS one: --publish replaces the sink,
// --from-fake the source.
type fakeExt struct {
	flags struct {
		Publish  string `name:"publish" placeholder:"URL" envvar:"CTWATCH_PUBLISH" group:"Fake" help:"Publish changes to URL instead of printing them."`
		FromFake bool   `name:"from-fake" group:"Fake" help:"Read changes from the fake source."`
		FailWith string `name:"fail-with" hidden:"" help:"Make the source end with this error."`
	}
	published []string
	flushed   int // changes written before the last Flush
	closed    bool
	sawStart  stream.Revision
}

func (x *fakeExt) extension() Extension {
	return Extension{
		Name:  "fake",
		Flags: &x.flags,
		Validate: func(cfg *Config) error {
			if x.flags.Publish == "bad" {
				return errors.New("--publish bad: not a URL")
			}
			if x.flags.FromFake && cfg.Demo {
				return UsageError("--from-fake and --demo contradict each other")
			}
			return nil
		},
		Source: func(ctx context.Context, cfg *Config) (Changes, error) {
			if !x.flags.FromFake {
				return nil, nil
			}
			x.sawStart = cfg.Start
			switch x.flags.FailWith {
			case "exit7":
				return nil, &ExitError{Code: 7, Err: errors.New("seven")}
			case "unauthorized":
				return func(yield func(*models.ResourceChangeEvent, error) bool) {
					yield(nil, stream.Fatal(cloudtower.ErrUnauthorized))
				}, nil
			}
			start, _ := cfg.Start.Uint64()
			return func(yield func(*models.ResourceChangeEvent, error) bool) {
				for i := start + 1; i <= start+100; i++ {
					cfg.OnPoll(stream.PollInfo{Head: stream.RevisionFromUint64(start + 100), New: 1, Items: 1})
					rev, typ, act := strconv.FormatUint(i, 10), "Vm", "UPDATE"
					nv := fmt.Sprintf(`{"name":"vm-%d"}`, i)
					if !yield(&models.ResourceChangeEvent{Revision: &rev, ResourceType: &typ, Action: &act, NewValue: &nv}, nil) {
						return
					}
				}
				<-ctx.Done()
				yield(nil, ctx.Err())
			}, nil
		},
		Sink: func(ctx context.Context, cfg *Config) (Sink, error) {
			if x.flags.Publish == "" {
				return nil, nil
			}
			return x, nil
		},
	}
}

func (x *fakeExt) Write(ev *models.ResourceChangeEvent) error {
	x.published = append(x.published, *ev.Revision)
	return nil
}
func (x *fakeExt) Flush() error { x.flushed = len(x.published); return nil }
func (x *fakeExt) Close() error { x.closed = true; return nil }

func runExt(t *testing.T, x *fakeExt, env map[string]string, args ...string) result {
	t.Helper()
	return runWith(t, context.Background(), env, &output{}, &output{}, []Extension{x.extension()}, args...)
}

func TestExtensionSource(t *testing.T) {
	x := &fakeExt{}
	res := runExt(t, x, nil, "--from-fake", "--from", "3", "--limit", "5")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	var revs []string
	for _, r := range parseNDJSON(t, res.stdout) {
		revs = append(revs, r.Revision)
	}
	if strings.Join(revs, ",") != "4,5,6,7,8" || x.sawStart.String() != "3" {
		t.Errorf("printed %v, start %q", revs, x.sawStart)
	}
}

func TestExtensionSinkAndCheckpoint(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ck")
	for run, want := range []string{"1,2,3,4", "5,6,7"} {
		x := &fakeExt{}
		limit := strconv.Itoa(4 - run)
		res := runExt(t, x, map[string]string{"CTWATCH_PUBLISH": "nats://example"}, "--from-fake", "--from-now", "--checkpoint", ckpt, "--limit", limit)
		if res.code != 0 {
			t.Fatalf("run %d: exit %d\n%s", run, res.code, res.stderr)
		}
		if res.stdout != "" {
			t.Errorf("run %d: printed %q with a replaced sink", run, res.stdout)
		}
		if got := strings.Join(x.published, ","); got != want || x.flushed != len(x.published) || !x.closed {
			t.Errorf("run %d: published %s (flushed %d, closed %t), want %s flushed and closed", run, got, x.flushed, x.closed, want)
		}
		saved, err := operators.NewFileStore(ckpt).Load(t.Context())
		if err != nil || saved.String() != x.published[len(x.published)-1] {
			t.Errorf("run %d: checkpoint %q, %v", run, saved, err)
		}
	}
}

func TestExtensionFlagsAndErrors(t *testing.T) {
	x := &fakeExt{}
	res := runExt(t, x, nil, "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "--publish=URL") || !strings.Contains(res.stdout, "($CTWATCH_PUBLISH)") {
		t.Errorf("--help: exit %d\n%s", res.code, res.stdout)
	}

	res = runExt(t, &fakeExt{}, nil, "--publish", "bad", "--demo")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "--publish bad: not a URL") || !strings.Contains(res.stderr, "Usage:") {
		t.Errorf("Validate error: exit %d\n%s", res.code, res.stderr)
	}
	res = runExt(t, &fakeExt{}, nil, "--from-fake", "--demo")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "contradict") {
		t.Errorf("Validate UsageError: exit %d\n%s", res.code, res.stderr)
	}
	res = runExt(t, &fakeExt{}, nil, "--from-fake", "--fail-with", "exit7")
	if res.code != 7 || !strings.Contains(res.stderr, "seven") {
		t.Errorf("ExitError: exit %d\n%s", res.code, res.stderr)
	}
	res = runExt(t, &fakeExt{}, nil, "--from-fake", "--fail-with", "unauthorized")
	if res.code != ExitUnauthorized {
		t.Errorf("source error: exit %d, want %d\n%s", res.code, ExitUnauthorized, res.stderr)
	}
	// Without its flags, the extension keeps the default source.
	res = runExt(t, &fakeExt{}, nil)
	if res.code != ExitUsage || !strings.Contains(res.stderr, "no server") {
		t.Errorf("default source: exit %d\n%s", res.code, res.stderr)
	}
	// Flags must be a pointer to a struct.
	res = runWith(t, context.Background(), nil, &output{}, &output{}, []Extension{{Name: "broken", Flags: 3}})
	if res.code != ExitFailure || !strings.Contains(res.stderr, "pointer to a struct") {
		t.Errorf("bad Flags: exit %d\n%s", res.code, res.stderr)
	}
}

// TestOpenCloudTower: an extension's hook opens the default source itself
// (here the demo server, with the --types filter) and watches it.
func TestOpenCloudTower(t *testing.T) {
	if _, _, err := (&Config{}).OpenCloudTower(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("outside Run: %v, want ErrNotRunning", err)
	}
	var cleaned, opened bool
	ext := Extension{
		Name: "open",
		Source: func(ctx context.Context, cfg *Config) (Changes, error) {
			src, cleanup, err := cfg.OpenCloudTower(ctx)
			if err != nil {
				return nil, err
			}
			opened = true
			return func(yield func(*models.ResourceChangeEvent, error) bool) {
				defer func() { cleanup(); cleaned = true }()
				src.Watch(ctx, cfg.WatchOptions()...)(yield)
			}, nil
		},
	}
	res := runWith(t, context.Background(), nil, &output{}, &output{}, []Extension{ext},
		"--demo", "--demo-latency", "0", "--types", "Vm", "--limit", "7", "-q")
	if res.code != 0 || !opened || !cleaned {
		t.Fatalf("exit %d, opened %t, cleaned up %t\n%s", res.code, opened, cleaned, res.stderr)
	}
	recs := parseNDJSON(t, res.stdout)
	prev := 0
	for _, r := range recs {
		rev, _ := strconv.Atoi(r.Revision)
		if r.Type != "Vm" || rev <= prev {
			t.Errorf("change %+v after revision %d", r, prev)
		}
		prev = rev
	}
	if len(recs) != 7 {
		t.Errorf("%d changes, want 7", len(recs))
	}

	// Without --demo and without a server: the usual usage error.
	res = runWith(t, context.Background(), nil, &output{}, &output{}, []Extension{ext})
	if res.code != ExitUsage || !strings.Contains(res.stderr, "no server") {
		t.Errorf("no server: exit %d\n%s", res.code, res.stderr)
	}
}
