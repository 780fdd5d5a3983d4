package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/internal/cli"
	"github.com/towerwatch/towerwatch/jetstream/internal/natstest"
	"github.com/towerwatch/towerwatch/jetstream/wire"
)

// TestMetricsBridgeAndReader runs --publish and --from-nats with
// --metrics-addr and scrapes each while it runs (issue 13): the bridge
// exposes its own metrics next to the watch's, the reader the watch's.
func TestMetricsBridgeAndReader(t *testing.T) {
	srv := natstest.Start(t)
	url := srv.ClientURL()
	const n = 250

	// The bridge: a probe sink, placed before the NATS extension, sees
	// each published change, and scrapes after the n-th. The demo's
	// backlog is n changes, so the last page is short: the bridge's watch
	// has caught up by then.
	var bridgeMetrics string
	ctx, cancel := context.WithCancel(t.Context())
	stderr := &watched{}
	probe := cli.Extension{Name: "probe"}
	var publishedAtClose float64 = -1
	probe.Sink = func(_ context.Context, cfg *cli.Config) (cli.Sink, error) {
		reg, ok := cfg.Registerer.(prometheus.Gatherer)
		if !ok {
			t.Fatalf("Config.Registerer %T is no Gatherer", cfg.Registerer)
		}
		return &countSink{n: n, onClose: func() {
			// Run closes the sink once the bridge has returned.
			mfs, err := reg.Gather()
			if err != nil {
				t.Error(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "towerwatch_bridge_published_total" {
					publishedAtClose = mf.GetMetric()[0].GetCounter().GetValue()
				}
			}
		}, at: func() {
			base := metricsBase(t, stderr.String())
			bridgeMetrics = scrapeBody(t, base+"/metrics")
			if code, body := getStatus(t, base+"/readyz"); code != 200 {
				t.Errorf("bridge /readyz: %d %s", code, body)
			}
			cancel()
		}}, nil
	}
	code := cli.Run(ctx, []string{"--publish", url, "--demo", "--demo-latency", "0", "--demo-rate", "0", "--demo-backlog", strconv.Itoa(n),
		"--nats-lock-ttl", "1s", "--metrics-addr", "127.0.0.1:0"}, nil, strings.NewReader(""), io.Discard, stderr, probe, newNATS().Extension())
	cancel()
	if code != 0 || bridgeMetrics == "" {
		t.Fatalf("bridge: exit %d, scraped %v\n%s", code, bridgeMetrics != "", stderr.String())
	}
	for _, want := range []string{"towerwatch_bridge_leader 1\n", "towerwatch_bridge_publish_errors_total 0\n", "towerwatch_caught_up 1\n"} {
		if !strings.Contains(bridgeMetrics, want) {
			t.Errorf("bridge metrics lack %q:\n%s", want, bridgeMetrics)
		}
	}
	if !strings.Contains(bridgeMetrics, "towerwatch_bridge_published_total ") {
		t.Errorf("no towerwatch_bridge_published_total:\n%s", bridgeMetrics)
	}
	// The counter counts the acknowledgements the bridge has consumed:
	// never more than the stream holds. (Not always all of them: the
	// messages in flight when the run is cancelled are not always waited
	// for, and then not counted, nor always stored: the next bridge
	// publishes them again.)
	stored := len(natstest.Revisions(t, srv.JetStream(t), wire.DefaultStream))
	if publishedAtClose < 0 || publishedAtClose > float64(stored) {
		t.Errorf("towerwatch_bridge_published_total %v once the bridge stopped, with %d changes stored", publishedAtClose, stored)
	}

	// The reader: scrape once the changes stored are printed.
	ctx, cancel = context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var readerMetrics string
	stderr = &watched{}
	stdout := &watched{}
	stdout.onWrite = func(all string) {
		if readerMetrics == "" && strings.Count(all, "\n") >= stored {
			readerMetrics = scrapeBody(t, metricsBase(t, stderr.String())+"/metrics")
			cancel()
		}
	}
	code = cli.Run(ctx, []string{"--from-nats", url, "--from", "0", "-o", "ndjson", "--metrics-addr", "127.0.0.1:0"},
		nil, strings.NewReader(""), stdout, stderr, newNATS().Extension())
	if code != 0 || readerMetrics == "" || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("reader: exit %d, scraped %v\n%s", code, readerMetrics != "", stderr.String())
	}
	if !strings.Contains(readerMetrics, `towerwatch_polls_total{result="ok"}`) || !strings.Contains(readerMetrics, "towerwatch_events_total{") {
		t.Errorf("reader metrics:\n%s", readerMetrics)
	}
}

// countSink discards changes, calls at after the n-th and onClose when
// closed.
type countSink struct {
	n, seen     int
	at, onClose func()
}

func (s *countSink) Write(*models.ResourceChangeEvent) error {
	if s.seen++; s.seen == s.n && s.at != nil {
		s.at()
	}
	return nil
}
func (s *countSink) Flush() error { return nil }
func (s *countSink) Close() error {
	if s.onClose != nil {
		s.onClose()
	}
	return nil
}

// watched is a concurrency-safe writer that calls onWrite with all that
// was written so far.
type watched struct {
	mu      sync.Mutex
	b       strings.Builder
	onWrite func(all string)
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.onWrite != nil {
		w.onWrite(w.b.String())
	}
	return len(p), nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

var metricsLine = regexp.MustCompile(`serving metrics at (http://\S+)/metrics`)

func metricsBase(t *testing.T, stderr string) string {
	t.Helper()
	m := metricsLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no metrics line on stderr:\n%s", stderr)
	}
	return m[1]
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func scrapeBody(t *testing.T, url string) string {
	t.Helper()
	code, body := getStatus(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	return body
}
