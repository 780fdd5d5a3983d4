package cli

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
)

// parseConfig parses args with env as Run does, up to the Config.
func parseConfig(t *testing.T, env map[string]string, stored stream.Revision, tty bool, args ...string) (*Config, error) {
	t.Helper()
	f, done, _, err := parse(args, mapEnv(env), io.Discard, io.Discard, nil)
	if done {
		t.Fatalf("parse(%q) asked to exit", args)
	}
	if err != nil {
		return nil, err
	}
	return f.config(stored, tty)
}

func TestFlagsAndEnv(t *testing.T) {
	rev := stream.MustParseRevision
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		stored string // revision in the checkpoint file
		tty    bool
		check  func(t *testing.T, c *Config)
	}{
		{
			name: "env used when the flag is absent",
			env: map[string]string{
				"CLOUDTOWER_SERVER": "tower.example.com", "CLOUDTOWER_USERNAME": "alice",
				"CLOUDTOWER_PASSWORD": "s3cret", "CLOUDTOWER_USER_SOURCE": "LDAP",
				"CLOUDTOWER_CA_FILE": "/etc/ca.pem", "CLOUDTOWER_TIMEOUT": "5s",
			},
			check: func(t *testing.T, c *Config) {
				want := Config{Server: "tower.example.com", Username: "alice", Password: "s3cret", UserSource: "LDAP", CAFile: "/etc/ca.pem", Timeout: 5 * time.Second}
				got := Config{Server: c.Server, Username: c.Username, Password: c.Password, UserSource: c.UserSource, CAFile: c.CAFile, Timeout: c.Timeout}
				if got.Server != want.Server || got.Username != want.Username || got.Password != want.Password ||
					got.UserSource != want.UserSource || got.CAFile != want.CAFile || got.Timeout != want.Timeout {
					t.Errorf("got %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"--server", "flag.example.com", "--username", "bob", "--password=fromflag", "--timeout", "7s"},
			env:  map[string]string{"CLOUDTOWER_SERVER": "env.example.com", "CLOUDTOWER_USERNAME": "alice", "CLOUDTOWER_PASSWORD": "fromenv", "CLOUDTOWER_TIMEOUT": "5s"},
			check: func(t *testing.T, c *Config) {
				if c.Server != "flag.example.com" || c.Username != "bob" || c.Password != "fromflag" || c.Timeout != 7*time.Second {
					t.Errorf("got server %q user %q password %q timeout %v", c.Server, c.Username, c.Password, c.Timeout)
				}
			},
		},
		{
			name: "token and insecure from env",
			env:  map[string]string{"CLOUDTOWER_SERVER": "h", "CLOUDTOWER_TOKEN": "tok", "CLOUDTOWER_INSECURE_SKIP_VERIFY": "true"},
			check: func(t *testing.T, c *Config) {
				if c.Token != "tok" || !c.InsecureSkipVerify {
					t.Errorf("token %q insecure %t", c.Token, c.InsecureSkipVerify)
				}
			},
		},
		{
			name: "defaults",
			check: func(t *testing.T, c *Config) {
				if c.Output != "ndjson" || !c.Start.IsZero() || c.Limit != 0 || c.Timeout != 30*time.Second || c.PollInterval != time.Second {
					t.Errorf("got output %q start %q limit %d timeout %v interval %v", c.Output, c.Start, c.Limit, c.Timeout, c.PollInterval)
				}
			},
		},
		{
			name: "table by default on a terminal",
			tty:  true,
			check: func(t *testing.T, c *Config) {
				if c.Output != "table" {
					t.Errorf("output %q, want table", c.Output)
				}
			},
		},
		{
			name: "explicit output on a terminal",
			args: []string{"-o", "ndjson"},
			tty:  true,
			check: func(t *testing.T, c *Config) {
				if c.Output != "ndjson" {
					t.Errorf("output %q, want ndjson", c.Output)
				}
			},
		},
		{
			name: "filters, start, limit",
			args: []string{"--types", "Vm, Host", "--resource-id", "c1", "--action", "UPDATE", "--from", "0042", "--limit", "9", "-q", "-o", "json"},
			check: func(t *testing.T, c *Config) {
				if !slices.Equal(c.Types, []string{"Vm", "Host"}) || c.ResourceID != "c1" || c.Action != "UPDATE" ||
					c.Start != rev("42") || c.Limit != 9 || !c.Quiet || c.Output != "json" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "demo starts from the start",
			args: []string{"--demo"},
			check: func(t *testing.T, c *Config) {
				if !c.FromStart || !c.Start.IsZero() {
					t.Errorf("start %q, from start %t; want from the start", c.Start, c.FromStart)
				}
			},
		},
		{
			name: "demo from now",
			args: []string{"--demo", "--from-now"},
			check: func(t *testing.T, c *Config) {
				if !c.Start.IsZero() || c.FromStart {
					t.Errorf("start %q, from start %t; want from now", c.Start, c.FromStart)
				}
			},
		},
		{
			name:   "checkpoint wins over from-now",
			args:   []string{"--checkpoint", "x", "--from-now"},
			stored: "77",
			check: func(t *testing.T, c *Config) {
				if c.Start != rev("77") {
					t.Errorf("start %q, want 77", c.Start)
				}
			},
		},
		{
			name: "from seeds an empty checkpoint",
			args: []string{"--checkpoint", "x", "--from", "5"},
			check: func(t *testing.T, c *Config) {
				if c.Start != rev("5") {
					t.Errorf("start %q, want 5", c.Start)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stored stream.Revision
			if tt.stored != "" {
				stored = rev(tt.stored)
			}
			c, err := parseConfig(t, tt.env, stored, tt.tty, tt.args...)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if err := operators.NewFileStore(ckpt).Save(t.Context(), stream.MustParseRevision("12")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"unknown flag", []string{"--nope"}, nil, "unknown flag --nope"},
		{"unknown output", []string{"-o", "xml"}, nil, `got "xml"`},
		{"json without limit", []string{"--demo", "-o", "json"}, nil, "needs --limit"},
		{"from and from-now", []string{"--demo", "--from", "3", "--from-now"}, nil, "contradict"},
		{"bad revision", []string{"--demo", "--from", "12a"}, nil, "--from: want a revision"},
		{"negative limit", []string{"--demo", "--limit=-1"}, nil, "must not be negative"},
		{"bad duration", []string{"--demo", "--poll-interval", "soon"}, nil, "--poll-interval"},
		{"zero poll interval", []string{"--demo", "--poll-interval", "0s"}, nil, "PollInterval(0s): must be positive"},
		{"page size 1", []string{"--demo", "--page-size", "1"}, nil, "PageSize(1): must be at least 2"},
		{"API password alone", []string{"--demo", "--api-password", "x"}, nil, "--api-password without --api-username"},
		{"bad header", []string{"--server", "h", "--token", "t", "--header", "nope"}, nil, "want NAME=VALUE"},
		{"bad env duration", []string{"--demo"}, map[string]string{"CLOUDTOWER_TIMEOUT": "later"}, "--timeout"},
		{"no server", nil, nil, "no server"},
		{"no credentials", []string{"--server", "h"}, nil, "no credentials"},
		{"no password, no terminal", []string{"--server", "h", "--username", "u"}, nil, "no password"},
		{"token and password", []string{"--server", "h", "--token", "t"}, map[string]string{"CLOUDTOWER_USERNAME": "u"}, "either --token"},
		{"insecure and ca", []string{"--demo", "--insecure-skip-verify", "--ca-file", "x"}, nil, "contradict"},
		{"bad server", []string{"--server", "http://u:p@h", "--token", "t"}, nil, "user name"},
		{"from conflicts with checkpoint", []string{"--demo", "--checkpoint", ckpt, "--from", "3"}, nil, "conflicts with the revision 12 stored"},
		{"checkpoint dir missing", []string{"--demo", "--checkpoint", filepath.Join(dir, "no", "ckpt")}, nil, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.env, tt.args...)
			if res.code != ExitUsage {
				t.Errorf("exit code %d, want %d", res.code, ExitUsage)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, res.stderr)
			}
			if !strings.Contains(res.stderr, "Usage: ctwatch [flags]") {
				t.Errorf("stderr has no usage line:\n%s", res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout: %q", res.stdout)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	res := run(t, map[string]string{"CLOUDTOWER_PASSWORD": "hunter2", "CLOUDTOWER_TOKEN": "tok-secret"}, "--help")
	if res.code != 0 {
		t.Errorf("--help: exit %d", res.code)
	}
	for _, want := range []string{"Usage: ctwatch", "--server", "$CLOUDTOWER_PASSWORD", "--checkpoint", "Exit codes", "3 history compacted"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	for _, secret := range []string{"hunter2", "tok-secret", "demo-backlog"} {
		if strings.Contains(res.stdout, secret) {
			t.Errorf("--help shows %q", secret)
		}
	}
	res = run(t, nil, "--version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "ctwatch ") {
		t.Errorf("--version: exit %d, %q", res.code, res.stdout)
	}
}

func TestResumeCommand(t *testing.T) {
	got := resumeCommand([]string{"--server", "h", "--password", "hunter2", "--token=tok", "--from", "5", "--from-now", "--types", "Vm,Host", "--checkpoint", "my file"}, stream.MustParseRevision("900"))
	want := `ctwatch --server h --password "$CLOUDTOWER_PASSWORD" --token "$CLOUDTOWER_TOKEN" --types Vm,Host --checkpoint 'my file' --from 900`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
