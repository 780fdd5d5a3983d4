//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// TestAPIPasswordPrompt: with --api-username and no API password, ctwatch
// asks for it on the terminal, without echo, after the login password, and
// the changes then come with HTTP Basic on the feed.
func TestAPIPasswordPrompt(t *testing.T) {
	srv := fakeserver.New(fakeserver.Config{Seed: 5, Password: "s3cret-pw", APIPassword: "api-s3cret"})
	srv.Generate(10)
	base := srv.StartHTTP() + fakeserver.BasePath
	t.Cleanup(srv.Close)

	cmd, master, screen := startOnPTY(t, 24, 80, "--server", base, "--username", srv.Username(),
		"--api-username", srv.APIUsername(), "--from", "0", "--limit", "3", "-o", "ndjson", "-q")
	screen.waitFor(t, "the login prompt", func(s string) bool { return strings.Contains(s, "Password for "+srv.Username()+": ") })
	if _, err := master.Write([]byte("s3cret-pw\r")); err != nil {
		t.Fatal(err)
	}
	screen.waitFor(t, "the API prompt", func(s string) bool {
		return strings.Contains(s, "API password for "+srv.APIUsername()+": ")
	})
	raw := typeThenExit(t, cmd, master, screen, "api-s3cret\r")
	if strings.Contains(raw, "s3cret") {
		t.Errorf("a password was echoed:\n%s", raw)
	}
	if n := strings.Count(raw, `{"revision":`); n != 3 {
		t.Errorf("%d changes printed, want 3:\n%s", n, raw)
	}
}
