package promwatch_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdkclient "github.com/smartxworks/cloudtower-go-sdk/v2/client"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// dial logs in to srv: over loopback HTTP when it was started with
// StartHTTP, else over its in-memory transport (for synctest bubbles).
func dial(t *testing.T, srv *fakeserver.Server, memory bool) *sdkclient.Cloudtower {
	t.Helper()
	cfg := cloudtower.Config{
		Username: srv.Username(), Password: srv.Password(),
		APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(),
		Logger: slog.New(slog.DiscardHandler),
	}
	if memory {
		cfg.Host, cfg.Transport = "http://"+fakeserver.MemoryHost, srv.Transport()
	} else {
		cfg.Host = srv.URL()
	}
	c, err := cloudtower.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cloudtower.CloseIdleConnections(c) })
	return c
}

// families are the metric families of one scrape, by name.
type families map[string]*dto.MetricFamily

// scrape GETs url (a /metrics endpoint) and parses the text exposition.
func scrape(t *testing.T, url string) families {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape of %s: %v\n%s", url, err, body)
	}
	return mfs
}

// get GETs url with a fresh connection and returns the response and body.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.WithoutCancel(t.Context()), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, string(b)
}

// value returns the value of the metric name whose labels include the
// given name, value pairs, and whether there is one.
func (f families) value(name string, labels ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// must returns the value of a metric that must exist.
func (f families) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.value(name, labels...)
	if !ok {
		t.Fatalf("no metric %s%v in the scrape", name, labels)
	}
	return v
}

// serve answers one request on h in memory and returns the status and body.
func serve(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}
