package cloudtower

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"

	"github.com/towerwatch/towerwatch/stream"
)

// endless is a body that never ends: '{"data":[' then spaces forever. It
// counts the bytes read from it.
type endless struct {
	read atomic.Int64
}

func (e *endless) Read(p []byte) (int, error) {
	const head = `{"data":[`
	n := 0
	for i := range p {
		off := e.read.Load() + int64(i)
		if off < int64(len(head)) {
			p[i] = head[off]
		} else {
			p[i] = ' '
		}
		n++
	}
	e.read.Add(int64(n))
	return n, nil
}

// bodyService is the SDK's resource-change service over an in-memory
// transport whose 200 responses have the body body() returns.
func bodyService(body func() io.Reader) resource_change.ClientService {
	rt := httptransport.NewWithClient("memory.invalid", DefaultBasePath, []string{"http"}, &http.Client{
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{
				StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   io.NopCloser(body()), ContentLength: -1, Request: r,
			}, nil
		}),
	})
	rt.Debug = false
	return resource_change.New(rt, strfmt.Default)
}

// pageOfSize is a valid response of exactly n bytes (n >= 64): okPage
// padded with spaces.
func pageOfSize(n int) string {
	return okPage + strings.Repeat(" ", n-len(okPage))
}

func TestMaxResponseBytes(t *testing.T) {
	const limit = 4 << 10
	t.Run("endless", func(t *testing.T) {
		body := &endless{}
		src := NewFromService(bodyService(func() io.Reader { return body }), MaxResponseBytes(limit))
		_, err := src.Poll(context.Background(), stream.RevisionFromUint64(1), 10)
		var tl *TooLargeError
		if !errors.Is(err, stream.ErrProtocol) || !errors.As(err, &tl) || tl.Limit != limit || stream.IsFatal(err) {
			t.Fatalf("err = %v, want a retryable *TooLargeError wrapping stream.ErrProtocol", err)
		}
		if n := body.read.Load(); n > limit+1 {
			t.Errorf("read %d bytes of the body, want at most %d", n, limit+1)
		}
	})
	t.Run("just over", func(t *testing.T) {
		src := NewFromService(bodyService(func() io.Reader { return strings.NewReader(pageOfSize(limit + 1)) }), MaxResponseBytes(limit))
		if _, err := src.Poll(context.Background(), stream.RevisionFromUint64(1), 10); !errors.Is(err, stream.ErrProtocol) {
			t.Fatalf("err = %v, want stream.ErrProtocol", err)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		src := NewFromService(bodyService(func() io.Reader { return strings.NewReader(pageOfSize(limit)) }), MaxResponseBytes(limit))
		page, err := src.Poll(context.Background(), stream.RevisionFromUint64(1), 10)
		if err != nil || len(page.Items) != 2 {
			t.Fatalf("Poll = %d items, %v; want 2", len(page.Items), err)
		}
	})
	t.Run("just under", func(t *testing.T) {
		src := NewFromService(bodyService(func() io.Reader { return strings.NewReader(pageOfSize(limit - 1)) }), MaxResponseBytes(limit))
		page, err := src.Poll(context.Background(), stream.RevisionFromUint64(1), 10)
		if err != nil || len(page.Items) != 2 {
			t.Fatalf("Poll = %d items, %v; want 2", len(page.Items), err)
		}
	})
	t.Run("default", func(t *testing.T) {
		if s := NewFromService(nil); s.maxBytes != DefaultMaxResponseBytes {
			t.Errorf("default bound %d, want %d", s.maxBytes, DefaultMaxResponseBytes)
		}
		if s := NewFromService(nil, MaxResponseBytes(0)); s.maxBytes != DefaultMaxResponseBytes {
			t.Errorf("MaxResponseBytes(0) bound %d, want %d", s.maxBytes, DefaultMaxResponseBytes)
		}
	})
}

// TestMaxResponseBytesWatch: over loopback HTTP, a server that streams an
// endless body is a warning the engine retries, never a crash, and the
// stream goes on once the server behaves.
func TestMaxResponseBytesWatch(t *testing.T) {
	var polls atomic.Int32
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) > 2 {
			respond(w, 200, "application/json", okPage)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[`)
		pad := []byte(strings.Repeat(" ", 1<<10))
		for {
			if _, err := w.Write(pad); err != nil {
				return // the client gave up
			}
		}
	})
	src := New(dialTest(t, srv, nil), MaxResponseBytes(64<<10))
	var warnings []error
	var got []string
	for ev, err := range src.Watch(context.Background(), After(stream.RevisionFromUint64(10)),
		stream.Backoff(time.Millisecond, time.Millisecond), stream.Logger(slog.New(slog.DiscardHandler)), stream.OnWarning(func(err error) { warnings = append(warnings, err) })) {
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		if got = append(got, *ev.Revision); len(got) == 2 {
			break
		}
	}
	if len(warnings) != 2 {
		t.Fatalf("warnings = %v, want 2", warnings)
	}
	for _, w := range warnings {
		var tl *TooLargeError
		if !errors.As(w, &tl) || !errors.Is(w, stream.ErrProtocol) {
			t.Errorf("warning %v, want a *TooLargeError", w)
		}
	}
}
