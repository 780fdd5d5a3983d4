package fakeserver

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
)

// MemoryHost is a host name for URLs used with the in-memory transport,
// such as "http://fakeserver.invalid/v2/api/resource-changes". The
// transport ignores scheme and host; the .invalid name makes a request that
// escapes to the real network fail fast.
const MemoryHost = "fakeserver.invalid"

// Transport returns an http.RoundTripper that serves requests in memory,
// calling the server in the caller's goroutine: no network, no goroutine,
// so it works inside testing/synctest bubbles.
//
// It honours the request's context (a FaultHang or FaultDelay ends with the
// context's error), sets Content-Length and ContentLength on responses, and
// turns the connection faults into their in-memory equivalents: FaultReset
// is a *net.OpError wrapping ErrReset, FaultTruncate a body whose read
// fails with io.ErrUnexpectedEOF. After Close it returns ErrClosed.
func (s *Server) Transport() http.RoundTripper { return memTransport{s} }

// Client returns an http.Client using Transport.
func (s *Server) Client() *http.Client { return &http.Client{Transport: s.Transport()} }

type memTransport struct{ s *Server }

func statusText(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if t.s.closed() {
		return nil, ErrClosed
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rep := t.s.serve(req)
	switch rep.drop {
	case dropAbort:
		rep.free()
		return nil, rep.err
	case dropReset:
		rep.free()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: ErrReset}
	}
	body := &memBody{buf: rep.body, data: rep.bytes(), end: io.EOF}
	n := len(body.data)
	if rep.drop == dropTruncate {
		body.data = body.data[:n/2]
		body.end = io.ErrUnexpectedEOF
	}
	h := make(http.Header, 3)
	if rep.contentType != "" {
		h["Content-Type"] = []string{rep.contentType}
	}
	if rep.retryAfter {
		h["Retry-After"] = []string{"1"}
	}
	h["Content-Length"] = []string{strconv.Itoa(n)}
	return &http.Response{
		Status:        statusText(rep.status),
		StatusCode:    rep.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: int64(n),
		Request:       req,
	}, nil
}

var errBodyClosed = errors.New("http: read on closed response body")

// memBody is an in-memory response body; Close returns its buffer to the
// pool.
type memBody struct {
	buf    *buffer
	data   []byte
	end    error // returned once data is exhausted
	closed bool
}

func (b *memBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if len(b.data) == 0 {
		return 0, b.end
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// WriteTo lets io.Copy and io.ReadAll-like callers skip a copy.
func (b *memBody) WriteTo(w io.Writer) (int64, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	n, err := w.Write(b.data)
	b.data = b.data[n:]
	if err == nil && b.end != io.EOF {
		err = b.end
	}
	return int64(n), err
}

func (b *memBody) Close() error {
	if !b.closed {
		b.closed = true
		b.data = nil
		b.buf.free()
		b.buf = nil
	}
	return nil
}
