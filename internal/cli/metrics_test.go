package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

var metricsLine = regexp.MustCompile(`serving metrics at (http://\S+)/metrics`)

// metricsURL returns the base URL from the line ctwatch prints, once
// printed (stderr is written before the watch starts).
func metricsURL(t *testing.T, stderr string) string {
	t.Helper()
	m := metricsLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no metrics line on stderr:\n%s", stderr)
	}
	return m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runScraped runs ctwatch with --metrics-addr on a free loopback port and
// calls check once n changes are printed, while the watch runs; then it
// stops the run and checks that the server went with it.
func runScraped(t *testing.T, env map[string]string, n int, check func(base string), args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &output{}
	checked := false
	stdout := &output{}
	stdout.onWrite = func(all string) {
		if !checked && strings.Count(all, "\n") >= n {
			checked = true
			check(metricsURL(t, stderr.String()))
			cancel()
		}
	}
	res := runWith(t, ctx, env, stdout, stderr, nil, append([]string{"--metrics-addr", "127.0.0.1:0", "-o", "ndjson"}, args...)...)
	if res.code != 0 || !checked {
		t.Fatalf("exit %d, checked %v\n%s", res.code, checked, res.stderr)
	}
	base := metricsURL(t, res.stderr)
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("the metrics server outlived the run")
	}
}

func TestMetricsDemo(t *testing.T) {
	const backlog = 250
	runScraped(t, nil, backlog, func(base string) {
		code, body := httpGet(t, base+"/readyz")
		if code != 200 {
			t.Errorf("/readyz: %d %s, want 200 once the backlog is printed", code, body)
		}
		code, body = httpGet(t, base+"/healthz")
		if code != 200 || body != "ok\n" {
			t.Errorf("/healthz: %d %q", code, body)
		}
		code, body = httpGet(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		for _, want := range []string{
			"towerwatch_caught_up 1\n", "towerwatch_lag_revisions 0\n", `towerwatch_polls_total{result="ok"} `,
			"towerwatch_compactions_total 0\n", "go_goroutines ", "process_start_time_seconds ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q:\n%s", want, body)
			}
		}
		if got := sumEvents(body); got < backlog {
			t.Errorf("events_total sums to %d, want at least %d", got, backlog)
		}
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	}, "--demo", "--demo-backlog", "250", "--demo-rate", "0", "--demo-latency", "0", "--poll-interval", "10s")
}

func TestMetricsPlain(t *testing.T) {
	srv := newServer(t, 1234)
	srv.SetChangesAuth(fakeserver.AuthEither) // whatever credentials serverEnv gives
	runScraped(t, serverEnv(srv), 1234, func(base string) {
		_, body := httpGet(t, base+"/metrics")
		if got := sumEvents(body); got != 1234 {
			t.Errorf("events_total sums to %d, want 1234", got)
		}
		if code, body := httpGet(t, base+"/readyz"); code != 200 {
			t.Errorf("/readyz: %d %s", code, body)
		}
	}, "--from", "0", "--poll-interval", "10s")
}

func TestMetricsOff(t *testing.T) {
	res := run(t, nil, "--demo", "--limit", "3", "--demo-rate", "0", "--demo-backlog", "5")
	if res.code != 0 || strings.Contains(res.stderr, "metrics") {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
}

func TestMetricsAddrErrors(t *testing.T) {
	res := run(t, nil, "--demo", "--metrics-addr", "9464")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "--metrics-addr") {
		t.Errorf("--metrics-addr 9464: exit %d\n%s", res.code, res.stderr)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	res = run(t, nil, "--demo", "--metrics-addr", busy.Addr().String())
	if res.code != ExitFailure || !strings.Contains(res.stderr, "--metrics-addr") || strings.Contains(res.stderr, "demo:") {
		t.Errorf("--metrics-addr %s (in use): exit %d\n%s", busy.Addr(), res.code, res.stderr)
	}
}

var eventLine = regexp.MustCompile(`(?m)^towerwatch_events_total\{[^}]*\} (\d+)$`)

func sumEvents(exposition string) int {
	n := 0
	for _, m := range eventLine.FindAllStringSubmatch(exposition, -1) {
		var v int
		for _, c := range m[1] {
			v = v*10 + int(c-'0')
		}
		n += v
	}
	return n
}
