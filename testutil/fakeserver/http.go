package fakeserver

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
)

// Handler returns the server as an http.Handler, for mounting in an
// http.Server of your own (the CLI's demo mode) or for StartHTTP.
//
// FaultReset and FaultTruncate, and the end of a FaultHang or an
// interrupted FaultDelay, drop the connection: the handler hijacks it, or,
// where the ResponseWriter cannot be hijacked (HTTP/2, a
// ResponseRecorder), panics with http.ErrAbortHandler, which net/http
// servers turn into an aborted response.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rep := s.serve(r)
	defer rep.free()
	switch rep.drop {
	case dropAbort:
		abort(w, "")
	case dropReset:
		abort(w, "HTTP/1.1 200 OK\r\nContent-Type: appl")
	case dropTruncate:
		body := rep.bytes()
		half := body[:len(body)/2]
		header := "HTTP/1.1 200 OK\r\nContent-Type: " + rep.contentType +
			"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			h := w.Header()
			h.Set("Content-Type", rep.contentType)
			h.Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rep.status)
			_, _ = w.Write(half)
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = conn.Write(append([]byte(header), half...))
		_ = conn.Close()
	default:
		h := w.Header()
		if rep.contentType != "" {
			h["Content-Type"] = []string{rep.contentType}
		}
		if rep.retryAfter {
			h["Retry-After"] = []string{"1"}
		}
		body := rep.bytes()
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(rep.status)
		_, _ = w.Write(body)
	}
}

// abort writes prefix to the raw connection and closes it.
func abort(w http.ResponseWriter, prefix string) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if prefix != "" {
		_, _ = conn.Write([]byte(prefix))
	}
	_ = conn.Close()
}

// StartHTTP serves the server on a loopback port, if it is not served
// already, and returns its base URL, such as "http://127.0.0.1:40123"
// (without BasePath). Close stops it. StartHTTP panics if the server is
// closed or no port can be had.
func (s *Server) StartHTTP() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.ts == nil {
		if s.closed() {
			panic("fakeserver: StartHTTP after Close")
		}
		s.ts = httptest.NewServer(s.Handler())
	}
	return s.ts.URL
}

// URL returns the base URL StartHTTP returned, or "" if it was not
// called.
func (s *Server) URL() string {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Host returns the loopback server's "host:port" (what the SDK's
// TransportConfig.Host wants, with BasePath and scheme "http"), or "" if
// StartHTTP was not called.
func (s *Server) Host() string {
	return strings.TrimPrefix(s.URL(), "http://")
}
