package cli

import (
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// newTLSServer serves a fake CloudTower with n changes over HTTPS on
// loopback, with a self-signed certificate; it returns the environment
// that points ctwatch at it and a PEM file of the certificate.
func newTLSServer(t *testing.T, n int) (env map[string]string, caFile string) {
	t.Helper()
	srv := fakeserver.New(fakeserver.Config{Seed: 7})
	srv.Generate(n)
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.StartTLS()
	t.Cleanup(func() { ts.Close(); srv.Close() })

	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// The host without a scheme: ctwatch must default to https.
	host := strings.TrimPrefix(ts.URL, "https://")
	return map[string]string{
		"CLOUDTOWER_SERVER":   host,
		"CLOUDTOWER_USERNAME": srv.Username(),
		"CLOUDTOWER_PASSWORD": srv.Password(),
		// HTTP Basic on the resource-change feed, as the fake (like CloudTower) wants
		"CLOUDTOWER_API_USERNAME": srv.APIUsername(),
		"CLOUDTOWER_API_PASSWORD": srv.APIPassword(),
	}, caFile
}

// TestTLS: the server's certificate is verified unless asked otherwise;
// --ca-file (or CLOUDTOWER_CA_FILE) trusts a private CA; and
// --insecure-skip-verify works only with a warning on stderr, even with
// -q.
func TestTLS(t *testing.T) {
	env, caFile := newTLSServer(t, 5)

	res := run(t, env, "--from", "0", "--limit", "5")
	if res.code != ExitFailure || !strings.Contains(res.stderr, "certificate is not trusted") || !strings.Contains(res.stderr, "--ca-file FILE") || res.stdout != "" {
		t.Errorf("unknown CA: exit %d, want %d; stdout %q\n%s", res.code, ExitFailure, res.stdout, res.stderr)
	}

	res = run(t, env, "--from", "0", "--limit", "5", "--ca-file", caFile)
	if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 5 || strings.Contains(res.stderr, "warning") {
		t.Errorf("--ca-file: exit %d, %d changes\n%s", res.code, len(parseNDJSON(t, res.stdout)), res.stderr)
	}
	withCA := map[string]string{"CLOUDTOWER_CA_FILE": caFile}
	for k, v := range env {
		withCA[k] = v
	}
	if res := run(t, withCA, "--from", "0", "--limit", "5"); res.code != 0 {
		t.Errorf("CLOUDTOWER_CA_FILE: exit %d\n%s", res.code, res.stderr)
	}

	for _, args := range [][]string{
		{"--from", "0", "--limit", "5", "--insecure-skip-verify"},
		{"--from", "0", "--limit", "5", "--insecure-skip-verify", "-q"},
	} {
		res := run(t, env, args...)
		if res.code != 0 || len(parseNDJSON(t, res.stdout)) != 5 {
			t.Errorf("%q: exit %d\n%s", args, res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "ctwatch: warning: --insecure-skip-verify: the server's TLS certificate is not verified") {
			t.Errorf("%q: no warning on stderr:\n%s", args, res.stderr)
		}
	}
}
