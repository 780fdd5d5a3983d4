// Package cli is the ctwatch command: Run parses the flags, watches the
// CloudTower change feed (or the embedded demo server, or a source an
// Extension supplies) and prints the changes, with a checkpoint file, a
// progress display and exit codes that tell what went wrong. The program
// in cmd/ctwatch only wires Run to the process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"golang.org/x/term"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// Exit codes of Run.
const (
	ExitOK           = 0 // done: --limit reached, Ctrl-C or SIGTERM, or the source ended
	ExitFailure      = 1 // any other runtime error
	ExitUsage        = 2 // bad flags or configuration; a usage line is printed
	ExitCompacted    = 3 // the start revision is below the server's compact revision
	ExitUnsupported  = 4 // the server has no resource-change API (HTTP 404)
	ExitUnauthorized = 5 // the server refused the credentials (HTTP 400 on login, 401, 403)
)

// Env looks up an environment variable; "" means unset. The program
// passes os.Getenv; tests pass a map lookup.
type Env func(key string) string

// Terminal is implemented by outputs that know whether they are a
// terminal. Run asks stdout and stderr: an *os.File is asked through
// golang.org/x/term, any other writer through this method (tests pass a
// writer whose IsTerminal returns true), and a writer with neither is not
// a terminal.
type Terminal interface {
	IsTerminal() bool
}

func isTerminal(w any) bool {
	switch t := w.(type) {
	case Terminal:
		return t.IsTerminal()
	case *os.File:
		return term.IsTerminal(int(t.Fd()))
	}
	return false
}

func termWidth(w any) func() int {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	return func() int {
		cols, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return cols
	}
}

// ExitCode returns the exit code for an error that ended a watch: see the
// Exit constants. An *ExitError gives its Code.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, stream.ErrCompacted):
		return ExitCompacted
	case errors.Is(err, cloudtower.ErrUnsupported):
		return ExitUnsupported
	case errors.Is(err, cloudtower.ErrUnauthorized):
		return ExitUnauthorized
	case errors.Is(err, cloudtower.ErrConfig):
		return ExitUsage
	}
	return ExitFailure
}

// Run runs ctwatch with args (without the program name) and returns its
// exit code; it never calls os.Exit. Cancelling ctx (Ctrl-C) ends the
// watch cleanly: the output is flushed and the checkpoint saved, and Run
// returns ExitOK. env supplies the environment fallbacks of the flags;
// stdin is read only to prompt for a password on a terminal.
func Run(ctx context.Context, args []string, env Env, stdin io.Reader, stdout, stderr io.Writer, ext ...Extension) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	f, done, code, err := parse(args, env, stdout, stderr, ext)
	if done {
		return code
	}
	if err != nil {
		return report(stderr, err)
	}
	r := &runner{args: args, f: f, env: env, stdin: stdin, stdout: stdout, stderr: stderr, exts: ext}
	return r.run(ctx)
}

// report prints err (with a usage line for a usage error) and returns its
// exit code.
func report(w io.Writer, err error) int {
	code := ExitCode(err)
	fmt.Fprintf(w, "%s: error: %v\n", Name, err)
	if code == ExitUsage {
		fmt.Fprintf(w, "Usage: %s [flags]   (run \"%s --help\" for the flags)\n", Name, Name)
	}
	return code
}

type runner struct {
	args           []string
	f              *flags
	env            Env
	stdin          io.Reader
	stdout, stderr io.Writer
	exts           []Extension

	cfg     *Config
	prog    *progress
	errw    io.Writer      // stderr, clearing the progress line first
	ckpt    checkpoint     // --checkpoint, or a store that keeps nothing
	metrics *metricsServer // --metrics-addr, or nil
}

func (r *runner) run(ctx context.Context) int {
	stdoutTTY, stderrTTY := isTerminal(r.stdout), isTerminal(r.stderr)

	var stored stream.Revision
	if path := r.f.Checkpoint; path != "" {
		if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
			return report(r.stderr, UsageError("--checkpoint %s: the directory %s does not exist", path, filepath.Dir(path)))
		}
		fs := operators.NewFileStore(path)
		rev, err := fs.Load(ctx)
		if err != nil {
			return report(r.stderr, fmt.Errorf("--checkpoint: %w", err))
		}
		r.ckpt, stored = checkpoint{store: fs, saved: rev}, rev
	}
	cfg, err := r.f.config(stored, stdoutTTY)
	if err != nil {
		return report(r.stderr, err)
	}
	r.cfg = cfg
	r.prog = newProgress(r.stderr, stderrTTY, cfg.Quiet, r.f.ProgressInterval, termWidth(r.stderr))
	r.errw = stderrWriter{r.prog}
	level := slog.LevelError
	if r.f.Verbose {
		level = slog.LevelDebug
	}
	cfg.Stdin, cfg.Stdout, cfg.Stderr = r.stdin, r.stdout, r.stderr
	cfg.Logger = slog.New(slog.NewTextHandler(r.errw, &slog.HandlerOptions{Level: level}))
	cfg.OnPoll = r.onPoll
	cfg.warnf = func(format string, args ...any) {
		fmt.Fprintf(r.errw, Name+": warning: "+format+"\n", args...)
	}
	if err := r.startMetrics(); err != nil {
		return report(r.stderr, err)
	}
	defer r.stopMetrics()
	cfg.opts = r.watchOptions()
	cfg.open = r.openCloudTower

	for _, e := range r.exts {
		if e.Validate != nil {
			if err := e.Validate(cfg); err != nil {
				return report(r.stderr, asUsage(err))
			}
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	var src Changes
	for _, e := range r.exts {
		if e.Source == nil {
			continue
		}
		s, err := e.Source(wctx, cfg)
		if err != nil {
			return r.fail(ctx, fmt.Errorf("%s: %w", e.Name, err))
		}
		if s != nil {
			src = s
			break
		}
	}
	if src == nil {
		s, done, err := r.openDefault(wctx)
		if done != nil {
			cleanup = append(cleanup, done)
		}
		if err != nil {
			return r.fail(ctx, err)
		}
		src = s
	}

	src = r.countEvents(src)

	var sink Sink
	for _, e := range r.exts {
		if e.Sink == nil {
			continue
		}
		s, err := e.Sink(wctx, cfg)
		if err != nil {
			return r.fail(ctx, fmt.Errorf("%s: %w", e.Name, err))
		}
		if s != nil {
			sink = s
			break
		}
	}
	if sink == nil {
		out := r.stdout
		if stdoutTTY && stderrTTY && !cfg.Quiet {
			out = &ttyStdout{w: r.stdout, p: r.prog} // shares the terminal with the progress line
		}
		sink = newPrinter(cfg.Output, out)
	}

	err = r.loop(ctx, wctx, cancel, src, sink)
	r.prog.stop()
	if cerr := sink.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("output: %w", cerr)
	}
	if err != nil {
		return r.fail(ctx, err)
	}
	return ExitOK
}

func asUsage(err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: ExitUsage, Err: err}
}

// fail reports err, unless it only says that ctx was cancelled or the
// password prompt interrupted (Ctrl-C), which is a normal end.
func (r *runner) fail(ctx context.Context, err error) int {
	if errors.Is(err, errInterrupted) ||
		ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ExitOK
	}
	r.prog.stop()
	code := report(r.errw, flagHint(err))
	var ce *stream.CompactedError
	if errors.As(err, &ce) {
		r.resumeHint(ce)
	}
	return code
}

func (r *runner) watchOptions() []stream.Option {
	cfg := r.cfg
	opts := []stream.Option{
		stream.PollInterval(cfg.PollInterval),
		stream.OnPoll(r.onPoll),
		stream.OnWarning(func(err error) { cfg.Warnf("%v (retrying)", err); r.watchMetrics().OnWarning(err) }),
		stream.Logger(cfg.Logger),
	}
	switch {
	case cfg.FromStart:
		opts = append(opts, stream.FromStart())
	case cfg.Start.IsZero():
		opts = append(opts, stream.FromNow())
	default:
		opts = append(opts, stream.After(cfg.Start))
	}
	switch {
	case r.f.PageSize > 0:
		opts = append(opts, stream.PageSize(r.f.PageSize))
	case cfg.Demo:
		opts = append(opts, stream.PageSize(100)) // a visible catch-up
	}
	return opts
}

// openDefault opens the CloudTower source (or the demo server's) and
// watches it.
func (r *runner) openDefault(ctx context.Context) (Changes, func(), error) {
	src, done, err := r.cfg.OpenCloudTower(ctx)
	if err != nil {
		return nil, nil, err
	}
	return src.Watch(ctx, r.cfg.opts...), done, nil
}

// openCloudTower implements Config.OpenCloudTower.
func (r *runner) openCloudTower(ctx context.Context) (*cloudtower.Source, func(), error) {
	cfg := r.cfg
	var (
		cc      cloudtower.Config
		cleanup = func() {}
	)
	if cfg.Demo {
		d, err := startDemo(r.f.DemoBacklog, r.f.DemoRate, r.f.DemoLatency)
		if err != nil {
			return nil, nil, err
		}
		cleanup = d.stop
		if !cfg.Quiet {
			fmt.Fprintf(r.errw, "%s: demo: watching an embedded fake CloudTower at %s (%d changes in its log, %g more per second)\n",
				Name, d.url, r.f.DemoBacklog, r.f.DemoRate)
		}
		cc = cloudtower.Config{Host: d.url, Username: d.username, Password: d.password, APIUsername: d.apiUsername, APIPassword: d.apiPassword}
	} else {
		var err error
		if cc, err = r.connection(ctx); err != nil {
			return nil, nil, err
		}
	}
	cc.Logger = cfg.Logger
	c, err := cloudtower.Dial(ctx, cc)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	done := func() {
		cloudtower.CloseIdleConnections(c)
		cleanup()
	}
	return cloudtower.New(c, cfg.SourceOptions()...), done, nil
}

// Commit policy: once the source has had nothing ready for idleGrace, and
// while changes flow at least every commitEvery changes or commitInterval.
const (
	idleGrace      = 20 * time.Millisecond
	commitEvery    = 1000
	commitInterval = time.Second
)

// loop writes each change of src to sink, through operators.Checkpoint,
// which commits: flushes the sink, then saves the checkpoint (so the
// checkpoint never runs ahead of the output), once the source has had
// nothing ready for idleGrace, every commitEvery changes or commitInterval
// while changes flow, and when the loop ends (also on Ctrl-C, an error or
// the limit). An idle source also tells the progress display, which ends
// a catch-up once a poll has said caught up. It returns nil when the limit
// is reached, the source ends, or ctx is cancelled; else the error that
// ended the source.
func (r *runner) loop(ctx, wctx context.Context, cancel context.CancelFunc, src Changes, sink Sink) error {
	defer cancel() // stops the source, and Checkpoint's reading goroutine with it
	flush := func(context.Context) error {
		if err := sink.Flush(); err != nil {
			return &commitError{fmt.Errorf("output: %w", err)}
		}
		return nil
	}
	changes := operators.Checkpoint(wctx, limit(src, r.cfg.Limit), &r.ckpt, r.revisionOf,
		operators.SaveWhenIdle(idleGrace), operators.SaveEvery(commitEvery), operators.SaveInterval(commitInterval),
		operators.BeforeSave(flush), operators.OnIdle(r.prog.idle))
	for ev, err := range changes {
		if err != nil {
			var ce *commitError
			switch {
			case errors.As(err, &ce):
				return ce.err
			case ctx.Err() != nil:
				return nil // Ctrl-C
			}
			return err
		}
		if err := sink.Write(ev); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		rev, _ := cloudtower.RevisionOf(ev)
		r.prog.delivered(rev)
	}
	return nil
}

// limit yields the first n changes of src (all of them if n <= 0), then
// ends. Ending (rather than breaking out of the loop) lets the loop body
// finish the n-th change, so that the checkpoint records it.
func limit(src Changes, n int) Changes {
	if n <= 0 {
		return src
	}
	return func(yield func(*models.ResourceChangeEvent, error) bool) {
		done := 0
		for ev, err := range src {
			if !yield(ev, err) {
				return
			}
			if err == nil {
				if done++; done >= n {
					return
				}
			}
		}
	}
}

// revisionOf is the revision of a change for the checkpoint. Without
// --checkpoint, a change without a valid revision is printed all the same.
func (r *runner) revisionOf(ev *models.ResourceChangeEvent) (stream.Revision, error) {
	rev, err := cloudtower.RevisionOf(ev)
	if err != nil && r.ckpt.store != nil {
		return rev, &commitError{fmt.Errorf("cannot checkpoint a change: %w", err)}
	}
	return rev, nil
}

// commitError is a failed flush or save of the loop, reported without the
// operators' wrapping.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// checkpoint is the CheckpointStore of the loop: the --checkpoint file, or
// nothing without one (the loop still commits, to flush the output). It
// saves only a revision above the saved one.
type checkpoint struct {
	store operators.CheckpointStore // nil without --checkpoint
	saved stream.Revision
}

func (c *checkpoint) Load(context.Context) (stream.Revision, error) { return c.saved, nil }

func (c *checkpoint) Save(ctx context.Context, rev stream.Revision) error {
	if c.store == nil || !c.saved.Less(rev) {
		return nil
	}
	if err := c.store.Save(ctx, rev); err != nil {
		return &commitError{fmt.Errorf("--checkpoint: %w", err)}
	}
	c.saved = rev
	return nil
}

// resumeHint tells, after a compaction, how to go on.
func (r *runner) resumeHint(ce *stream.CompactedError) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the server no longer has the changes after revision %s up to its compact revision %s.\n", Name, orDash(ce.Position), ce.Compact)
	fmt.Fprintf(&b, "Re-list the current state of what you mirror, then resume after the compact revision with:\n  ")
	if r.cfg.Checkpoint != "" {
		fmt.Fprintf(&b, "rm -f %s && ", shellQuote(r.cfg.Checkpoint))
	}
	b.WriteString(resumeCommand(r.args, ce.Compact))
	b.WriteString("\n")
	io.WriteString(r.errw, b.String())
}

// resumeCommand is the command line args with --from REV instead of any
// start flag, secrets replaced by their environment variables.
func resumeCommand(args []string, rev stream.Revision) string {
	out := []string{Name}
	secret := map[string]string{"--password": "$CLOUDTOWER_PASSWORD", "--token": "$CLOUDTOWER_TOKEN", "--api-password": "$CLOUDTOWER_API_PASSWORD"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		switch {
		case a == "--":
			i = len(args)
		case name == "--from" && !hasValue:
			i++ // skip the value
		case name == "--from", name == "--from-now":
		case name == "--header" && (hasValue || i+1 < len(args)):
			v := strings.TrimPrefix(a, "--header=")
			if !hasValue {
				i++
				v = args[i]
			}
			out = append(out, "--header", shellQuote(redactHeaderFlag(v)))
		case secret[name] != "":
			if !hasValue {
				i++
			}
			out = append(out, name, `"`+secret[name]+`"`)
		default:
			out = append(out, shellQuote(a))
		}
	}
	return strings.Join(append(out, "--from", rev.String()), " ")
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+,./:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
