package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/user"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

var (
	// ErrUnsupported reports that the server has no resource-change API
	// (HTTP 404 on GET /resource-changes, whatever the body), or no login
	// API at the configured base path. Retrying cannot help: check Host and
	// BasePath (default DefaultBasePath), or upgrade CloudTower to a
	// version with resource changes.
	ErrUnsupported = errors.New("resource-change API not supported by this server")

	// ErrUnauthorized reports that the server refused the credentials
	// (HTTP 401 or 403, or a 400 on login). On POST /login check the
	// username, password and user source (and AuthConfigID for AUTHN). On
	// GET /resource-changes, APIError.Credentials says what was sent:
	// CloudTower's specification secures that operation with HTTP Basic,
	// so set Config.APIUsername and APIPassword (or the APICredentials
	// option) if the token was sent, or check them if they were; a token
	// may also have expired: Dial again and resume after the last handled
	// revision.
	ErrUnauthorized = errors.New("authentication refused")

	// ErrBadRequest reports that the server rejected the request itself
	// (HTTP 400, or another 4xx that retrying cannot fix). The error's
	// message includes the server's explanation; check the filter options
	// (ResourceTypes, ResourceID, Action: the server spells them "Vm",
	// "INSERT", ...) and the start revision.
	ErrBadRequest = errors.New("request rejected by the server")

	// ErrConfig is wrapped by the errors of Config.Validate and Dial for an
	// invalid Config. It wraps stream.ErrInvalidOption.
	ErrConfig error = &wrapSentinel{msg: "invalid cloudtower config", err: stream.ErrInvalidOption}

	// errNoClient is returned (as fatal) by a Source built without a
	// client: build it with New(c) or NewFromService(svc) and a non-nil
	// argument.
	errNoClient = errors.New("cloudtower: Source has no client")
)

// wrapSentinel is a sentinel error that wraps another one.
type wrapSentinel struct {
	msg string
	err error
}

func (e *wrapSentinel) Error() string { return e.msg }
func (e *wrapSentinel) Unwrap() error { return e.err }

// Credentials says which credentials a GET /resource-changes request
// carried (APIError.Credentials). It never holds their values.
type Credentials string

// The credentials a resource-change request may carry.
const (
	// CredentialsUnknown: the Source cannot tell (a client not made by
	// Dial, without the APICredentials option).
	CredentialsUnknown Credentials = ""
	// CredentialsNone: no credentials at all.
	CredentialsNone Credentials = "none"
	// CredentialsToken: the login token, in the Authorization header.
	CredentialsToken Credentials = "token"
	// CredentialsAPI: the API credentials (Config.APIUsername or the
	// APICredentials option), with HTTP Basic.
	CredentialsAPI Credentials = "API credentials"
	// CredentialsOther: an AuthInfo set by a ClientOptions option.
	CredentialsOther Credentials = "client option"
)

// APIError is an HTTP error response from CloudTower. Use errors.As to
// read the status; errors.Is(err, ErrUnsupported), ErrUnauthorized and
// ErrBadRequest hold for the statuses that map to them (see the package
// documentation), and errors.As also reaches the SDK's own error (for
// example *resource_change.GetResourceChangesNotFound or
// *runtime.APIError) through Unwrap.
//
// APIError implements stream.RetryAfterError: the engine waits at least
// RetryAfter before retrying a 429 or 503 that carried a Retry-After header.
type APIError struct {
	Op      string // the request, "GET /resource-changes" or "POST /login"
	Status  int    // the HTTP status code
	Message string // the server's explanation, "" if it sent none we could decode
	Err     error  // the SDK's error
	// Credentials says what GET /resource-changes carried (never their
	// values); "" for POST /login and when the Source cannot tell.
	Credentials Credentials

	kind       kind
	retryAfter time.Duration
}

// Error describes the failure: the request, the status, the server's
// message and, for a refused resource-change request, which credentials
// it carried. Advice is in the doc comments of the sentinels.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudtower: %s: HTTP %d", e.Op, e.Status)
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + shorten(e.Message))
	}
	if e.kind == kindUnauthorized && e.Credentials != CredentialsUnknown {
		fmt.Fprintf(&b, " (sent: %s)", e.Credentials)
	}
	if e.retryAfter > 0 {
		fmt.Fprintf(&b, " (the server asks to retry after %v)", e.retryAfter)
	}
	return b.String()
}

// Unwrap returns the SDK's error.
func (e *APIError) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel this status maps to.
func (e *APIError) Is(target error) bool {
	s := e.kind.sentinel()
	return s != nil && target == s
}

// RetryAfter returns the wait the server asked for with a Retry-After
// header, or 0.
func (e *APIError) RetryAfter() time.Duration { return e.retryAfter }

var _ stream.RetryAfterError = (*APIError)(nil)

// kind is what a failure means for the caller.
type kind int

const (
	kindRetry        kind = iota // transient: retry with backoff
	kindUnsupported              // fatal, ErrUnsupported
	kindUnauthorized             // fatal, ErrUnauthorized
	kindBadRequest               // fatal, ErrBadRequest
)

func (k kind) fatal() bool { return k != kindRetry }

func (k kind) sentinel() error {
	switch k {
	case kindUnsupported:
		return ErrUnsupported
	case kindUnauthorized:
		return ErrUnauthorized
	case kindBadRequest:
		return ErrBadRequest
	}
	return nil
}

const (
	opPoll  = "GET /resource-changes"
	opLogin = "POST /login"
)

// statusKind is THE error table: what an HTTP status from CloudTower means
// for op. Everything not listed is transient and retried: 408, 429, every
// 5xx, and statuses that should not reach here (1xx, 2xx other than 200,
// 3xx not followed).
//
//	status           poll                      login
//	400              fatal ErrBadRequest       fatal ErrUnauthorized
//	401, 403         fatal ErrUnauthorized     fatal ErrUnauthorized
//	404              fatal ErrUnsupported      fatal ErrUnsupported
//	408, 429         retry (Retry-After)       (Dial does not retry)
//	other 4xx        fatal ErrBadRequest       fatal ErrBadRequest
//	5xx, others      retry (Retry-After)       (Dial does not retry)
func statusKind(op string, status int) kind {
	switch {
	case status == http.StatusBadRequest && op == opLogin:
		return kindUnauthorized // CloudTower answers a wrong password with 400
	case status == http.StatusBadRequest:
		return kindBadRequest
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return kindUnauthorized
	case status == http.StatusNotFound:
		return kindUnsupported
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return kindRetry
	case status >= 400 && status < 500:
		return kindBadRequest
	default:
		return kindRetry
	}
}

// classify turns an error from the SDK into the error this package
// returns, and reports whether retrying may help. HTTP error responses
// become an *APIError whose kind comes from statusKind; anything else
// (network failures, timeouts, an undecodable 200) is transient and is
// wrapped with %w so that errors.Is and errors.As still reach the cause.
func classify(op string, err error) (_ error, fatal bool) {
	if err == nil {
		return nil, false
	}
	status, msg, retryAfter, ok := httpStatus(err)
	if !ok || status == http.StatusOK {
		switch {
		case ok: // 200 with a body the SDK could not decode
			ct := "none"
			var unexp *models.UnexpectedError
			if errors.As(err, &unexp) && unexp.Response() != nil && unexp.Response().GetHeader("Content-Type") != "" {
				ct = unexp.Response().GetHeader("Content-Type")
			}
			return fmt.Errorf("cloudtower: %s: undecodable response body (Content-Type %s): %w", op, ct, err), false
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, stream.ErrProtocol):
			return fmt.Errorf("cloudtower: %s: %w", op, err), false
		default:
			return fmt.Errorf("cloudtower: %s: request failed: %w", op, err), false
		}
	}
	k := statusKind(op, status)
	return &APIError{Op: op, Status: status, Message: msg, Err: err, kind: k, retryAfter: retryAfter}, k.fatal()
}

// httpStatus extracts the HTTP status, the server's message and the
// Retry-After wait from an SDK error, and reports whether err was an HTTP
// response at all.
func httpStatus(err error) (status int, msg string, retryAfter time.Duration, ok bool) {
	var (
		notFound  *resource_change.GetResourceChangesNotFound
		badReq    *resource_change.GetResourceChangesBadRequest
		internal  *resource_change.GetResourceChangesInternalServerError
		lNotFound *user.LoginNotFound
		lBadReq   *user.LoginBadRequest
		lInternal *user.LoginInternalServerError
		unexp     *models.UnexpectedError
		api       *runtime.APIError
	)
	switch {
	case errors.As(err, &notFound):
		return http.StatusNotFound, bodyMessage(notFound.Payload), 0, true
	case errors.As(err, &badReq):
		return http.StatusBadRequest, bodyMessage(badReq.Payload), 0, true
	case errors.As(err, &internal):
		return http.StatusInternalServerError, bodyMessage(internal.Payload), 0, true
	case errors.As(err, &lNotFound):
		return http.StatusNotFound, bodyMessage(lNotFound.Payload), 0, true
	case errors.As(err, &lBadReq):
		return http.StatusBadRequest, bodyMessage(lBadReq.Payload), 0, true
	case errors.As(err, &lInternal):
		return http.StatusInternalServerError, bodyMessage(lInternal.Payload), 0, true
	case errors.As(err, &unexp):
		// A status the SDK knows, with a body it could not decode (plain
		// text, HTML, truncated or malformed JSON).
		resp := unexp.Response()
		if resp == nil {
			return 0, "", 0, false
		}
		return resp.Code(), "", parseRetryAfter(resp.GetHeader("Retry-After")), true
	case errors.As(err, &api):
		// A status the SDK does not know (401, 403, 429, 502, 503, ...); its
		// body is not read.
		if resp, ok := api.Response.(runtime.ClientResponse); ok {
			retryAfter = parseRetryAfter(resp.GetHeader("Retry-After"))
		}
		return api.Code, "", retryAfter, true
	}
	return 0, "", 0, false
}

func bodyMessage(b *models.ErrorBody) string {
	if b == nil || b.Message == nil {
		return ""
	}
	return strings.TrimSpace(*b.Message)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func shorten(s string) string {
	const max = 300
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
