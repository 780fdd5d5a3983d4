package cloudtower

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

const (
	testAPIUser     = "api-watcher"
	testAPIPassword = "api-Secr3t-91b4"
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// specServer behaves as CloudTower's specification says: POST /login
// issues testToken for watcher/testPassword, GET /resource-changes wants
// HTTP Basic with the API credentials (or, with tokenOnChanges, the token),
// every other route the token. It records the headers of every request.
type specServer struct {
	tokenOnChanges bool

	mu      sync.Mutex
	headers map[string][]http.Header // path -> headers of each request
}

func (s *specServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.headers == nil {
		s.headers = make(map[string][]http.Header)
	}
	path := strings.TrimPrefix(r.URL.Path, DefaultBasePath)
	s.headers[path] = append(s.headers[path], r.Header.Clone())
	s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	switch path {
	case "/login":
		(&loginServer{status: 400, body: fmt.Sprintf(errorJSON, "x", 400)}).ServeHTTP(w, r)
	case "/resource-changes":
		if auth == basic(testAPIUser, testAPIPassword) || s.tokenOnChanges && auth == testToken {
			respond(w, 200, "application/json", okPage)
			return
		}
		respond(w, 401, "text/plain", "unauthorized")
	default:
		if auth != testToken {
			respond(w, 401, "text/plain", "unauthorized")
			return
		}
		respond(w, 200, "application/json", `{}`)
	}
}

func (s *specServer) requests(path string) []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[path]
}

func TestDialAPICredentials(t *testing.T) {
	for _, row := range []struct {
		name           string
		cfg            Config
		tokenOnChanges bool
		wantAuth       string // on GET /resource-changes; "" for a refusal
		wantCreds      Credentials
		logins         int
	}{
		{name: "login and API credentials", cfg: Config{Username: "watcher", Password: testPassword, APIUsername: testAPIUser, APIPassword: testAPIPassword},
			wantAuth: basic(testAPIUser, testAPIPassword), logins: 1},
		{name: "token and API credentials", cfg: Config{Token: testToken, APIUsername: testAPIUser, APIPassword: testAPIPassword},
			wantAuth: basic(testAPIUser, testAPIPassword)},
		{name: "API credentials alone", cfg: Config{APIUsername: testAPIUser, APIPassword: testAPIPassword},
			wantAuth: basic(testAPIUser, testAPIPassword)},
		{name: "login alone, server takes the token", cfg: Config{Username: "watcher", Password: testPassword}, tokenOnChanges: true,
			wantAuth: testToken, logins: 1},
		{name: "login alone, server wants Basic", cfg: Config{Username: "watcher", Password: testPassword},
			wantCreds: CredentialsToken, logins: 1},
		{name: "wrong API credentials", cfg: Config{Token: testToken, APIUsername: testAPIUser, APIPassword: "wrong-" + testAPIPassword},
			wantCreds: CredentialsAPI},
	} {
		t.Run(row.name, func(t *testing.T) {
			ss := &specServer{tokenOnChanges: row.tokenOnChanges}
			srv := newTestServer(t, ss.ServeHTTP)
			logger, logs := newLogger()
			cfg := row.cfg
			cfg.Host, cfg.Transport, cfg.Logger = srv.URL, srv.Client().Transport, logger
			cfg.Headers = http.Header{"X-Tenant": {"blue"}}
			cfg.BypassWhitelist = true
			c, err := Dial(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			page, err := New(c).Poll(context.Background(), stream.RevisionFromUint64(10), 10)
			if row.wantAuth != "" {
				if err != nil || len(page.Items) != 2 {
					t.Fatalf("Poll = %d items, %v; want 2", len(page.Items), err)
				}
				if got := ss.requests("/resource-changes")[0].Get("Authorization"); got != row.wantAuth {
					t.Errorf("Authorization = %q, want %q", got, row.wantAuth)
				}
			} else {
				var ae *APIError
				if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ae) || ae.Credentials != row.wantCreds {
					t.Fatalf("Poll err = %v, want ErrUnauthorized with Credentials %q", err, row.wantCreds)
				}
				if !strings.Contains(err.Error(), "sent: "+string(row.wantCreds)) {
					t.Errorf("err = %q does not say what was sent (%s)", err, row.wantCreds)
				}
				assertNoSecret(t, "error", err.Error(), testPassword, testToken, testAPIPassword, base64.StdEncoding.EncodeToString([]byte(testAPIUser+":")))
			}
			if got := len(ss.requests("/login")); got != row.logins {
				t.Errorf("%d logins, want %d", got, row.logins)
			}
			for path := range ss.headers {
				for _, h := range ss.requests(path) {
					if h.Get(BypassWhitelistHeader) != "true" || h.Get("X-Tenant") != "blue" {
						t.Errorf("%s: headers %v lack %s: true or X-Tenant: blue", path, h, BypassWhitelistHeader)
					}
				}
			}
			assertNoSecret(t, "logs", logs.String(), testPassword, testToken, testAPIPassword)
			CloseIdleConnections(c)
		})
	}
}

// TestDialAPICredentialsOnlyOnChanges: the API credentials go on GET
// /resource-changes only; every other operation keeps the token.
func TestDialAPICredentialsOnlyOnChanges(t *testing.T) {
	ss := &specServer{}
	srv := newTestServer(t, ss.ServeHTTP)
	c, err := Dial(context.Background(), Config{
		Host: srv.URL, Transport: srv.Client().Transport, Username: "watcher", Password: testPassword,
		APIUsername: testAPIUser, APIPassword: testAPIPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer CloseIdleConnections(c)
	// Another operation, submitted through the client's transport as the
	// SDK's services do.
	_, err = c.Transport.Submit(&runtime.ClientOperation{
		ID: "GetVms", Method: "POST", PathPattern: "/get-vms",
		ProducesMediaTypes: []string{"application/json"}, ConsumesMediaTypes: []string{"application/json"},
		Schemes: []string{"http"},
		Params: runtime.ClientRequestWriterFunc(func(r runtime.ClientRequest, _ strfmt.Registry) error {
			return r.SetBodyParam(map[string]any{})
		}),
		Reader: runtime.ClientResponseReaderFunc(func(resp runtime.ClientResponse, _ runtime.Consumer) (any, error) {
			if resp.Code() != 200 {
				return nil, fmt.Errorf("HTTP %d", resp.Code())
			}
			return nil, nil
		}),
		Context: context.Background(),
	})
	if err != nil {
		t.Fatalf("POST /get-vms: %v", err)
	}
	if got := ss.requests("/get-vms")[0].Get("Authorization"); got != testToken {
		t.Errorf("POST /get-vms Authorization = %q, want the token", got)
	}
}

// A caller's ClientOptions that set AuthInfo win over Dial's API
// credentials, and the Source says so when refused.
func TestClientOptionAuthInfoWins(t *testing.T) {
	ss := &specServer{}
	srv := newTestServer(t, ss.ServeHTTP)
	c, err := Dial(context.Background(), Config{
		Host: srv.URL, Transport: srv.Client().Transport, APIUsername: "someone", APIPassword: "else",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer CloseIdleConnections(c)
	own := func(op *runtime.ClientOperation) { op.AuthInfo = httptransport.BasicAuth(testAPIUser, testAPIPassword) }
	if _, err := New(c, ClientOptions(own)).Poll(context.Background(), stream.Revision{}, 10); err != nil {
		t.Fatalf("Poll with the caller's AuthInfo: %v", err)
	}
	bad := func(op *runtime.ClientOperation) { op.AuthInfo = httptransport.BasicAuth("x", "y") }
	_, err = New(c, ClientOptions(bad)).Poll(context.Background(), stream.Revision{}, 10)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Credentials != CredentialsOther {
		t.Fatalf("err = %v, want an APIError with Credentials %q", err, CredentialsOther)
	}
}

// Source options give a client not made by Dial (here the SDK's own
// runtime, as NewWithUserConfig builds it) the API credentials and headers.
func TestSourceCredentialOptions(t *testing.T) {
	ss := &specServer{}
	srv := newTestServer(t, ss.ServeHTTP)
	rt := httptransport.NewWithClient(strings.TrimPrefix(srv.URL, "http://"), DefaultBasePath, []string{"http"}, srv.Client())
	rt.DefaultAuthentication = httptransport.APIKeyAuth("Authorization", "header", testToken)
	c := client.New(rt, strfmt.Default)

	_, err := New(c).Poll(context.Background(), stream.Revision{}, 10)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Credentials != CredentialsUnknown || strings.Contains(err.Error(), "sent:") {
		t.Fatalf("without options: err = %v, want an APIError with unknown credentials", err)
	}

	src := New(c, APICredentials(testAPIUser, testAPIPassword), Header("X-Tenant", "blue"), BypassWhitelist())
	if _, err := src.Poll(context.Background(), stream.Revision{}, 10); err != nil {
		t.Fatalf("Poll: %v", err)
	}
	h := ss.requests("/resource-changes")[1]
	if h.Get("Authorization") != basic(testAPIUser, testAPIPassword) || h.Get("X-Tenant") != "blue" || h.Get(BypassWhitelistHeader) != "true" {
		t.Errorf("headers = %v", h)
	}

	_, err = New(c, APICredentials(testAPIUser, "wrong")).Poll(context.Background(), stream.Revision{}, 10)
	if !errors.As(err, &ae) || ae.Credentials != CredentialsAPI {
		t.Fatalf("wrong API credentials: err = %v, want Credentials %q", err, CredentialsAPI)
	}
	if len(New(c, APICredentials("", "")).copts) != len(New(c).copts) {
		t.Error("APICredentials with an empty user name added an option")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, row := range []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{Host: "h", Token: "t"}, ""},
		{Config{Host: "h", Username: "u", Password: "p"}, ""},
		{Config{Host: "h", APIUsername: "a", APIPassword: "b"}, ""},
		{Config{Host: "h", Username: "u", Password: "p", APIUsername: "a", APIPassword: "b"}, ""},
		{Config{Host: "h", Token: "t", Headers: http.Header{"X-A": {"1", "2"}}, BypassWhitelist: true}, ""},
		{Config{Host: "h"}, "no credentials"},
		{Config{Host: "h", Username: "u"}, "has no Password"},
		{Config{Host: "h", Password: "p"}, "Password without Username"},
		{Config{Host: "h", Token: "t", Username: "u"}, "both Token and Username"},
		{Config{Host: "h", APIUsername: "a"}, "has no APIPassword"},
		{Config{Host: "h", APIPassword: "b"}, "APIPassword without APIUsername"},
		{Config{Host: "h", Token: "t", Headers: http.Header{"Bad Name": {"x"}}}, "invalid header name"},
		{Config{Host: "h", Token: "t", Headers: http.Header{"X-A": {"a\r\nInjected: 1"}}}, "invalid value"},
		{Config{Host: "h", Token: "t", HTTPClient: http.DefaultClient, Timeout: 1}, "used as is"},
		{Config{Host: "h", Token: "t", Transport: http.DefaultTransport, CAFile: "x"}, "custom Transport"},
		{Config{Token: "t"}, "Host is empty"},
	} {
		err := row.cfg.Validate()
		if row.want == "" {
			if err != nil {
				t.Errorf("Validate(%v) = %v, want nil", row.cfg, err)
			}
			continue
		}
		if !errors.Is(err, ErrConfig) || !errors.Is(err, stream.ErrInvalidOption) || !strings.Contains(err.Error(), row.want) {
			t.Errorf("Validate(%v) = %v, want ErrConfig and stream.ErrInvalidOption with %q", row.cfg, err, row.want)
		}
		if c, derr := Dial(context.Background(), row.cfg); c != nil || derr == nil || derr.Error() != err.Error() {
			t.Errorf("Dial(%v) = %v, %v; want Validate's error", row.cfg, c, derr)
		}
	}
}

func TestConfigRedactionAPICredentials(t *testing.T) {
	cfg := Config{
		Host: "h", APIUsername: "api", APIPassword: testAPIPassword,
		Headers: http.Header{"Authorization": {testToken}, "X-Api-Key": {"k-" + testToken}, "X-Tenant": {"blue"}},
	}
	logger, logs := newLogger()
	logger.Info("config", "cfg", cfg)
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), cfg.String(), logs.String(),
		slog.AnyValue(cfg).Resolve().String(),
	} {
		assertNoSecret(t, "printed Config", s, testAPIPassword, testToken)
		if !strings.Contains(s, "blue") || !strings.Contains(s, "api") {
			t.Errorf("printed Config %q hides what is not secret", s)
		}
	}
}

// closeCounter is a RoundTripper that counts CloseIdleConnections calls.
type closeCounter struct {
	http.RoundTripper
	closed atomic.Int32
}

func (c *closeCounter) CloseIdleConnections() { c.closed.Add(1) }

func TestCloseIdleConnectionsDialTransport(t *testing.T) {
	cc := &closeCounter{RoundTripper: http.DefaultTransport}
	c, err := Dial(context.Background(), Config{Host: "tower.invalid", Token: "t", APIUsername: "a", APIPassword: "b", Transport: cc})
	if err != nil {
		t.Fatal(err)
	}
	CloseIdleConnections(c)
	if cc.closed.Load() != 1 {
		t.Errorf("CloseIdleConnections reached the transport %d times, want 1", cc.closed.Load())
	}
}

// TestEchoedSecretsScrubbed: a server that echoes the request's
// Authorization header (the token or the Basic API credentials) in its
// error message: neither the poll's error nor the SDK's payload under it
// passes a secret on.
func TestEchoedSecretsScrubbed(t *testing.T) {
	for _, status := range []int{400, 404, 500} {
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			_, pw, _ := r.BasicAuth() // a careless server that echoes the password too
			respond(w, status, "application/json", fmt.Sprintf(errorJSON, "bad request "+r.Header.Get("Authorization")+" for "+pw, status))
		})
		for _, cfg := range []Config{
			{Token: testToken},
			{Token: testToken, APIUsername: testAPIUser, APIPassword: testAPIPassword},
		} {
			cfg.Host, cfg.Transport = srv.URL, srv.Client().Transport
			c, err := Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(c).Poll(context.Background(), stream.RevisionFromUint64(1), 10)
			if err == nil || !strings.Contains(err.Error(), "bad request") {
				t.Fatalf("HTTP %d: err = %v, want the server's message", status, err)
			}
			secrets := []string{testToken, testAPIPassword, base64.StdEncoding.EncodeToString([]byte(testAPIUser + ":" + testAPIPassword))}
			assertNoSecret(t, "error", err.Error(), secrets...)
			var withBody interface{ GetPayload() *models.ErrorBody }
			if errors.As(err, &withBody) && withBody.GetPayload() != nil && withBody.GetPayload().Message != nil {
				assertNoSecret(t, "the SDK's payload", *withBody.GetPayload().Message, secrets...)
			}
			CloseIdleConnections(c)
		}
	}
}
