package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// Changes is a sequence of CloudTower changes, as stream.Watch returns
// them: in revision order, each revision once, ending with one non-nil
// error (ctx.Err() when the context is done) unless the consumer stops.
type Changes = iter.Seq2[*models.ResourceChangeEvent, error]

// An Extension adds flags and behaviour to ctwatch without this package
// knowing about it: another build of the command (such as the NATS-enabled
// one in the jetstream module) passes one or more to Run. Every field is
// optional; the zero Extension changes nothing.
//
// Run calls the hooks in this order, each extension in the order given:
// Validate (after the flags are parsed), Source (the first extension that
// returns a non-nil sequence replaces CloudTower), Sink (the first that
// returns a non-nil Sink replaces the printer). Checkpointing, --limit,
// the progress display and the exit codes apply whatever the source and
// the sink are.
type Extension struct {
	// Name names the extension in error messages, such as "nats".
	Name string

	// Flags, if not nil, is a pointer to a struct whose fields are extra
	// flags, declared with kong struct tags (github.com/alecthomas/kong):
	//
	//	type natsFlags struct {
	//		Publish  string `help:"Publish changes to this NATS server instead of printing them." placeholder:"URL" envvar:"CTWATCH_PUBLISH" group:"NATS"`
	//		FromNATS string `name:"from-nats" help:"Read changes from JetStream instead of CloudTower." placeholder:"URL"`
	//	}
	//
	// For an environment fallback use the tag envvar:"NAME" (read through
	// Run's Env, and shown in --help), not kong's env tag (which reads the
	// process environment directly). After parsing, the struct holds the
	// values: the hooks below read them, typically through a closure.
	Flags any

	// Validate, if not nil, checks the extension's flags against the rest
	// of the configuration once the flags are parsed, before anything
	// connects. An error is a usage error: Run prints it with a usage line
	// and exits with ExitUsage.
	Validate func(cfg *Config) error

	// Source, if not nil, may replace the change source. Return a non-nil
	// sequence to read changes from it instead of CloudTower, or nil and a
	// nil error to keep the default. The sequence must follow the contract
	// of Changes, start after cfg.Start (from the oldest change when
	// cfg.FromStart is set, else from the head when cfg.Start is zero) and
	// stop when ctx is done. It may call cfg.OnPoll for the progress
	// display. An error returned here, or ending the sequence, is
	// mapped to an exit code like CloudTower's (see ExitCode). A hook that
	// needs the CloudTower source itself (to bridge it elsewhere, say)
	// opens it with cfg.OpenCloudTower, which honours --demo.
	Source func(ctx context.Context, cfg *Config) (Changes, error)

	// Sink, if not nil, may replace the output. Return a non-nil Sink to
	// send changes to it instead of printing them on cfg.Stdout, or nil
	// and a nil error to keep the printer.
	Sink func(ctx context.Context, cfg *Config) (Sink, error)
}

// A Sink receives the changes ctwatch reads. The printer of each -o format
// is one; an Extension may supply another (a publisher, for instance).
// Run calls its methods from one goroutine.
type Sink interface {
	// Write handles one change. Changes come in revision order.
	Write(ev *models.ResourceChangeEvent) error
	// Flush makes every change written so far visible or durable (for a
	// publisher: acknowledged). Run calls it whenever the source has
	// nothing more ready, before it records a checkpoint (changes written
	// before a successful Flush are committed: the checkpoint may move past
	// them) and before it exits, also after Ctrl-C (when the ctx given to
	// the Sink hook is already done: bound the wait some other way).
	Flush() error
	// Close releases the sink. Run calls it once, last, after the final
	// Flush (or after a failed Write or Flush).
	Close() error
}

// Config is ctwatch's configuration once the flags are parsed and checked:
// what the extension hooks need to know. Hooks may read it and must not
// change it, except for the Extension's own flags struct.
type Config struct {
	// Connection to CloudTower, for the default source. Password, Token
	// and APIPassword are secrets: never print them (nor Headers' values).
	Server     string
	Username   string
	Password   string
	UserSource string
	Token      string
	// APIUsername and APIPassword authenticate the resource-change feed
	// with HTTP Basic (cloudtower.Config.APIUsername).
	APIUsername        string
	APIPassword        string
	Headers            http.Header // --header, on every request
	BypassWhitelist    bool        // --bypass-whitelist
	CAFile             string
	InsecureSkipVerify bool
	Timeout            time.Duration // per request

	// What to watch.
	Types      []string // resource types; empty for all
	ResourceID string   // "" for all
	Action     string   // "" for all
	// Start is the revision to start after: the first change delivered is
	// the first one newer than it. The zero Revision means from now (the
	// server's head), unless FromStart is set.
	Start stream.Revision
	// FromStart means from the oldest change the server keeps
	// (stream.FromStart): --demo without --from, --from-now or a stored
	// checkpoint. Start is zero then.
	FromStart bool
	// Checkpoint is the checkpoint file, "" for none. Run reads it (into
	// Start) and writes it; hooks need not.
	Checkpoint   string
	PollInterval time.Duration

	// Output.
	Output string // "ndjson", "table" or "json" (never "auto": resolved)
	Limit  int    // exit after this many changes; 0 for no limit
	Quiet  bool
	Demo   bool

	// Stdin, Stdout and Stderr are the streams Run was given. Write to
	// Stderr only through Warnf or Logger, so that a progress line being
	// drawn there is cleared first.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Logger logs to Stderr (debug lines with --verbose, else errors only).
	Logger *slog.Logger
	// OnPoll tells the progress display about one poll of the source: the
	// default source calls it; a replacement source may. It is safe to call
	// from any goroutine.
	OnPoll func(stream.PollInfo)
	// Registerer is the Prometheus registry that --metrics-addr serves,
	// nil without the flag. An Extension may register collectors of its
	// own on it (a bridge's promwatch.NewBridge, say).
	Registerer prometheus.Registerer

	warnf func(format string, args ...any)
	opts  []stream.Option
	open  func(ctx context.Context) (*cloudtower.Source, func(), error)
}

// ErrNotRunning is returned by Config.OpenCloudTower on a Config that Run
// did not make: build the source with cloudtower.Dial and cloudtower.New.
var ErrNotRunning = errors.New("cli: this Config was not made by Run")

// OpenCloudTower opens the source ctwatch reads by default, for an
// Extension that needs the CloudTower source itself rather than its
// changes (a bridge, for instance): with Demo, an embedded fake CloudTower
// (started here, with the --demo-* flags; a line on Stderr says so unless
// Quiet), else the CloudTower at Server, dialled with the credentials and
// TLS settings (prompting for the password when Stdin is a terminal and
// only Username is set). The source has the filters (SourceOptions)
// applied and starts nothing until it is polled; watch it with
// src.Watch(ctx, cfg.WatchOptions()...) or hand it to
// stream.Watch.
//
// On success, call cleanup once the source is no longer used: it closes
// the idle connections and stops the demo server (which must outlive
// every poll). On error, nothing is left open and cleanup is nil. Errors
// are usage errors (see UsageError) for a missing server or credentials,
// or what cloudtower.Dial returns; Run maps both to exit codes. ctx bounds
// the dialling and the password prompt only.
func (c *Config) OpenCloudTower(ctx context.Context) (src *cloudtower.Source, cleanup func(), err error) {
	if c.open == nil {
		return nil, nil, ErrNotRunning
	}
	return c.open(ctx)
}

// Warnf prints "ctwatch: warning: ..." on Stderr (clearing a progress line
// first). It prints even with -q.
func (c *Config) Warnf(format string, args ...any) {
	if c.warnf != nil {
		c.warnf(format, args...)
	}
}

// WatchOptions returns the options ctwatch passes to stream.Watch for the
// default source: the start position (Start), the poll interval, and the
// progress and warning hooks. A replacement source built on stream.Watch
// should pass them too.
func (c *Config) WatchOptions() []stream.Option {
	return append([]stream.Option(nil), c.opts...)
}

// SourceOptions returns the cloudtower.Source options for the filters
// (Types, ResourceID, Action): what the default source passes to
// cloudtower.New.
func (c *Config) SourceOptions() []cloudtower.Option {
	var opts []cloudtower.Option
	if len(c.Types) > 0 {
		opts = append(opts, cloudtower.ResourceTypes(c.Types...))
	}
	if c.ResourceID != "" {
		opts = append(opts, cloudtower.ResourceID(c.ResourceID))
	}
	if c.Action != "" {
		opts = append(opts, cloudtower.Action(c.Action))
	}
	return opts
}

// ExitError is an error that asks Run for a given exit code. An Extension
// hook, source or sink may return one (or wrap one); Run prints Err and
// exits with Code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError returns an error that makes Run print it with a usage line
// and exit with ExitUsage, as for a bad flag.
func UsageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}
