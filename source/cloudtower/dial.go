package cloudtower

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/user"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of Config.
const (
	DefaultBasePath   = "/v2/api"
	DefaultScheme     = "https"
	DefaultUserSource = "LOCAL"
	DefaultTimeout    = 30 * time.Second
)

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

	// APIUsername and APIPassword, if set, authenticate GET
	// /resource-changes, and only it, with HTTP Basic, as CloudTower's
	// API specification requires for that operation (it is the one
	// operation secured by Basic; every other one takes the login token).
	// They are API credentials, distinct from the login user. Without
	// them the resource-change request carries the login token, which
	// some servers accept. API credentials alone, without Username or
	// Token, are enough for watching: Dial then logs in to nothing.
	APIUsername string
	APIPassword string

	// Headers are added to every request, the login included (a header
	// set here replaces the SDK's value of the same name; an Authorization
	// header here replaces the token).
	Headers http.Header
	// BypassWhitelist adds the header "x-bypass-whitelist: true"
	// (BypassWhitelistHeader) to every request, as some CloudTower
	// deployments require.
	BypassWhitelist bool

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

// BypassWhitelistHeader is the header Config.BypassWhitelist and the
// BypassWhitelist option send, with the value "true".
const BypassWhitelistHeader = "x-bypass-whitelist"

// String describes c with Password, Token, APIPassword and the values of
// secret-looking Headers (Authorization, Cookie, anything naming a token,
// key, secret, password, session or credential) redacted.
func (c Config) String() string {
	return fmt.Sprintf("cloudtower.Config{Host:%q BasePath:%q Scheme:%q Username:%q Password:%s UserSource:%q Token:%s APIUsername:%q APIPassword:%s Headers:%s BypassWhitelist:%t CAFile:%q InsecureSkipVerify:%t Timeout:%v}",
		c.Host, c.BasePath, c.Scheme, c.Username, redacted(c.Password), c.UserSource, redacted(c.Token),
		c.APIUsername, redacted(c.APIPassword), redactHeaders(c.Headers), c.BypassWhitelist, c.CAFile, c.InsecureSkipVerify, c.Timeout)
}

// GoString is String, so that %#v does not show secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the secrets redacted as in
// String.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host), slog.String("base_path", c.BasePath), slog.String("scheme", c.Scheme),
		slog.String("username", c.Username), slog.String("password", redacted(c.Password)),
		slog.String("user_source", c.UserSource), slog.String("token", redacted(c.Token)),
		slog.String("api_username", c.APIUsername), slog.String("api_password", redacted(c.APIPassword)),
		slog.String("headers", redactHeaders(c.Headers)), slog.Bool("bypass_whitelist", c.BypassWhitelist),
		slog.String("ca_file", c.CAFile), slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
		slog.Duration("timeout", c.Timeout))
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// secretHeader reports whether a header's value should never be shown.
func secretHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"auth", "cookie", "token", "key", "secret", "pass", "session", "credential", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactHeaders prints h sorted by name, secret-looking values redacted.
func redactHeaders(h http.Header) string {
	if len(h) == 0 {
		return "{}"
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("{")
	for i, name := range names {
		if i > 0 {
			b.WriteString(" ")
		}
		if secretHeader(name) {
			fmt.Fprintf(&b, "%q:[redacted]", name)
		} else {
			fmt.Fprintf(&b, "%q:%q", name, h[name])
		}
	}
	b.WriteString("}")
	return b.String()
}

// Validate checks c as Dial does before it sends anything: an error wraps
// ErrConfig (and so stream.ErrInvalidOption) and names the field. It does
// not read CAFile.
//
// The credentials: Username with Password, or Token, or neither; and
// APIUsername with APIPassword, or neither; at least one of the two.
func (c Config) Validate() error {
	if _, _, _, err := c.endpoint(); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	login := c.Token != "" || c.Username != "" || c.Password != ""
	api := c.APIUsername != "" || c.APIPassword != ""
	switch {
	case !login && !api:
		bad("no credentials")
	case c.Token != "" && (c.Username != "" || c.Password != ""):
		bad("both Token and Username/Password set")
	case c.Token == "" && c.Username == "" && c.Password != "":
		bad("Password without Username")
	case c.Token == "" && c.Username != "" && c.Password == "":
		bad("Username %q has no Password", c.Username)
	}
	switch {
	case c.APIUsername != "" && c.APIPassword == "":
		bad("APIUsername %q has no APIPassword", c.APIUsername)
	case c.APIUsername == "" && c.APIPassword != "":
		bad("APIPassword without APIUsername")
	}
	for name, values := range c.Headers {
		if !validHeaderName(name) {
			bad("Headers: invalid header name %q", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				bad("Headers: invalid value of %q", name)
			}
		}
	}
	tlsSet := c.CAFile != "" || c.InsecureSkipVerify
	switch {
	case c.HTTPClient != nil && (c.Transport != nil || c.Timeout != 0 || tlsSet):
		bad("HTTPClient is used as is: Transport, Timeout, CAFile and InsecureSkipVerify must be unset")
	case c.Transport != nil && tlsSet:
		bad("CAFile and InsecureSkipVerify cannot apply to a custom Transport")
	}
	return errors.Join(errs...)
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// Dial returns an SDK client for the server of cfg (after cfg.Validate).
// With Username and Password it logs in at once through the SDK (POST
// /login, honouring ctx); with Token or only API credentials it sends no
// request. Every request then carries the token in the Authorization
// header, except GET /resource-changes when APIUsername and APIPassword
// are set: that one carries them with HTTP Basic, set as the operation's
// AuthInfo (a ClientOption of the caller that sets AuthInfo wins). Headers
// and BypassWhitelist are added to every request.
//
// Dial does not retry. A refused login is an *APIError with
// errors.Is(err, ErrUnauthorized); a wrong base path gives ErrUnsupported;
// an invalid cfg an error wrapping ErrConfig. Neither a password nor the
// token ever appears in an error or a log line.
//
// Unlike the SDK's NewWithUserConfig, Dial verifies TLS certificates,
// honours ctx, bounds every request with a timeout, makes no side request
// for LDAP, and turns off the SDK runtime's DEBUG dump (which would print
// the token and the password).
func Dial(ctx context.Context, cfg Config) (*client.Cloudtower, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	host, scheme, basePath, err := cfg.endpoint()
	if err != nil {
		return nil, err
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
	dt := &dialTransport{rt: rt, headers: cfg.Headers.Clone(), changes: CredentialsNone}
	dt.secrets = append(dt.secrets, cfg.Password, cfg.Token)
	if cfg.APIUsername != "" {
		dt.secrets = append(dt.secrets, cfg.APIPassword, base64.StdEncoding.EncodeToString([]byte(cfg.APIUsername+":"+cfg.APIPassword)))
	}
	if cfg.BypassWhitelist {
		if dt.headers == nil {
			dt.headers = make(http.Header)
		}
		dt.headers.Set(BypassWhitelistHeader, "true")
	}
	c := client.New(dt, strfmt.Default)

	token := cfg.Token
	if token == "" && cfg.Username != "" {
		if token, err = login(ctx, c, cfg, scheme+"://"+host+basePath); err != nil {
			return nil, err
		}
		log.Debug("cloudtower: logged in", "host", host, "user", cfg.Username, "source", userSource(cfg))
	}
	if token != "" {
		dt.secrets = append(dt.secrets, token)
		rt.DefaultAuthentication = httptransport.APIKeyAuth("Authorization", "header", token)
		dt.changes = CredentialsToken
	}
	if cfg.APIUsername != "" {
		dt.changesAuth = httptransport.BasicAuth(cfg.APIUsername, cfg.APIPassword)
		dt.changes = CredentialsAPI
	}
	return c, nil
}

// opChanges is the SDK's operation ID of GET /resource-changes.
const opChanges = "GetResourceChanges"

// dialTransport is the runtime.ClientTransport of a client from Dial: the
// SDK's runtime, plus the extra headers on every operation and the API
// credentials on GET /resource-changes.
type dialTransport struct {
	rt          *httptransport.Runtime
	headers     http.Header
	changesAuth runtime.ClientAuthInfoWriter // nil: the runtime's default (the token)
	changes     Credentials                  // what GET /resource-changes carries without a ClientOption's AuthInfo
	secrets     []string                     // never passed on in an error: passwords, the token, the Basic credentials
}

// Submit implements runtime.ClientTransport.
func (t *dialTransport) Submit(op *runtime.ClientOperation) (any, error) {
	if len(t.headers) > 0 {
		op.Params = withHeaders(op.Params, t.headers)
	}
	if op.ID == opChanges && op.AuthInfo == nil && t.changesAuth != nil {
		op.AuthInfo = t.changesAuth
	}
	res, err := t.rt.Submit(op)
	if err != nil {
		scrub(err, t.secrets)
	}
	return res, err
}

// scrub replaces the secrets in the server's message that err carries (a
// server may echo the request, its Authorization header included), so
// that neither our errors nor the SDK's payload under them pass one on.
func scrub(err error, secrets []string) {
	var withBody interface{ GetPayload() *models.ErrorBody }
	if !errors.As(err, &withBody) {
		return
	}
	b := withBody.GetPayload()
	if b == nil {
		return
	}
	for _, f := range []*string{b.Message, b.Path, b.Stack, b.OperationName} {
		if f == nil {
			continue
		}
		for _, secret := range secrets {
			if secret != "" {
				*f = strings.ReplaceAll(*f, secret, "[redacted]")
			}
		}
	}
}

// withHeaders returns params that also set headers.
func withHeaders(params runtime.ClientRequestWriter, headers http.Header) runtime.ClientRequestWriter {
	return runtime.ClientRequestWriterFunc(func(r runtime.ClientRequest, reg strfmt.Registry) error {
		if params != nil {
			if err := params.WriteToRequest(r, reg); err != nil {
				return err
			}
		}
		for name, values := range headers {
			if err := r.SetHeaderParam(name, values...); err != nil {
				return err
			}
		}
		return nil
	})
}

// CloseIdleConnections closes the idle keep-alive connections of a client
// made by Dial (of its Transport, or of the one Dial made). It does
// nothing for other clients.
func CloseIdleConnections(c *client.Cloudtower) {
	if c == nil {
		return
	}
	rt, ok := c.Transport.(*httptransport.Runtime)
	if dt, isDial := c.Transport.(*dialTransport); isDial {
		rt, ok = dt.rt, true
	}
	if ok {
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
		scrub(err, []string{cfg.Password})
		err, _ := classify(opLogin, err)
		var ae *APIError
		if errors.As(err, &ae) {
			return "", err
		}
		return "", fmt.Errorf("%w (server %s)", err, where)
	}
	if resp == nil || resp.Payload == nil || resp.Payload.Data == nil || resp.Payload.Data.Token == nil || *resp.Payload.Data.Token == "" {
		return "", fmt.Errorf("cloudtower: %s: %w: the response holds no token (server %s)", opLogin, stream.ErrProtocol, where)
	}
	return *resp.Payload.Data.Token, nil
}

// endpoint resolves Host, Scheme and BasePath.
func (cfg Config) endpoint() (host, scheme, basePath string, err error) {
	bad := func(format string, args ...any) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	raw := strings.TrimSpace(cfg.Host)
	shown := redactUserinfo(cfg.Host) // Host as errors show it
	if raw == "" {
		return bad("Host is empty")
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
		return bad("Host must not hold a user name or password")
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
			return nil, fmt.Errorf("%w: HTTPClient is used as is: Transport, Timeout, CAFile and InsecureSkipVerify must be unset", ErrConfig)
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
			return nil, fmt.Errorf("%w: CAFile and InsecureSkipVerify cannot apply to a custom Transport", ErrConfig)
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
	// Room for the requests stream.ParallelCatchUp keeps in flight (and a
	// hinted one): above net/http's default of 2, each extra one would
	// dial a new connection.
	tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 8)
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
