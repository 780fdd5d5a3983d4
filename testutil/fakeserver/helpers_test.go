package fakeserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wireEvent and wirePage decode the 200 response strictly: every field
// must be a JSON string (or absent), nothing unknown.
type wireEvent struct {
	Action       *string `json:"action"`
	CreatedAt    *string `json:"created_at"`
	NewValue     *string `json:"new_value"`
	OldValue     *string `json:"old_value"`
	PrevRevision *string `json:"prev_revision"`
	ResourceID   *string `json:"resource_id"`
	ResourceType *string `json:"resource_type"`
	Revision     *string `json:"revision"`
}

type wirePage struct {
	Data            []wireEvent `json:"data"`
	CurrentRevision *string     `json:"currentRevision"`
	CompactRevision *string     `json:"compactRevision"`
	Ec              *string     `json:"ec"`
	Error           any         `json:"error"`
}

type wireError struct {
	Message *string `json:"message"`
	Path    *string `json:"path"`
	Status  *int    `json:"status"`
	Code    *string `json:"code"`
}

func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\nbody: %.300s", v, err, body)
	}
}

// transport is one way of reaching a server.
type transport struct {
	name  string
	start func(t *testing.T, s *Server) (*http.Client, string)
}

var transports = []transport{
	{"loopback", func(t *testing.T, s *Server) (*http.Client, string) {
		base := s.StartHTTP()
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}, base
	}},
	{"memory", func(t *testing.T, s *Server) (*http.Client, string) {
		return s.Client(), "http://" + MemoryHost
	}},
}

// forEachTransport runs f against a fresh server per transport.
func forEachTransport(t *testing.T, cfg Config, f func(t *testing.T, s *Server, c *client)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := New(cfg)
			t.Cleanup(s.Close)
			hc, base := tr.start(t, s)
			f(t, s, newClient(t, s, hc, base))
		})
	}
}

// client is a minimal plain net/http client of the fake server. Its
// resource-change requests send the API credentials as HTTP Basic, or the
// token if apiUser is empty.
type client struct {
	t                *testing.T
	hc               *http.Client
	base             string
	token            string
	apiUser, apiPass string
}

// newClient returns a client of s through hc at base, with s's
// credentials.
func newClient(t *testing.T, s *Server, hc *http.Client, base string) *client {
	return &client{t: t, hc: hc, base: base, token: s.Token(), apiUser: s.APIUsername(), apiPass: s.APIPassword()}
}

// memClient returns a client of s through the in-memory transport.
func memClient(t *testing.T, s *Server) *client {
	return newClient(t, s, s.Client(), "http://"+MemoryHost)
}

// changesAuth returns the Authorization header the client sends to the
// resource-change endpoint.
func (c *client) changesAuth() string {
	if c.apiUser == "" {
		return c.token
	}
	return basicAuth(c.apiUser, c.apiPass)
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

type result struct {
	resp    *http.Response
	err     error // from Do
	body    []byte
	bodyErr error // from reading the body
}

func (c *client) do(ctx context.Context, method, path, body string, header map[string]string) result {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var r result
	r.resp, r.err = c.hc.Do(req)
	if r.err != nil {
		return r
	}
	r.body, r.bodyErr = io.ReadAll(r.resp.Body)
	r.resp.Body.Close()
	return r
}

// changes requests a page with the given query (key, value pairs).
func (c *client) changes(kv ...string) result {
	c.t.Helper()
	return c.changesCtx(context.Background(), kv...)
}

func (c *client) changesCtx(ctx context.Context, kv ...string) result {
	c.t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	path := ResourceChangesPath
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, path, "", map[string]string{"Authorization": c.changesAuth()})
}

// page requests a page and decodes it, failing the test on anything but a
// clean 200.
func (c *client) page(kv ...string) wirePage {
	c.t.Helper()
	r := c.changes(kv...)
	if r.err != nil || r.bodyErr != nil {
		c.t.Fatalf("request %v: %v / %v", kv, r.err, r.bodyErr)
	}
	if r.resp.StatusCode != 200 {
		c.t.Fatalf("request %v: status %d: %s", kv, r.resp.StatusCode, r.body)
	}
	checkHeaders(c.t, r, contentJSON)
	var p wirePage
	decodeStrict(c.t, r.body, &p)
	return p
}

// checkHeaders checks Content-Type and that Content-Length matches the body.
func checkHeaders(t *testing.T, r result, contentType string) {
	t.Helper()
	if got := r.resp.Header.Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type = %q, want %q", got, contentType)
	}
	if r.resp.Header.Get("Content-Length") == "" || r.resp.ContentLength != int64(len(r.body)) {
		t.Errorf("Content-Length header %q, ContentLength %d, body %d bytes",
			r.resp.Header.Get("Content-Length"), r.resp.ContentLength, len(r.body))
	}
}

// checkError checks a JSON error response.
func checkError(t *testing.T, r result, status int, path string) wireError {
	t.Helper()
	if r.err != nil || r.bodyErr != nil {
		t.Fatalf("request: %v / %v", r.err, r.bodyErr)
	}
	if r.resp.StatusCode != status {
		t.Fatalf("status = %d, want %d: %s", r.resp.StatusCode, status, r.body)
	}
	checkHeaders(t, r, contentJSON)
	var e wireError
	decodeStrict(t, r.body, &e)
	if e.Message == nil || *e.Message == "" || e.Path == nil || *e.Path != path || e.Status == nil || *e.Status != status {
		t.Errorf("error body %s: want message, path %q, status %d", r.body, path, status)
	}
	return e
}

func revs(p wirePage) []string {
	out := make([]string, len(p.Data))
	for i, e := range p.Data {
		if e.Revision != nil {
			out[i] = *e.Revision
		}
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// appendN appends n simple events of the given types in turn.
func appendN(s *Server, n int, types ...string) uint64 {
	if len(types) == 0 {
		types = []string{TypeVM}
	}
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{
			Action:       ActionUpdate,
			ResourceType: types[i%len(types)],
			ResourceID:   "cl" + strings.Repeat("0", 20) + string(rune('a'+i%26)) + "xy",
			NewValue:     `{"n":1}`,
			OldValue:     `{"n":0}`,
		}
	}
	return s.Append(evs...)
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func parseU(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

func decodeBody(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
