package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

const errorJSON = `{"message":"%s","path":"/v2/api/resource-changes","status":%d,"code":"X"}`

// TestErrorTable drives every row of the error table through the real SDK
// client over loopback HTTP: a canned response in, the error Poll returns
// out.
func TestErrorTable(t *testing.T) {
	type want struct {
		is         error // sentinel, nil for transient errors
		fatal      bool
		status     int    // *APIError status, 0 for none
		msg        string // substring of err.Error()
		as         func(error) bool
		retryAfter time.Duration
	}
	asNotFound := func(err error) bool { var e *resource_change.GetResourceChangesNotFound; return errors.As(err, &e) }
	asBadRequest := func(err error) bool {
		var e *resource_change.GetResourceChangesBadRequest
		return errors.As(err, &e)
	}
	asInternal := func(err error) bool {
		var e *resource_change.GetResourceChangesInternalServerError
		return errors.As(err, &e)
	}
	asUnexpected := func(err error) bool { var e *models.UnexpectedError; return errors.As(err, &e) }
	asRuntime := func(err error) bool { var e *runtime.APIError; return errors.As(err, &e) }
	asProtocol := func(err error) bool { return errors.Is(err, stream.ErrProtocol) }
	const json = "application/json"
	httpDate := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)

	rows := []struct {
		name    string
		status  int
		ctype   string
		body    string
		headers []string
		want    want
	}{
		// 404, whatever the body: the server has no resource-change API.
		{"404 json", 404, json, fmt.Sprintf(errorJSON, "no route", 404), nil,
			want{is: ErrUnsupported, fatal: true, status: 404, msg: "HTTP 404 Not Found: no route", as: asNotFound}},
		{"404 json empty body", 404, json, "", nil,
			want{is: ErrUnsupported, fatal: true, status: 404, as: asNotFound}},
		{"404 plain text", 404, "text/plain; charset=utf-8", "Cannot GET /v2/api/resource-changes", nil,
			want{is: ErrUnsupported, fatal: true, status: 404, as: asUnexpected}},
		{"404 html", 404, "text/html", "<html><body>Not Found</body></html>", nil,
			want{is: ErrUnsupported, fatal: true, status: 404, as: asUnexpected}},
		{"404 no content type", 404, "", "404 page not found", nil,
			want{is: ErrUnsupported, fatal: true, status: 404, as: asUnexpected}},
		{"404 unknown media type", 404, "application/problem+json", fmt.Sprintf(errorJSON, "gone", 404), nil,
			want{is: ErrUnsupported, fatal: true, status: 404, as: asNotFound}},
		// 400: the request is wrong; the server says why.
		{"400 json", 400, json, fmt.Sprintf(errorJSON, "limit must not be greater than 1000", 400), nil,
			want{is: ErrBadRequest, fatal: true, status: 400, msg: "limit must not be greater than 1000", as: asBadRequest}},
		{"400 text", 400, "text/plain", "bad", nil,
			want{is: ErrBadRequest, fatal: true, status: 400, msg: "HTTP 400 Bad Request", as: asUnexpected}},
		// 401, 403: credentials.
		{"401 json", 401, json, fmt.Sprintf(errorJSON, "token expired", 401), nil,
			want{is: ErrUnauthorized, fatal: true, status: 401, msg: "HTTP 401 Unauthorized (sent: token)", as: asRuntime}},
		{"401 empty", 401, "", "", nil,
			want{is: ErrUnauthorized, fatal: true, status: 401, as: asRuntime}},
		{"403", 403, json, fmt.Sprintf(errorJSON, "forbidden", 403), nil,
			want{is: ErrUnauthorized, fatal: true, status: 403, as: asRuntime}},
		// Other client errors cannot be fixed by retrying either.
		{"405", 405, "text/plain", "method not allowed", nil,
			want{is: ErrBadRequest, fatal: true, status: 405, as: asRuntime}},
		{"422", 422, json, "{}", nil,
			want{is: ErrBadRequest, fatal: true, status: 422, as: asRuntime}},
		// Transient: retried, with Retry-After when the SDK keeps the response.
		{"408", 408, "", "", nil,
			want{status: 408, as: asRuntime}},
		{"429 seconds", 429, json, "{}", []string{"Retry-After", "7"},
			want{status: 429, as: asRuntime, retryAfter: 7 * time.Second}},
		{"429 http date", 429, "", "", []string{"Retry-After", httpDate},
			want{status: 429, as: asRuntime, retryAfter: 50 * time.Minute}},
		{"429 bad header", 429, "", "", []string{"Retry-After", "soon"},
			want{status: 429, as: asRuntime}},
		{"500 json", 500, json, fmt.Sprintf(errorJSON, "database is locked", 500), nil,
			want{status: 500, msg: "database is locked", as: asInternal}},
		{"500 text", 500, "text/plain", "oops", []string{"Retry-After", "2"},
			want{status: 500, as: asUnexpected, retryAfter: 2 * time.Second}},
		{"502 html", 502, "text/html", "<h1>Bad Gateway</h1>", nil,
			want{status: 502, as: asRuntime}},
		{"503 retry after", 503, "", "", []string{"Retry-After", "3"},
			want{status: 503, as: asRuntime, retryAfter: 3 * time.Second}},
		{"204", 204, "", "", nil,
			want{status: 204, as: asRuntime}},
		// A 200 the SDK cannot decode: retried, the SDK's error reachable.
		{"200 truncated", 200, json, `{"data":[{"revision":"1"`, nil,
			want{msg: "undecodable response body", as: asUnexpected}},
		{"200 malformed", 200, json, `{"data":[}`, nil,
			want{msg: "undecodable response body", as: asUnexpected}},
		{"200 html", 200, "text/html", "<html>login</html>", nil,
			want{msg: "undecodable response body", as: asUnexpected}},
		{"200 wrong shape", 200, json, `{"data":{"revision":"1"}}`, nil,
			want{msg: "undecodable response body", as: asUnexpected}},
		// A 200 with invalid revisions: a retryable protocol error.
		{"200 invalid currentRevision", 200, json, `{"data":[],"currentRevision":"12a","compactRevision":"0","ec":"0"}`, nil,
			want{msg: "currentRevision", as: asProtocol}},
		{"200 negative compactRevision", 200, json, `{"data":[],"currentRevision":"12","compactRevision":"-1","ec":"0"}`, nil,
			want{msg: "compactRevision", as: asProtocol}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				respond(w, row.status, row.ctype, row.body, row.headers...)
			})
			src := New(dialTest(t, srv, nil))
			_, err := src.Poll(context.Background(), stream.RevisionFromUint64(5), 10)
			checkError(t, err, row.want.is, row.want.fatal, row.want.status, row.want.msg, row.want.as)
			var ae *APIError
			if errors.As(err, &ae) {
				if ra := ae.RetryAfter(); ra < row.want.retryAfter || ra > row.want.retryAfter+time.Hour/5 ||
					(row.want.retryAfter == 0 && ra != 0) {
					t.Errorf("RetryAfter() = %v, want %v", ra, row.want.retryAfter)
				}
				var rae stream.RetryAfterError
				if !errors.As(err, &rae) {
					t.Errorf("errors.As(err, stream.RetryAfterError) failed")
				}
			}
			assertNoSecret(t, "err.Error()", err.Error(), testToken)
		})
	}
}

func checkError(t *testing.T, err, is error, fatal bool, status int, msg string, as func(error) bool) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want an error")
	}
	t.Logf("err: %v", err)
	for _, s := range []error{ErrUnsupported, ErrUnauthorized, ErrBadRequest} {
		if got, want := errors.Is(err, s), s == is; got != want {
			t.Errorf("errors.Is(err, %q) = %v, want %v", s, got, want)
		}
	}
	if got := stream.IsFatal(err); got != fatal {
		t.Errorf("stream.IsFatal(err) = %v, want %v", got, fatal)
	}
	var ae *APIError
	switch ok := errors.As(err, &ae); {
	case status == 0 && ok:
		t.Errorf("errors.As(err, *APIError) = %v, want none", ae)
	case status != 0 && !ok:
		t.Errorf("errors.As(err, *APIError) failed, want status %d", status)
	case ok && ae.Status != status:
		t.Errorf("APIError.Status = %d, want %d", ae.Status, status)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("err.Error() = %q, want it to contain %q", err, msg)
	}
	if as != nil && !as(err) {
		t.Errorf("the error does not reach the expected SDK type")
	}
}

// TestErrorTableTransport covers the rows without an HTTP response: the
// request fails in the network or is cancelled.
func TestErrorTableTransport(t *testing.T) {
	asURL := func(err error) bool { var e *url.Error; return errors.As(err, &e) }

	t.Run("connection refused", func(t *testing.T) {
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {})
		c := dialTest(t, srv, nil)
		srv.Close()
		_, err := New(c).Poll(context.Background(), stream.Revision{}, 10)
		checkError(t, err, nil, false, 0, "request failed", asURL)
		var ne net.Error
		if !errors.As(err, &ne) {
			t.Errorf("errors.As(err, net.Error) failed")
		}
	})
	t.Run("connection reset", func(t *testing.T) {
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
			}
		})
		_, err := New(dialTest(t, srv, nil)).Poll(context.Background(), stream.Revision{}, 10)
		checkError(t, err, nil, false, 0, "request failed", asURL)
	})
	t.Run("cancelled while hanging", func(t *testing.T) {
		srv, arrived := newHangingServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := New(dialTest(t, srv, nil)).Poll(ctx, stream.Revision{}, 10)
		checkError(t, err, nil, false, 0, "", asURL)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) = false")
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		srv, _ := newHangingServer(t)
		c, err := Dial(context.Background(), Config{Host: srv.URL, Token: testToken,
			Transport: srv.Client().Transport, Timeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(c).Poll(context.Background(), stream.Revision{}, 10)
		checkError(t, err, nil, false, 0, "", asURL)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("want a net.Error with Timeout() true, got %v", err)
		}
	})
}

// TestClassify covers classify's edges without the network.
func TestClassify(t *testing.T) {
	if err, fatal := classify(opPoll, nil); err != nil || fatal {
		t.Errorf("classify(nil) = %v, %v", err, fatal)
	}
	for _, row := range []struct {
		op     string
		status int
		want   kind
	}{
		{opPoll, 400, kindBadRequest}, {opLogin, 400, kindUnauthorized},
		{opPoll, 401, kindUnauthorized}, {opLogin, 401, kindUnauthorized},
		{opPoll, 403, kindUnauthorized}, {opPoll, 404, kindUnsupported}, {opLogin, 404, kindUnsupported},
		{opPoll, 405, kindBadRequest}, {opPoll, 408, kindRetry}, {opPoll, 409, kindBadRequest},
		{opPoll, 410, kindBadRequest}, {opPoll, 429, kindRetry}, {opPoll, 451, kindBadRequest},
		{opPoll, 500, kindRetry}, {opPoll, 501, kindRetry}, {opPoll, 502, kindRetry},
		{opPoll, 503, kindRetry}, {opPoll, 504, kindRetry}, {opPoll, 599, kindRetry},
		{opPoll, 204, kindRetry}, {opPoll, 304, kindRetry}, {opPoll, 100, kindRetry},
	} {
		if got := statusKind(row.op, row.status); got != row.want {
			t.Errorf("statusKind(%q, %d) = %d, want %d", row.op, row.status, got, row.want)
		}
		err, fatal := classify(row.op, runtime.NewAPIError("op", nil, row.status))
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != row.status || fatal != row.want.fatal() {
			t.Errorf("classify(%q, APIError %d) = %v, fatal %v", row.op, row.status, err, fatal)
		}
	}
	// Not an HTTP response: transient, wrapped.
	base := errors.New("boom")
	err, fatal := classify(opPoll, base)
	if fatal || !errors.Is(err, base) {
		t.Errorf("classify(plain) = %v, fatal %v", err, fatal)
	}
	err, fatal = classify(opPoll, fmt.Errorf("x: %w", context.DeadlineExceeded))
	if fatal || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("classify(deadline) = %v, fatal %v", err, fatal)
	}
	// A long server message is shortened in Error(), kept in Message.
	long := strings.Repeat("x", 1000)
	msg := long
	err, _ = classify(opPoll, &resource_change.GetResourceChangesBadRequest{Payload: &models.ErrorBody{Message: &msg}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Message != long || strings.Contains(err.Error(), long) {
		t.Errorf("long message: %v", err)
	}
}
