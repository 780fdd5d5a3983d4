package cli

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// Name is the command's name in messages and usage lines.
const Name = "ctwatch"

const description = `Tail CloudTower's resource-change feed: print changes as they happen,
catch up on a backlog quickly, resume after a restart.

  ctwatch --demo --limit 20                      # no CloudTower needed
  CLOUDTOWER_PASSWORD=... CLOUDTOWER_API_PASSWORD=... \
    ctwatch --server tower.example.com --username admin --api-username watcher
  ctwatch --server tower.example.com --types Vm,Host --action INSERT --checkpoint vm.rev -o ndjson | jq .

Exit codes: 0 done (--limit reached, Ctrl-C or SIGTERM: output and checkpoint
flushed); 1 other error; 2 bad flags; 3 history compacted (the message says
how to resume); 4 server without the resource-change API; 5 authentication
refused.`

// flags are ctwatch's own flags. Secrets have no default, so --help never
// shows one; envvar tags are read through Run's Env by envResolver.
type flags struct {
	Server             string        `group:"Connection" placeholder:"HOST|URL" envvar:"CLOUDTOWER_SERVER" help:"CloudTower server: host, host:port or URL (https://host/v2/api)."`
	Username           string        `group:"Connection" envvar:"CLOUDTOWER_USERNAME" help:"User name to log in with."`
	Password           string        `group:"Connection" envvar:"CLOUDTOWER_PASSWORD" help:"Password; prefer the environment variable, which stays out of shell history (prompted for on a terminal when absent)."`
	UserSource         string        `group:"Connection" name:"user-source" placeholder:"SOURCE" envvar:"CLOUDTOWER_USER_SOURCE" help:"User source: LOCAL (the default), LDAP or AUTHN."`
	Token              string        `group:"Connection" envvar:"CLOUDTOWER_TOKEN" help:"Token from an earlier login, instead of a user name and password."`
	APIUsername        string        `group:"Connection" name:"api-username" placeholder:"USER" envvar:"CLOUDTOWER_API_USERNAME" help:"User name of the API credentials that authenticate the resource-change feed with HTTP Basic, as CloudTower's API specifies; the login (--username or --token) serves every other request."`
	APIPassword        string        `group:"Connection" name:"api-password" placeholder:"PASSWORD" envvar:"CLOUDTOWER_API_PASSWORD" help:"Password of the API credentials; prefer the environment variable (prompted for on a terminal when absent)."`
	Header             []string      `group:"Connection" name:"header" sep:"none" placeholder:"NAME=VALUE" help:"Extra header for every request, the login included (repeatable)."`
	BypassWhitelist    bool          `group:"Connection" name:"bypass-whitelist" envvar:"CLOUDTOWER_BYPASS_WHITELIST" help:"Send the header x-bypass-whitelist: true with every request, as some deployments require."`
	CAFile             string        `group:"Connection" name:"ca-file" placeholder:"FILE" envvar:"CLOUDTOWER_CA_FILE" help:"PEM file of CA certificates to trust for the server's certificate."`
	InsecureSkipVerify bool          `group:"Connection" name:"insecure-skip-verify" envvar:"CLOUDTOWER_INSECURE_SKIP_VERIFY" help:"Do not verify the server's TLS certificate (unsafe: for tests only)."`
	Timeout            time.Duration `group:"Connection" default:"30s" envvar:"CLOUDTOWER_TIMEOUT" help:"Timeout of each request."`

	Types        []string      `group:"What to watch" sep:"," placeholder:"TYPE" help:"Only changes of these resource types, spelled as CloudTower's models (case-sensitive): Vm,Host,Cluster,VmVolume,VmNic,Label,_LabelToVm,..."`
	ResourceID   string        `group:"What to watch" name:"resource-id" placeholder:"ID" help:"Only changes of this resource."`
	Action       string        `group:"What to watch" placeholder:"ACTION" help:"Only changes of this action: INSERT, UPDATE or DELETE."`
	From         string        `group:"What to watch" placeholder:"REVISION" help:"Start after this revision (--from 0: from the first change; exit code 3 if the server has compacted some)."`
	FromNow      bool          `group:"What to watch" name:"from-now" help:"Start at the server's head: only new changes (the default)."`
	Checkpoint   string        `group:"What to watch" placeholder:"FILE" help:"Resume after the revision stored in FILE, and store there the revision of each change printed. While FILE holds no revision, --from and --from-now say where to start; once it holds one, --from is an error and --from-now is ignored."`
	PollInterval time.Duration `group:"What to watch" name:"poll-interval" default:"1s" help:"Wait between polls once caught up."`

	Output  string `group:"Output" short:"o" enum:"auto,ndjson,table,json" default:"auto" placeholder:"FORMAT" help:"Output format: ndjson (one JSON object per change), table, or json (one array; needs --limit). Default: table on a terminal, else ndjson."`
	Limit   int    `group:"Output" placeholder:"N" help:"Exit after N changes."`
	Quiet   bool   `group:"Output" short:"q" help:"No progress display on stderr."`
	Verbose bool   `group:"Output" short:"v" help:"Log polls and retries on stderr."`

	MetricsAddr string `name:"metrics-addr" group:"Monitoring" placeholder:"HOST:PORT" envvar:"CTWATCH_METRICS_ADDR" help:"Serve Prometheus metrics at http://HOST:PORT/metrics and health checks at /healthz and /readyz (off by default)."`

	Demo    bool             `help:"Watch an embedded fake CloudTower with a change generator (no server needed); starts from the first change."`
	Version kong.VersionFlag `help:"Print the version and exit."`

	// Hidden knobs, for tests and the demo.
	ProgressInterval time.Duration `name:"progress-interval" hidden:"" default:"5s" help:"Interval of progress lines when stderr is not a terminal."`
	DemoBacklog      int           `name:"demo-backlog" hidden:"" default:"2000" help:"Changes already in the demo server's log."`
	DemoRate         float64       `name:"demo-rate" hidden:"" default:"5" help:"Changes per second the demo generator adds."`
	DemoLatency      time.Duration `name:"demo-latency" hidden:"" default:"20ms" help:"Latency the demo server adds to each request."`
	PageSize         int           `name:"page-size" hidden:"" help:"Changes per request (default 1000; 100 with --demo)."`

	stderr io.Writer // for the warnings of config; set by parse
}

// exitPanic carries kong's exit request (after --help or --version) out of
// Parse.
type exitPanic struct{ code int }

// parse parses args into a new flags and the extensions' flag structs.
// It returns done=true with a code when kong printed help or the version.
func parse(args []string, env Env, stdout, stderr io.Writer, exts []Extension) (f *flags, done bool, code int, err error) {
	f = &flags{}
	opts := []kong.Option{
		kong.Name(Name),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitPanic{code}) }),
		kong.Vars{"version": version()},
		kong.Resolvers(envResolver(env)),
		kong.ValueFormatter(helpValue),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
	}
	for _, e := range exts {
		if e.Flags != nil {
			if t := reflect.TypeOf(e.Flags); t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
				return nil, false, 0, fmt.Errorf("extension %q: Flags must be a pointer to a struct, not %T", e.Name, e.Flags)
			}
			opts = append(opts, kong.Embed(e.Flags))
		}
	}
	parser, err := kong.New(f, opts...)
	if err != nil {
		return nil, false, 0, fmt.Errorf("building the flag parser: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			ep, ok := r.(exitPanic)
			if !ok {
				panic(r)
			}
			f, done, code, err = nil, true, ep.code, nil
		}
	}()
	if _, err := parser.Parse(args); err != nil {
		return nil, false, 0, &ExitError{Code: ExitUsage, Err: err}
	}
	f.stderr = stderr
	return f, false, 0, nil
}

// envResolver fills flags tagged envvar:"NAME" that are absent from the
// command line from env.
func envResolver(env Env) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		name := flag.Tag.Get("envvar")
		if name == "" || env == nil {
			return nil, nil
		}
		if v := env(name); v != "" {
			return v, nil
		}
		return nil, nil
	})
}

// helpValue adds the envvar tag's variable to a flag's help.
func helpValue(v *kong.Value) string {
	help := kong.DefaultHelpValueFormatter(v)
	name := v.Tag.Get("envvar")
	if name == "" {
		return help
	}
	suffix := "($" + name + ")"
	if strings.HasSuffix(help, ".") {
		return help[:len(help)-1] + " " + suffix + "."
	}
	return strings.TrimSpace(help + " " + suffix)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return Name + " " + bi.Main.Version
	}
	return Name + " (devel)"
}

// config checks the flags and turns them into a Config. The checkpoint
// file's revision, read by the caller, is passed as stored.
func (f *flags) config(stored stream.Revision, stdoutTTY bool) (*Config, error) {
	cfg := &Config{
		Server: strings.TrimSpace(f.Server), Username: f.Username, Password: f.Password,
		UserSource: f.UserSource, Token: f.Token,
		APIUsername: f.APIUsername, APIPassword: f.APIPassword, BypassWhitelist: f.BypassWhitelist,
		CAFile: f.CAFile, InsecureSkipVerify: f.InsecureSkipVerify, Timeout: f.Timeout,
		ResourceID: f.ResourceID, Action: f.Action,
		Checkpoint: f.Checkpoint, PollInterval: f.PollInterval,
		Output: f.Output, Limit: f.Limit, Quiet: f.Quiet, Demo: f.Demo,
	}
	for _, t := range f.Types {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Types = append(cfg.Types, t)
			if known, ok := cloudtower.SuggestResourceType(t); ok && f.stderr != nil {
				fmt.Fprintf(f.stderr, "%s: warning: --types %s: CloudTower spells resource types as its models, case-sensitive: did you mean %s?\n", Name, t, known)
			}
		}
	}
	for _, h := range f.Header {
		name, value, ok := strings.Cut(h, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, UsageError("--header %q: want NAME=VALUE", h)
		}
		if cfg.Headers == nil {
			cfg.Headers = make(http.Header)
		}
		cfg.Headers.Add(name, value)
	}
	if f.Limit < 0 {
		return nil, UsageError("--limit %d: must not be negative", f.Limit)
	}
	// The engine's bounds, checked by the engine's own validation.
	if err := stream.PollInterval(f.PollInterval).Err(); err != nil {
		return nil, UsageError("--poll-interval: %w", err)
	}
	if f.PageSize != 0 {
		if err := stream.PageSize(f.PageSize).Err(); err != nil {
			return nil, UsageError("--page-size: %w", err)
		}
	}
	switch cfg.Output {
	case "auto":
		cfg.Output = "ndjson"
		if stdoutTTY {
			cfg.Output = "table"
		}
	case "json":
		if f.Limit == 0 {
			return nil, UsageError("-o json prints one JSON array and needs --limit N; use -o ndjson to stream")
		}
	}
	var from stream.Revision
	if f.From != "" {
		r, err := stream.ParseRevision(strings.TrimSpace(f.From))
		if err != nil {
			return nil, UsageError("--from: want a revision (a decimal number): %w", err)
		}
		from = r
	}
	if f.From != "" && f.FromNow {
		return nil, UsageError("--from and --from-now contradict each other: give one")
	}
	switch {
	case !stored.IsZero() && f.From != "":
		return nil, UsageError("--from %s conflicts with the revision %s stored in --checkpoint %s: drop --from to resume from the checkpoint, or delete the file to start from --from",
			from, stored, f.Checkpoint)
	case !stored.IsZero():
		cfg.Start = stored
	case f.From != "":
		cfg.Start = from
	case f.Demo && !f.FromNow:
		cfg.FromStart = true
	}
	if cfg.Token != "" && (cfg.Username != "" || cfg.Password != "") {
		return nil, UsageError("give either --token or --username and --password, not both (check CLOUDTOWER_TOKEN, CLOUDTOWER_USERNAME, CLOUDTOWER_PASSWORD)")
	}
	if cfg.APIPassword != "" && cfg.APIUsername == "" {
		return nil, UsageError("--api-password without --api-username (check CLOUDTOWER_API_PASSWORD)")
	}
	if !cfg.Demo {
		cc := cloudtower.Config{
			Host: "h", Token: "t", APIUsername: "a", APIPassword: "b", Headers: cfg.Headers, // the credentials are checked when dialling
		}
		if err := cc.Validate(); err != nil {
			return nil, UsageError("--header: %w", err)
		}
	}
	if cfg.InsecureSkipVerify && cfg.CAFile != "" {
		return nil, UsageError("--insecure-skip-verify and --ca-file contradict each other: give one")
	}
	return cfg, nil
}
