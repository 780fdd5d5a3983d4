package cloudtower

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

const testPassword = "pw-Secr3t-7f2a"

func TestEndpoint(t *testing.T) {
	for _, row := range []struct {
		cfg                    Config
		host, scheme, basePath string
		errSubstr              string
	}{
		{cfg: Config{Host: "tower.local"}, host: "tower.local", scheme: "https", basePath: "/v2/api"},
		{cfg: Config{Host: " tower.local:8443 "}, host: "tower.local:8443", scheme: "https", basePath: "/v2/api"},
		{cfg: Config{Host: "10.0.0.1", Scheme: "HTTP"}, host: "10.0.0.1", scheme: "http", basePath: "/v2/api"},
		{cfg: Config{Host: "[::1]:80", Scheme: "http"}, host: "[::1]:80", scheme: "http", basePath: "/v2/api"},
		{cfg: Config{Host: "https://tower.local:8443"}, host: "tower.local:8443", scheme: "https", basePath: "/v2/api"},
		{cfg: Config{Host: "http://tower.local/"}, host: "tower.local", scheme: "http", basePath: "/v2/api"},
		{cfg: Config{Host: "https://tower.local/custom/api/"}, host: "tower.local", scheme: "https", basePath: "/custom/api"},
		{cfg: Config{Host: "https://tower.local/v2/api", BasePath: "/v2/api/"}, host: "tower.local", scheme: "https", basePath: "/v2/api"},
		{cfg: Config{Host: "tower.local", BasePath: "api"}, host: "tower.local", scheme: "https", basePath: "/api"},
		{cfg: Config{Host: "tower.local/base"}, host: "tower.local", scheme: "https", basePath: "/base"},
		{cfg: Config{Host: "HTTPS://tower.local", Scheme: "https"}, host: "tower.local", scheme: "https", basePath: "/v2/api"},

		{cfg: Config{}, errSubstr: "Host is empty"},
		{cfg: Config{Host: "https://"}, errSubstr: "want"},
		{cfg: Config{Host: "https://admin:" + testPassword + "@tower.local"}, errSubstr: "must not hold a user name or password"},
		{cfg: Config{Host: "tower.local?x=1"}, errSubstr: "want"},
		{cfg: Config{Host: "ftp://tower.local"}, errSubstr: `scheme "ftp"`},
		{cfg: Config{Host: "tower.local", Scheme: "ws"}, errSubstr: `scheme "ws"`},
		{cfg: Config{Host: "http://tower.local", Scheme: "https"}, errSubstr: "contradicts"},
		{cfg: Config{Host: "https://tower.local/a", BasePath: "/b"}, errSubstr: "contradicts"},
		{cfg: Config{Host: "http://[::1"}, errSubstr: "not a host name or URL"},
		{cfg: Config{Host: "https://admin:" + testPassword + "@tower.local:84x3"}, errSubstr: "not a host name or URL"},
		{cfg: Config{Host: "admin:" + testPassword + "@tower.local:84x3/api"}, errSubstr: "not a host name or URL"},
	} {
		host, scheme, basePath, err := row.cfg.endpoint()
		if row.errSubstr != "" {
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), row.errSubstr) {
				t.Errorf("endpoint(%q, %q, %q) err = %v, want ErrConfig with %q", row.cfg.Host, row.cfg.Scheme, row.cfg.BasePath, err, row.errSubstr)
			}
			if err != nil {
				assertNoSecret(t, "endpoint error", err.Error(), testPassword)
			}
			continue
		}
		if err != nil || host != row.host || scheme != row.scheme || basePath != row.basePath {
			t.Errorf("endpoint(%q, %q, %q) = %q, %q, %q, %v; want %q, %q, %q",
				row.cfg.Host, row.cfg.Scheme, row.cfg.BasePath, host, scheme, basePath, err, row.host, row.scheme, row.basePath)
		}
	}
}

func TestDialConfigErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		cfg  Config
		want string
	}{
		{Config{Host: "h"}, "no credentials"},
		{Config{Host: "h", Username: "u"}, "has no Password"},
		{Config{Host: "h", Token: "t", Username: "u"}, "both Token and Username"},
		{Config{Host: "h", Token: "t", Password: testPassword}, "both Token and Username"},
		{Config{Host: "h", Token: "t", HTTPClient: http.DefaultClient, Timeout: time.Second}, "used as is"},
		{Config{Host: "h", Token: "t", HTTPClient: http.DefaultClient, CAFile: "x"}, "used as is"},
		{Config{Host: "h", Token: "t", Transport: http.DefaultTransport, InsecureSkipVerify: true}, "custom Transport"},
		{Config{Host: "h", Token: "t", CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "CAFile"},
		{Config{Host: "h", Token: "t", CAFile: notPEM}, "no PEM certificate"},
		{Config{Host: "", Token: "t"}, "Host is empty"},
	} {
		c, err := Dial(context.Background(), row.cfg)
		if c != nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), row.want) {
			t.Errorf("Dial(%v) = %v, %v; want ErrConfig with %q", row.cfg, c, err, row.want)
		}
	}
}

// loginServer is a CloudTower stand-in for the login tests: it accepts
// testPassword and issues testToken, then serves okPage to requests that
// carry the token.
type loginServer struct {
	logins   atomic.Int32
	lastBody atomic.Pointer[map[string]string]
	status   int    // login status when the password is wrong
	body     string // and its body; %s is replaced by the request body
}

func (ls *loginServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case DefaultBasePath + "/login":
		ls.logins.Add(1)
		var in map[string]string
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Method != http.MethodPost {
			respond(w, 400, "application/json", fmt.Sprintf(errorJSON, "bad login request", 400))
			return
		}
		ls.lastBody.Store(&in)
		raw, _ := json.Marshal(in)
		if in["username"] != "watcher" || in["password"] != testPassword {
			// A careless server that echoes the request in its message.
			respond(w, ls.status, "application/json", strings.ReplaceAll(ls.body, "%s", strings.ReplaceAll(string(raw), `"`, `'`)))
			return
		}
		respond(w, 200, "application/json", `{"data":{"token":"`+testToken+`"}}`)
	case DefaultBasePath + "/resource-changes":
		if r.Header.Get("Authorization") != testToken {
			respond(w, 401, "application/json", fmt.Sprintf(errorJSON, "bad token "+r.Header.Get("Authorization"), 401))
			return
		}
		respond(w, 200, "application/json", okPage)
	default:
		respond(w, 404, "text/plain", "Cannot "+r.Method+" "+r.URL.Path)
	}
}

func TestDialLogin(t *testing.T) {
	ls := &loginServer{status: 400}
	srv := newTestServer(t, ls.ServeHTTP)
	logger, logs := newLogger()
	c, err := Dial(context.Background(), Config{
		Host: srv.URL, Username: "watcher", Password: testPassword,
		Transport: srv.Client().Transport, Logger: logger,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := *ls.lastBody.Load(); got["username"] != "watcher" || got["password"] != testPassword || got["source"] != "LOCAL" {
		t.Errorf("login body = %v", got)
	}
	page, err := New(c).Poll(context.Background(), stream.Revision{}, 10)
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("Poll after login = %v, %v", page, err)
	}
	if !strings.Contains(logs.String(), "logged in") {
		t.Errorf("no login log line: %s", logs)
	}
	assertNoSecret(t, "logs", logs.String(), testPassword, testToken)

	// Another user source, with an authentication config.
	if _, err := Dial(context.Background(), Config{
		Host: srv.URL, Username: "watcher", Password: testPassword, UserSource: "AUTHN", AuthConfigID: "ldap-1",
		Transport: srv.Client().Transport, Logger: logger,
	}); err != nil {
		t.Fatalf("Dial AUTHN: %v", err)
	}
	if got := *ls.lastBody.Load(); got["source"] != "AUTHN" || got["auth_config_id"] != "ldap-1" {
		t.Errorf("login body = %v", got)
	}

	// A token: no login request.
	before := ls.logins.Load()
	c, err = Dial(context.Background(), Config{Host: srv.URL, Token: testToken, Transport: srv.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c).Poll(context.Background(), stream.Revision{}, 10); err != nil {
		t.Fatal(err)
	}
	if ls.logins.Load() != before {
		t.Error("Dial with a Token logged in")
	}
}

func TestDialLoginRefused(t *testing.T) {
	for _, row := range []struct {
		status int
		body   string
		is     error
		msg    string
	}{
		{400, fmt.Sprintf(errorJSON, "invalid credentials for %s", 400), ErrUnauthorized, "invalid credentials for"},
		{401, fmt.Sprintf(errorJSON, "no: %s", 401), ErrUnauthorized, "HTTP 401 Unauthorized"},
		{403, "", ErrUnauthorized, "HTTP 403 Forbidden"},
		{404, fmt.Sprintf(errorJSON, "%s", 404), ErrUnsupported, "HTTP 404"},
		{500, fmt.Sprintf(errorJSON, "crashed on %s", 500), nil, "crashed on"},
		{200, `{"data":{}}`, nil, "holds no token"},
		{200, `{"data":{"token":""}}`, nil, "holds no token"},
	} {
		t.Run(fmt.Sprint(row.status), func(t *testing.T) {
			srv := newTestServer(t, (&loginServer{status: row.status, body: row.body}).ServeHTTP)
			logger, logs := newLogger()
			c, err := Dial(context.Background(), Config{
				Host: srv.URL, Username: "watcher", Password: "wrong-" + testPassword,
				Transport: srv.Client().Transport, Logger: logger,
			})
			if c != nil || err == nil {
				t.Fatalf("Dial = %v, %v; want an error", c, err)
			}
			t.Logf("err: %v", err)
			if row.is != nil && !errors.Is(err, row.is) {
				t.Errorf("errors.Is(err, %v) = false", row.is)
			}
			if !strings.Contains(err.Error(), row.msg) {
				t.Errorf("err = %q, want %q in it", err, row.msg)
			}
			var ae *APIError
			if row.status != 200 && (!errors.As(err, &ae) || ae.Status != row.status || ae.Op != opLogin) {
				t.Errorf("errors.As(err, *APIError) = %v", ae)
			}
			if ae != nil {
				assertNoSecret(t, "APIError.Message", ae.Message, testPassword)
				var withBody interface{ GetPayload() *models.ErrorBody }
				if errors.As(err, &withBody) && withBody.GetPayload() != nil && withBody.GetPayload().Message != nil {
					assertNoSecret(t, "the SDK's payload", *withBody.GetPayload().Message, testPassword)
				}
			}
			assertNoSecret(t, "err.Error()", err.Error(), testPassword)
			assertNoSecret(t, "logs", logs.String(), testPassword)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := Dial(context.Background(), Config{Host: srv.URL, Username: "watcher", Password: testPassword})
		if err == nil || !strings.Contains(err.Error(), "request failed") || !strings.Contains(err.Error(), "(server "+srv.URL) {
			t.Errorf("err = %v", err)
		}
		assertNoSecret(t, "err.Error()", err.Error(), testPassword)
	})
	t.Run("cancelled", func(t *testing.T) {
		srv, arrived := newHangingServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := Dial(ctx, Config{Host: srv.URL, Username: "watcher", Password: testPassword, Transport: srv.Client().Transport})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// TestSecretsNeverLeak logs in, then watches a server that fails once
// with 500 (a logged warning) and then refuses the token: neither the
// stream's final error nor any log line holds the password or the token.
func TestSecretsNeverLeak(t *testing.T) {
	var polls atomic.Int32
	ls := &loginServer{status: 400, body: fmt.Sprintf(errorJSON, "x", 400)}
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == DefaultBasePath+"/resource-changes" {
			switch polls.Add(1) {
			case 1:
				respond(w, 500, "application/json", fmt.Sprintf(errorJSON, "token "+r.Header.Get("Authorization")+" broke us", 500))
				return
			case 2:
				respond(w, 401, "application/json", fmt.Sprintf(errorJSON, "token "+r.Header.Get("Authorization")+" expired", 401))
				return
			}
		}
		ls.ServeHTTP(w, r)
	})
	logger, logs := newLogger()
	c, err := Dial(context.Background(), Config{
		Host: srv.URL, Username: "watcher", Password: testPassword, Transport: srv.Client().Transport, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	var last error
	for _, err := range New(c).Watch(context.Background(), stream.After(stream.RevisionFromUint64(1)),
		stream.Logger(logger), stream.Backoff(time.Millisecond, time.Millisecond),
		stream.OnWarning(func(err error) { warnings = append(warnings, err.Error()) })) {
		last = err
	}
	if !errors.Is(last, ErrUnauthorized) || !stream.IsFatal(last) {
		t.Fatalf("the stream ended with %v, want ErrUnauthorized", last)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings = %q, want one", warnings)
	}
	// The 500's message is the server's: it is passed on as is. The token
	// appears in it only because this test server echoes it.
	for _, w := range warnings {
		if !strings.Contains(w, "broke us") {
			t.Errorf("warning %q lacks the server's message", w)
		}
	}
	assertNoSecret(t, "final error", last.Error(), testPassword)
	assertNoSecret(t, "logs", strings.ReplaceAll(logs.String(), "token "+testToken+" broke us", "<echo>"), testPassword, testToken)
	if strings.Contains(last.Error(), "expired") && strings.Contains(last.Error(), testToken) {
		t.Errorf("final error leaks the token: %v", last)
	}
}

func TestDialTLS(t *testing.T) {
	ls := &loginServer{status: 400}
	srv := httptest.NewUnstartedServer(ls)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Host: srv.URL, Username: "watcher", Password: testPassword}

	t.Run("untrusted", func(t *testing.T) {
		logger, _ := newLogger()
		cfg := cfg
		cfg.Logger = logger
		_, err := Dial(context.Background(), cfg)
		var unknownCA x509.UnknownAuthorityError
		if !errors.As(err, &unknownCA) {
			t.Errorf("err = %v, want an x509.UnknownAuthorityError", err)
		}
	})
	t.Run("CAFile", func(t *testing.T) {
		cfg := cfg
		cfg.CAFile = caFile
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		t.Cleanup(func() { CloseIdleConnections(c) })
		if _, err := New(c).Poll(context.Background(), stream.Revision{}, 10); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		logger, logs := newLogger()
		cfg := cfg
		cfg.InsecureSkipVerify, cfg.Logger = true, logger
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		t.Cleanup(func() { CloseIdleConnections(c) })
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "InsecureSkipVerify") {
			t.Errorf("no warning logged: %s", logs)
		}
	})
	t.Run("http to https", func(t *testing.T) {
		cfg := cfg
		cfg.Host = strings.Replace(srv.URL, "https://", "http://", 1)
		if _, err := Dial(context.Background(), cfg); err == nil {
			t.Error("Dial over http to an https server succeeded")
		}
	})
	CloseIdleConnections(nil) // no panic
}

func TestConfigRedaction(t *testing.T) {
	cfg := Config{Host: "h", Username: "u", Password: testPassword, Token: testToken}
	logger, logs := newLogger()
	logger.Info("config", "cfg", cfg)
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), (&cfg).String(), cfg.String(), logs.String(),
		slog.AnyValue(cfg).Resolve().String(),
	} {
		assertNoSecret(t, "printed Config", s, testPassword, testToken)
		if !strings.Contains(s, "redacted") {
			t.Errorf("printed Config %q does not say it is redacted", s)
		}
	}
}
