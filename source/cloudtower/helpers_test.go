package cloudtower

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "tok-3c9f1e2d-secret"

// newTestServer serves h on loopback HTTP under DefaultBasePath and closes
// it (and the idle connections of its client) when the test ends.
func newTestServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// dialTest returns a client of srv that sends testToken, over srv's own
// transport.
func dialTest(t *testing.T, srv *httptest.Server, logger *slog.Logger) *client.Cloudtower {
	t.Helper()
	c, err := Dial(context.Background(), Config{
		Host:      srv.URL,
		Token:     testToken,
		Transport: srv.Client().Transport,
		Logger:    logger,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// newHangingServer serves requests that never get a response: each reads
// its body, reports on arrived, and waits until the client goes away or
// the test ends.
func newHangingServer(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 100)
	release := make(chan struct{})
	srv = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // else the server does not notice a disconnect
		ch <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, ch
}

// newMemoryService is the SDK's resource-change service over an in-memory
// transport that answers every request with 200 and body.
func newMemoryService(body []byte) resource_change.ClientService {
	rt := httptransport.NewWithClient("memory.invalid", DefaultBasePath, []string{"http"}, &http.Client{
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{
				StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:        http.Header{"Content-Type": {"application/json"}},
				Body:          io.NopCloser(bytes.NewReader(body)),
				ContentLength: int64(len(body)), Request: r,
			}, nil
		}),
	})
	rt.Debug = false
	return resource_change.New(rt, strfmt.Default)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// respond writes one canned response.
func respond(w http.ResponseWriter, status int, contentType, body string, headers ...string) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func assertNoSecret(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s leaks the secret %q: %s", where, s, text)
		}
	}
}
