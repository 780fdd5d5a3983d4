package fakeserver

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// benchServer is shared by the page benchmarks: 100,000 generated events.
func benchServer(b *testing.B) *Server {
	b.Helper()
	s := New(Config{Seed: 1})
	b.Cleanup(s.Close)
	s.Generate(100_000)
	return s
}

// drain reads every event of s in pages of 1000 through hc and returns the
// number of bytes read.
func drain(b *testing.B, hc *http.Client, base, auth string) int64 {
	var total int64
	for pos := 0; pos < 100_000; pos += 1000 {
		req, _ := http.NewRequest("GET", base+ResourceChangesPath+"?limit=1000&start_revision="+strconv.Itoa(pos), nil)
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp.Status, err)
		}
		total += n
	}
	return total
}

// BenchmarkDrainMemory drains 100,000 events through the in-memory
// transport; one op is the whole drain.
func BenchmarkDrainMemory(b *testing.B) {
	s := benchServer(b)
	hc := s.Client()
	var n int64
	for b.Loop() {
		n = drain(b, hc, "http://"+MemoryHost, basicAuth(s.APIUsername(), s.APIPassword()))
	}
	b.SetBytes(n)
}

// BenchmarkDrainLoopback is BenchmarkDrainMemory over loopback HTTP.
func BenchmarkDrainLoopback(b *testing.B) {
	s := benchServer(b)
	base := s.StartHTTP()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var n int64
	for b.Loop() {
		n = drain(b, hc, base, basicAuth(s.APIUsername(), s.APIPassword()))
	}
	b.SetBytes(n)
}

// BenchmarkPageEncode measures selecting and encoding one page of 1000
// events, without a transport.
func BenchmarkPageEncode(b *testing.B) {
	s := benchServer(b)
	q := pageQuery{limit: 1000, hasStart: true, start: 50_000}
	for b.Loop() {
		pe := pagePool.Get().(*pageEvents)
		head, compact := s.log.page(pe, &q)
		buf := getBuffer()
		buf.b = appendPage(buf.b, pe, head, compact, corruptNone, -1)
		b.SetBytes(int64(len(buf.b)))
		buf.free()
		pe.free()
	}
}
