package cloudtower

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/user"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

// Defaults of Config.
const (
	DefaultBasePath   = "/v2/api"
	DefaultScheme     = "https"
	DefaultUserSource = "LOCAL"
	DefaultTimeout    = 30 * time.Second
)

// ErrConfig is wrapped by the errors Dial returns for an invalid Config.
var ErrConfig = errors.New("invalid cloudtower config")

// Config says how Dial reaches and logs in to CloudTower.
//
// Printing a Config (with fmt or log/slog) never shows Password or Token.
type Config struct {
	// Host is the server: "host", "host:port", or a URL
	// "https://host:port/v2/api" whose scheme and path then stand for
	// Scheme and BasePath. It must not hold a user name or password.
	Host string
	// BasePath is the API's path prefix (default "/v2/api").
	BasePath string
	// Scheme is "https" (the default) or "http".
	Scheme string

	// Username and Password log in through POST /login, as a user of
	// UserSource ("LOCAL" by default; "LDAP", "AUTHN" with AuthConfigID, ...).
	Username     string
	Password     string
	UserSource   string
	AuthConfigID string
	// Token, instead of Username and Password, is a token from an earlier
	// login; Dial then sends no request.
	Token string

	// CAFile is a PEM file of CA certificates to trust in addition to the
	// system's, for a server with a private or self-signed certificate.
	CAFile string
	// InsecureSkipVerify turns off verification of the server's
	// certificate: anyone on the path can then read the token and the
	// changes. For tests only; Dial logs a warning.
	InsecureSkipVerify bool
	// Timeout bounds each request, the response body included (default
	// 30 s; negative for none). The stream's PollTimeout applies as well.
	Timeout time.Duration

	// Transport, if set, carries the requests instead of a new
	// *http.Transport (a test server's in-memory transport, a proxy...).
	// CAFile and InsecureSkipVerify cannot be combined with it.
	Transport http.RoundTripper
	// HTTPClient, if set, is used as is: Transport, Timeout, CAFile and
	// InsecureSkipVerify must then be left unset.
	HTTPClient *http.Client

	// Logger receives a warning for InsecureSkipVerify and a debug line
	// per login (default slog.Default()). Secrets are never logged.
	Logger *slog.Logger
}

// String describes c with Password and Token redacted.
func (c Config) String() string {
	return fmt.Sprintf("cloudtower.Config{Host:%q BasePath:%q Scheme:%q Username:%q Password:%s UserSource:%q Token:%s CAFile:%q InsecureSkipVerify:%t Timeout:%v}",
		c.Host, c.BasePath, c.Scheme, c.Username, redacted(c.Password), c.UserSource, redacted(c.Token), c.CAFile, c.InsecureSkipVerify, c.Timeout)
}

// GoString is String, so that %#v does not show secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with Password and Token redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host), slog.String("base_path", c.BasePath), slog.String("scheme", c.Scheme),
		slog.String("username", c.Username), slog.String("password", redacted(c.Password)),
		slog.String("user_source", c.UserSource), slog.String("token", redacted(c.Token)),
		slog.String("ca_file", c.CAFile), slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
		slog.Duration("timeout", c.Timeout))
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// Dial returns an SDK client for the server of cfg, logged in: with
// Username and Password it logs in at once through the SDK (POST /login,
// honouring ctx), with Token it only checks cfg. Requests then carry the
// token in the Authorization header.
//
// Dial does not retry. A refused login is an *APIError with
// errors.Is(err, ErrUnauthorized); a wrong base path gives ErrUnsupported;
// an invalid cfg an error wrapping ErrConfig. Neither the password nor the
// token ever appears in an error or a log line.
//
// Unlike the SDK's NewWithUserConfig, Dial verifies TLS certificates,
// honours ctx, bounds every request with a timeout, makes no side request
// for LDAP, and turns off the SDK runtime's DEBUG dump (which would print
// the token and the password).
func Dial(ctx context.Context, cfg Config) (*client.Cloudtower, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	host, scheme, basePath, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" && cfg.Username == "" {
		return nil, fmt.Errorf("%w: no credentials: set Username and Password, or Token", ErrConfig)
	}
	if cfg.Token != "" && (cfg.Username != "" || cfg.Password != "") {
		return nil, fmt.Errorf("%w: set either Token or Username and Password, not both", ErrConfig)
	}
	if cfg.Token == "" && cfg.Password == "" {
		return nil, fmt.Errorf("%w: Username %q has no Password", ErrConfig, cfg.Username)
	}
	hc, err := cfg.httpClient(scheme, log)
	if err != nil {
		return nil, err
	}

	rt := httptransport.NewWithClient(host, basePath, []string{scheme}, hc)
	rt.Debug = false // the runtime's debug dump prints headers and bodies: the token, the password
	if hc.Transport != nil {
		rt.Transport = hc.Transport // unused for requests; lets CloseIdleConnections find it
	}
	// A response of an unknown media type is read as JSON, so that an
	// error status still reaches the error table instead of failing as
	// "no consumer".
	rt.Consumers["*/*"] = runtime.JSONConsumer()
	c := client.New(rt, strfmt.Default)

	token := cfg.Token
	if token == "" {
		if token, err = login(ctx, c, cfg, scheme+"://"+host+basePath); err != nil {
			return nil, err
		}
		log.Debug("cloudtower: logged in", "host", host, "user", cfg.Username, "source", userSource(cfg))
	}
	rt.DefaultAuthentication = httptransport.APIKeyAuth("Authorization", "header", token)
	return c, nil
}

// CloseIdleConnections closes the idle keep-alive connections of a client
// made by Dial (of its Transport, or of the one Dial made). It does
// nothing for other clients.
func CloseIdleConnections(c *client.Cloudtower) {
	if c == nil {
		return
	}
	if rt, ok := c.Transport.(*httptransport.Runtime); ok {
		if ci, ok := rt.Transport.(interface{ CloseIdleConnections() }); ok && rt.Transport != http.DefaultTransport {
			ci.CloseIdleConnections()
		}
	}
}

func userSource(cfg Config) string {
	if cfg.UserSource == "" {
		return DefaultUserSource
	}
	return cfg.UserSource
}

func login(ctx context.Context, c *client.Cloudtower, cfg Config, where string) (string, error) {
	params := user.NewLoginParams()
	if ctx != nil {
		params.SetContext(ctx)
	}
	username, password := cfg.Username, cfg.Password
	in := &models.LoginInput{
		Username: &username,
		Password: &password,
		Source:   models.NewUserSource(models.UserSource(userSource(cfg))),
	}
	if cfg.AuthConfigID != "" {
		in.AuthConfigID = ptr(cfg.AuthConfigID)
	}
	params.SetRequestBody(in)
	resp, err := c.User.Login(params)
	if err != nil {
		// The server may echo the request: never pass the password on,
		// neither in our error nor in the SDK's payload under it.
		var withBody interface{ GetPayload() *models.ErrorBody }
		if errors.As(err, &withBody) {
			if b := withBody.GetPayload(); b != nil {
				for _, f := range []*string{b.Message, b.Path, b.Stack, b.OperationName} {
					if f != nil {
						*f = strings.ReplaceAll(*f, cfg.Password, "[redacted]")
					}
				}
			}
		}
		err, _ := classify(opLogin, err)
		var ae *APIError
		if errors.As(err, &ae) {
			return "", err
		}
		return "", fmt.Errorf("%w (server %s): %s", err, where, networkHint(err))
	}
	if resp == nil || resp.Payload == nil || resp.Payload.Data == nil || resp.Payload.Data.Token == nil || *resp.Payload.Data.Token == "" {
		return "", fmt.Errorf("cloudtower: %s: the response holds no token (server %s): is this a CloudTower server?", opLogin, where)
	}
	return *resp.Payload.Data.Token, nil
}

// networkHint says what to check after a request failed without an HTTP
// response.
func networkHint(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		verify    *tls.CertificateVerificationError
		dns       *net.DNSError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the login did not finish in time"
	case errors.As(err, &hostname):
		return "the server's certificate does not name this host: use the name it was issued for"
	case errors.As(err, &unknownCA), errors.As(err, &verify):
		return "the server's certificate is not trusted: set CAFile to its CA certificate (InsecureSkipVerify is for tests only)"
	case errors.As(err, &dns):
		return "the host name does not resolve: check Host"
	}
	return "check Host and Scheme, and that the server is reachable"
}

// endpoint resolves Host, Scheme and BasePath.
func (cfg Config) endpoint() (host, scheme, basePath string, err error) {
	bad := func(format string, args ...any) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	raw := strings.TrimSpace(cfg.Host)
	shown := redactUserinfo(cfg.Host) // Host as errors show it
	if raw == "" {
		return bad("Host is empty: set it to \"host\", \"host:port\" or \"https://host:port\"")
	}
	withScheme := strings.Contains(raw, "://")
	if !withScheme {
		raw = "//" + raw
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		return bad("Host %q is not a host name or URL", shown)
	}
	if u.User != nil {
		return bad("Host must not hold a user name or password: use Username and Password")
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("Host %q: want \"host\", \"host:port\" or \"https://host:port/base/path\"", shown)
	}
	scheme = strings.ToLower(cfg.Scheme)
	if withScheme {
		us := strings.ToLower(u.Scheme)
		if scheme != "" && scheme != us {
			return bad("Scheme %q contradicts Host %q", cfg.Scheme, shown)
		}
		scheme = us
	}
	if scheme == "" {
		scheme = DefaultScheme
	}
	if scheme != "http" && scheme != "https" {
		return bad("scheme %q: want \"https\" or \"http\"", scheme)
	}
	basePath = cfg.BasePath
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		if basePath != "" && strings.TrimRight(basePath, "/") != p {
			return bad("BasePath %q contradicts the path of Host %q", cfg.BasePath, shown)
		}
		basePath = p
	}
	if basePath == "" {
		basePath = DefaultBasePath
	}
	if !strings.HasPrefix(basePath, "/") {
		basePath = "/" + basePath
	}
	return u.Host, scheme, strings.TrimRight(basePath, "/"), nil
}

// redactUserinfo hides what may be a user name and password in a Host
// that could not be vetted (everything before its last '@'), so that an
// error never shows them.
func redactUserinfo(host string) string {
	at := strings.LastIndex(host, "@")
	if at < 0 {
		return host
	}
	prefix := ""
	if i := strings.Index(host, "://"); i >= 0 && i < at {
		prefix = host[:i+3]
	}
	return prefix + "[redacted]" + host[at:]
}

// httpClient builds the HTTP client of cfg.
func (cfg Config) httpClient(scheme string, log *slog.Logger) (*http.Client, error) {
	tlsSet := cfg.CAFile != "" || cfg.InsecureSkipVerify
	if cfg.HTTPClient != nil {
		if cfg.Transport != nil || cfg.Timeout != 0 || tlsSet {
			return nil, fmt.Errorf("%w: HTTPClient is used as is: leave Transport, Timeout, CAFile and InsecureSkipVerify unset", ErrConfig)
		}
		return cfg.HTTPClient, nil
	}
	timeout := cfg.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0
	}
	rt := cfg.Transport
	if rt != nil {
		if tlsSet {
			return nil, fmt.Errorf("%w: CAFile and InsecureSkipVerify cannot apply to a custom Transport: configure its TLS yourself", ErrConfig)
		}
		return &http.Client{Transport: rt, Timeout: timeout}, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CAFile: %w", ErrConfig, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CAFile %q holds no PEM certificate", ErrConfig, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
		if scheme == "https" {
			log.Warn("cloudtower: TLS certificate verification is off (InsecureSkipVerify): the token and the changes can be intercepted; use CAFile instead", "host", cfg.Host)
		}
	}
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
