package cli

import (
	"net/http"
	"strings"
	"testing"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// specServer starts a fake CloudTower that, like the spec, wants HTTP Basic
// with the API credentials on GET /resource-changes and the token
// elsewhere, with n changes.
func specServer(t *testing.T, cfg fakeserver.Config, n int) *fakeserver.Server {
	t.Helper()
	cfg.Seed, cfg.ChangesAuth = 7, fakeserver.AuthBasic
	srv := fakeserver.New(cfg)
	srv.Generate(n)
	srv.StartHTTP()
	t.Cleanup(srv.Close)
	return srv
}

// TestAPICredentials is the done-means of the real CloudTower's auth: a
// login and API credentials print the changes; without the API credentials
// ctwatch exits 5 and names the flags to set.
func TestAPICredentials(t *testing.T) {
	srv := specServer(t, fakeserver.Config{APIUsername: "feed", APIPassword: "feed-Secr3t-x9"}, 20)
	base := []string{"--server", srv.URL() + fakeserver.BasePath, "--username", srv.Username(), "--password", srv.Password()}

	res := run(t, nil, append(base, "--api-username", srv.APIUsername(), "--api-password", srv.APIPassword(), "--from", "0", "--limit", "5", "-o", "ndjson")...)
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	checkRecords(t, parseNDJSON(t, res.stdout), srv.Events(0)[:5])

	res = run(t, nil, append(base, "--from", "0", "--limit", "5", "-o", "ndjson")...)
	if res.code != ExitUnauthorized || !strings.Contains(res.stderr, "--api-username") || !strings.Contains(res.stderr, "sent: token") {
		t.Errorf("without API credentials: exit %d, want %d naming --api-username\n%s", res.code, ExitUnauthorized, res.stderr)
	}

	res = run(t, map[string]string{"CLOUDTOWER_API_PASSWORD": "wrong-feed-Secr3t"}, append(base, "--api-username", srv.APIUsername(), "--from", "0")...)
	if res.code != ExitUnauthorized || !strings.Contains(res.stderr, "refused the API credentials") || !strings.Contains(res.stderr, "--api-password") {
		t.Errorf("wrong API password: exit %d, want %d\n%s", res.code, ExitUnauthorized, res.stderr)
	}
	for _, secret := range []string{"wrong-feed-Secr3t", srv.APIPassword(), srv.Password()} {
		if strings.Contains(res.stderr, secret) {
			t.Errorf("stderr shows a secret:\n%s", res.stderr)
		}
	}

	// API credentials alone are enough for watching.
	res = run(t, map[string]string{
		"CLOUDTOWER_SERVER": srv.URL(), "CLOUDTOWER_API_USERNAME": srv.APIUsername(), "CLOUDTOWER_API_PASSWORD": srv.APIPassword(),
	}, "--from", "0", "--limit", "3")
	if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 3 {
		t.Errorf("API credentials alone: exit %d\n%s", res.code, res.stderr)
	}

	// A server that takes the token on the feed too: a login alone works.
	srv.SetChangesAuth(fakeserver.AuthEither)
	res = run(t, nil, append(base, "--from", "0", "--limit", "3")...)
	if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 3 {
		t.Errorf("token accepted: exit %d\n%s", res.code, res.stderr)
	}
}

// TestHeaders: --header and --bypass-whitelist reach the server on every
// request, the login included.
func TestHeaders(t *testing.T) {
	srv := specServer(t, fakeserver.Config{RequiredHeaders: http.Header{
		"X-Bypass-Whitelist": {"true"}, "X-Tenant": {"blue"},
	}}, 10)
	env := serverEnv(srv)

	res := run(t, env, "--from", "0", "--limit", "4", "--bypass-whitelist", "--header", "X-Tenant=blue")
	if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 4 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	res = run(t, env, "--from", "0", "--limit", "4", "--header", "X-Tenant=blue")
	if res.code == 0 || !strings.Contains(res.stderr, "login") {
		t.Errorf("without x-bypass-whitelist the login should be refused: exit %d\n%s", res.code, res.stderr)
	}
	env["CLOUDTOWER_BYPASS_WHITELIST"] = "true"
	res = run(t, env, "--from", "0", "--limit", "4", "--header", "X-Tenant=blue")
	if res.code != 0 {
		t.Errorf("CLOUDTOWER_BYPASS_WHITELIST: exit %d\n%s", res.code, res.stderr)
	}
	for _, bad := range []string{"X-Tenant", "=blue", "Bad Name=x"} {
		if res := run(t, env, "--header", bad); res.code != ExitUsage || !strings.Contains(res.stderr, "--header") {
			t.Errorf("--header %q: exit %d, want %d\n%s", bad, res.code, ExitUsage, res.stderr)
		}
	}
}

// TestTypeSpelling: a --types name that differs from a model name only by
// case or underscores gets one warning with the likely spelling; the watch
// goes on with the name as given.
func TestTypeSpelling(t *testing.T) {
	srv := specServer(t, fakeserver.Config{}, 30)
	res := run(t, serverEnv(srv), "--from", "0", "--types", "VM,vm_volume,Host,SomethingNew", "--limit", "1")
	for _, want := range []string{"--types VM: ", "did you mean Vm?", "--types vm_volume: ", "did you mean VmVolume?"} {
		if strings.Count(res.stderr, want) != 1 {
			t.Errorf("stderr should say %q once:\n%s", want, res.stderr)
		}
	}
	for _, unwanted := range []string{"--types Host", "--types SomethingNew"} {
		if strings.Contains(res.stderr, unwanted) {
			t.Errorf("stderr warns about a good spelling (%s):\n%s", unwanted, res.stderr)
		}
	}
	if res.code != 0 {
		t.Errorf("exit %d\n%s", res.code, res.stderr)
	}
}

func TestAPICredentialFlags(t *testing.T) {
	c, err := parseConfig(t, map[string]string{"CLOUDTOWER_API_USERNAME": "a", "CLOUDTOWER_API_PASSWORD": "b"}, stream.Revision{}, false,
		"--header", "X-A=1,2", "--header", "X-A=3", "--header", "X-B = spaced ")
	if err != nil {
		t.Fatal(err)
	}
	if c.APIUsername != "a" || c.APIPassword != "b" || strings.Join(c.Headers.Values("X-A"), "|") != "1,2|3" || c.Headers.Get("X-B") != "spaced" {
		t.Errorf("config = %+v", c)
	}
	if _, err := parseConfig(t, nil, stream.Revision{}, false, "--api-password", "b"); err == nil || !strings.Contains(err.Error(), "--api-username") {
		t.Errorf("--api-password alone: %v", err)
	}
	// No terminal to prompt on: the API password is a usage error.
	res := run(t, map[string]string{"CLOUDTOWER_SERVER": "127.0.0.1:1"}, "--api-username", "feed")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "CLOUDTOWER_API_PASSWORD") {
		t.Errorf("no API password: exit %d\n%s", res.code, res.stderr)
	}
	got := resumeCommand([]string{"--api-username", "feed", "--api-password", "s3cret", "--from", "5"}, stream.MustParseRevision("9"))
	if want := `ctwatch --api-username feed --api-password "$CLOUDTOWER_API_PASSWORD" --from 9`; got != want {
		t.Errorf("resumeCommand = %s, want %s", got, want)
	}
	got = resumeCommand([]string{"--header", "Authorization=Bearer s3cret", "--header=X-Api-Key=k3y", "--header", "X-Tenant=blue"}, stream.MustParseRevision("9"))
	if want := `ctwatch --header 'Authorization=<redacted>' --header 'X-Api-Key=<redacted>' --header X-Tenant=blue --from 9`; got != want {
		t.Errorf("resumeCommand = %s, want %s", got, want)
	}
}
