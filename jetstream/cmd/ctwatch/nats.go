package main

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/internal/cli"
	"github.com/towerwatch/towerwatch/jetstream/bridge"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/source"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/stream"
)

// tailPollInterval is the poll interval of --from-nats: see reader.
const tailPollInterval = 10 * time.Millisecond

// natsFlags are the flags the extension adds.
type natsFlags struct {
	Publish  string        `name:"publish" group:"NATS" placeholder:"URL" envvar:"CTWATCH_PUBLISH" help:"Bridge mode: publish the changes into JetStream at this NATS server (nats://host:4222) instead of printing them, resuming after the last change on the stream. Run several for failover."`
	FromNATS string        `name:"from-nats" group:"NATS" placeholder:"URL" envvar:"CTWATCH_FROM_NATS" help:"Read the changes from JetStream at this NATS server instead of CloudTower."`
	Stream   string        `name:"nats-stream" group:"NATS" default:"CLOUDTOWER_CHANGES" placeholder:"NAME" help:"JetStream stream."`
	Prefix   string        `name:"nats-prefix" group:"NATS" default:"cloudtower.changes" placeholder:"SUBJECT" help:"Subject prefix: changes go to PREFIX.<type>.<action>."`
	Creds    string        `name:"nats-creds" group:"NATS" placeholder:"FILE" envvar:"NATS_CREDS" help:"NATS credentials file (.creds)."`
	MaxAge   time.Duration `name:"nats-max-age" group:"NATS" help:"Bridge: discard changes older than this from the stream (default: keep them)."`
	Replicas int           `name:"nats-replicas" group:"NATS" default:"1" help:"Bridge: replicas of the stream and of the lock bucket."`
	LockTTL  time.Duration `name:"nats-lock-ttl" group:"NATS" default:"10s" help:"Bridge: leader lease. A standby takes over within about this long (plus 1s) after the leader crashed, at once after it stopped."`
}

// natsExt is the NATS extension of ctwatch.
type natsExt struct {
	f natsFlags
	// connect opens a NATS connection; tests may replace it.
	connect func(url string, opts ...nats.Option) (*nats.Conn, error)
}

func newNATS() *natsExt { return &natsExt{connect: nats.Connect} }

// Extension returns the cli.Extension that adds the NATS flags.
func (x *natsExt) Extension() cli.Extension {
	return cli.Extension{
		Name:     "nats",
		Flags:    &x.f,
		Validate: x.validate,
		Source:   x.source,
		Sink:     x.sink,
	}
}

func (x *natsExt) validate(cfg *cli.Config) error {
	f := &x.f
	f.Publish, f.FromNATS = strings.TrimSpace(f.Publish), strings.TrimSpace(f.FromNATS)
	switch {
	case f.Publish == "" && f.FromNATS == "":
		return nil
	case f.Publish != "" && f.FromNATS != "":
		return cli.UsageError("--publish and --from-nats contradict each other: a bridge reads CloudTower, a reader reads the stream; give one")
	case f.FromNATS != "" && cfg.Demo:
		return cli.UsageError("--demo cannot be combined with --from-nats: the reader reads the stream, not a CloudTower (bridge the demo with --publish URL --demo)")
	}
	if err := wire.ValidPrefix(f.Prefix); err != nil {
		return cli.UsageError("--nats-prefix: %w", err)
	}
	if f.Stream == "" || strings.ContainsAny(f.Stream, " \t.*>") {
		return cli.UsageError("--nats-stream %q: want a JetStream stream name (no spaces, dots or wildcards)", f.Stream)
	}
	if f.Publish != "" {
		if cfg.Checkpoint != "" {
			return cli.UsageError("--checkpoint is not used with --publish: the bridge resumes after the last change on the stream")
		}
		if f.Replicas < 1 || f.MaxAge < 0 {
			return cli.UsageError("--nats-replicas must be at least 1 and --nats-max-age not negative")
		}
		if f.LockTTL < time.Second {
			return cli.UsageError("--nats-lock-ttl %v: want at least 1s", f.LockTTL)
		}
	}
	return nil
}

// dial connects to NATS. The caller closes the connection, normally when
// the sequence using it ends (see closing).
func (x *natsExt) dial(url string, cfg *cli.Config) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name("ctwatch"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if x.f.Creds != "" {
		opts = append(opts, nats.UserCredentials(x.f.Creds))
	}
	nc, err := x.connect(url, opts...)
	if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
		// A malformed URL: url.Parse's error quotes it, password and all.
		return nil, nil, cli.UsageError("NATS URL %s: %v", redact(url), ue.Err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w (check the URL, that nats-server runs with JetStream (-js), and --nats-creds)", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	cfg.Logger.Debug("connected to NATS", "url", redact(url))
	return nc, js, nil
}

// redact drops user information from a NATS URL, or from each URL of a
// comma-separated list, for messages.
func redact(url string) string {
	urls := strings.Split(url, ",")
	for k, u := range urls {
		if i := strings.LastIndex(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				urls[k] = u[:j+3] + "***" + u[i:]
			} else {
				urls[k] = "***" + u[i:]
			}
		}
	}
	return strings.Join(urls, ",")
}

func (x *natsExt) source(ctx context.Context, cfg *cli.Config) (cli.Changes, error) {
	switch {
	case x.f.FromNATS != "":
		return x.reader(ctx, cfg)
	case x.f.Publish != "":
		return x.bridge(ctx, cfg)
	}
	return nil, nil
}

// reader reads the stream with package source.
func (x *natsExt) reader(ctx context.Context, cfg *cli.Config) (cli.Changes, error) {
	nc, js, err := x.dial(x.f.FromNATS, cfg)
	if err != nil {
		return nil, err
	}
	src, err := source.NewCloudTower(ctx, js, source.Config{Stream: x.f.Stream, Subjects: x.subjects(cfg)})
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%w: start a bridge (ctwatch --publish) first, or check --nats-stream", err)
		}
		return nil, err
	}
	// Polls wait for the next change on the server (long polls): a short
	// interval delivers it as soon as it is stored, at no polling cost.
	opts := append(cfg.WatchOptions(), stream.PollInterval(tailPollInterval))
	changes := src.Watch(ctx, opts...)
	if id := cfg.ResourceID; id != "" {
		changes = operators.Filter(changes, func(ev *models.ResourceChangeEvent) bool {
			return ev.ResourceID != nil && *ev.ResourceID == id
		})
	}
	return closing(ctx, changes, func() { src.Close(); nc.Close() }), nil
}

// subjects maps --types and --action to subject filters.
func (x *natsExt) subjects(cfg *cli.Config) []string {
	if len(cfg.Types) == 0 && cfg.Action == "" {
		return nil
	}
	action := ">"
	if cfg.Action != "" {
		action = wire.Token(cfg.Action)
	}
	types := cfg.Types
	if len(types) == 0 {
		types = []string{"*"}
	}
	var out []string
	for _, t := range types {
		if t != "*" {
			t = wire.Token(t)
		}
		out = append(out, x.f.Prefix+"."+t+"."+action)
	}
	return out
}

// bridge opens ctwatch's CloudTower source (the demo server with --demo)
// and runs a bridge; the sequence is what it publishes.
func (x *natsExt) bridge(ctx context.Context, cfg *cli.Config) (cli.Changes, error) {
	login := cfg.Token != "" || cfg.Username != "" && cfg.Password != ""
	api := cfg.APIUsername != "" && cfg.APIPassword != ""
	if !cfg.Demo && cfg.Server != "" && (!login && !api || cfg.APIUsername != "" && !api) {
		return nil, cli.UsageError("--publish needs credentials: --api-username and CLOUDTOWER_API_PASSWORD for the resource-change feed, and/or --username and CLOUDTOWER_PASSWORD or --token (a bridge never prompts)")
	}
	src, closeSrc, err := cfg.OpenCloudTower(ctx)
	if err != nil {
		return nil, err
	}
	nc, js, err := x.dial(x.f.Publish, cfg)
	if err != nil {
		closeSrc()
		return nil, err
	}
	var start stream.Option // with an empty stream: at CloudTower's head,
	switch {
	case cfg.FromStart:
		start = stream.FromStart() // or from the oldest change (--demo)
	case !cfg.Start.IsZero():
		start = stream.After(cfg.Start) // or after --from
	}
	bc := bridge.Config{
		Sink:   sink.Config{Stream: x.f.Stream, Prefix: x.f.Prefix, MaxAge: x.f.MaxAge, Replicas: x.f.Replicas},
		Lock:   bridge.LockConfig{TTL: x.f.LockTTL, Replicas: x.f.Replicas},
		Start:  start,
		Watch:  cfg.WatchOptions(),
		Logger: cfg.Logger,
	}
	if cfg.Registerer != nil { // --metrics-addr: the bridge's own metrics
		bm, err := promwatch.NewBridge(cfg.Registerer)
		if err != nil {
			nc.Close()
			closeSrc()
			return nil, err
		}
		bc.OnPublished, bc.OnLeader, bc.OnPublishError = bm.OnPublished, bm.OnLeader, bm.OnPublishError
	}
	b, err := bridge.NewCloudTower(js, src, bc)
	if err != nil {
		nc.Close()
		closeSrc()
		return nil, err
	}
	return closing(ctx, b.Published(ctx), func() { nc.Close(); closeSrc() }), nil
}

// closing runs done once seq's loop ends, or when ctx is done if the loop
// has not started by then (Run cancels ctx on its way out). It does not
// run done while the loop runs: a bridge flushes its last messages after
// ctx is cancelled.
func closing(ctx context.Context, seq cli.Changes, done func()) cli.Changes {
	var once sync.Once
	stop := context.AfterFunc(ctx, func() { once.Do(done) })
	return func(yield func(*models.ResourceChangeEvent, error) bool) {
		if !stop() {
			return // ctx was done before the loop started: done ran
		}
		defer once.Do(done)
		seq(yield)
	}
}

func (x *natsExt) sink(ctx context.Context, cfg *cli.Config) (cli.Sink, error) {
	if x.f.Publish == "" {
		return nil, nil
	}
	return published{}, nil
}

// published is the output in bridge mode: the bridge has published the
// changes already, so nothing is printed (the progress display counts
// them; -v logs the bridge's events).
type published struct{}

func (published) Write(*models.ResourceChangeEvent) error { return nil }
func (published) Flush() error                            { return nil }
func (published) Close() error                            { return nil }
