package fakeserver

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// FaultKind is a failure the server can produce instead of (or on top of)
// a normal resource-change response.
//
// Faults only apply to resource-change requests that passed authentication
// and validation: a request refused with 400 or 401 does not take a fault.
// Login requests never get faults.
type FaultKind int

// The fault kinds. JSON error bodies are ErrorBody-like (see the package
// documentation) and, like every response with a body, carry
// Content-Length.
const (
	// FaultNone is no fault: in a script (InjectFaults) it stands for one
	// normal response.
	FaultNone FaultKind = iota
	// Fault500 is 500 Internal Server Error with a JSON body.
	Fault500
	// Fault502 is 502 Bad Gateway with a JSON body.
	Fault502
	// Fault502Text is 502 Bad Gateway with the text/plain body
	// "502 Bad Gateway", as a proxy in front of the server would send.
	Fault502Text
	// Fault503 is 503 Service Unavailable with a JSON body.
	Fault503
	// Fault503Empty is 503 Service Unavailable with an empty body
	// (Content-Length: 0, no Content-Type).
	Fault503Empty
	// Fault429 is 429 Too Many Requests with a JSON body and
	// "Retry-After: 1".
	Fault429
	// Fault401 is 401 Unauthorized with a JSON body, as when the token
	// expired.
	Fault401
	// Fault404 is 404 Not Found with a JSON body, as a CloudTower without
	// the endpoint behind a gateway would send.
	Fault404
	// Fault404Text is 404 Not Found with the text/plain body
	// "Cannot GET /v2/api/resource-changes", as an old CloudTower's
	// Express router sends.
	Fault404Text
	// FaultDelay waits (the fault's delay, see InjectDelay and
	// SetFaultDelay) and then serves normally. The wait ends early, with no
	// response, when the request's context is done or the server closes.
	FaultDelay
	// FaultHang never answers: the request blocks until its context is
	// done (the client gives up) or the server closes. Over HTTP the
	// connection is then dropped; the in-memory transport returns the
	// context's error, or ErrClosed.
	FaultHang
	// FaultReset drops the connection in the middle of the response
	// headers. Over HTTP the connection is hijacked, a partial header is
	// written and the connection closed (a bare close would be retried
	// silently by net/http on a kept-alive connection); the client sees an
	// error such as "unexpected EOF". The in-memory transport returns a
	// *net.OpError wrapping ErrReset.
	FaultReset
	// FaultTruncate sends a 200 page whose Content-Length is the full size
	// but only the first half of the body, then closes the connection: the
	// client's body read fails with io.ErrUnexpectedEOF (also in memory).
	FaultTruncate
	// FaultMalformedJSON sends 200 with a body that is not valid JSON (the
	// first half of the page followed by garbage), with a correct
	// Content-Length.
	FaultMalformedJSON
	// FaultMissingRevision sends a valid 200 page in which one event (the
	// one at index len/2) has no "revision" field. On an empty page a
	// fabricated event is added to carry the fault.
	FaultMissingRevision
	// FaultInvalidRevision is FaultMissingRevision with the revision made
	// invalid instead of missing: a letter is appended ("12a").
	FaultInvalidRevision

	numFaultKinds
)

var faultNames = [numFaultKinds]string{
	FaultNone:            "none",
	Fault500:             "500",
	Fault502:             "502",
	Fault502Text:         "502-text",
	Fault503:             "503",
	Fault503Empty:        "503-empty",
	Fault429:             "429",
	Fault401:             "401",
	Fault404:             "404",
	Fault404Text:         "404-text",
	FaultDelay:           "delay",
	FaultHang:            "hang",
	FaultReset:           "reset",
	FaultTruncate:        "truncate",
	FaultMalformedJSON:   "malformed-json",
	FaultMissingRevision: "missing-revision",
	FaultInvalidRevision: "invalid-revision",
}

// String returns the kind's short name, such as "503-empty"; ParseFaultKind
// reverses it.
func (k FaultKind) String() string {
	if k >= 0 && k < numFaultKinds {
		return faultNames[k]
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// ParseFaultKind returns the kind whose String is name.
func ParseFaultKind(name string) (FaultKind, error) {
	for k, n := range faultNames {
		if n == name {
			return FaultKind(k), nil
		}
	}
	return FaultNone, fmt.Errorf("fakeserver: unknown fault kind %q", name)
}

// AllFaultKinds returns every fault kind except FaultNone, in declaration
// order.
func AllFaultKinds() []FaultKind {
	ks := make([]FaultKind, 0, numFaultKinds-1)
	for k := FaultNone + 1; k < numFaultKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// status returns the HTTP status code a fault answers with, or 0 when it
// does not replace the response status.
func (k FaultKind) status() int {
	switch k {
	case Fault500:
		return 500
	case Fault502, Fault502Text:
		return 502
	case Fault503, Fault503Empty:
		return 503
	case Fault429:
		return 429
	case Fault401:
		return 401
	case Fault404, Fault404Text:
		return 404
	}
	return 0
}

// fault is one scheduled fault.
type fault struct {
	kind  FaultKind
	delay time.Duration // for FaultDelay; 0 means the server's default
}

// randomFaults draws faults at a rate.
type randomFaults struct {
	rng   *rand.Rand
	rate  float64
	kinds []FaultKind
}

// DefaultFaultDelay is how long FaultDelay waits unless Config.FaultDelay,
// SetFaultDelay or InjectDelay says otherwise.
const DefaultFaultDelay = time.Second

// InjectFaults appends kinds to the fault script: the next resource-change
// requests get them, one each, in order, before any random fault.
// FaultNone in the script stands for one normal response.
func (s *Server) InjectFaults(kinds ...FaultKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range kinds {
		s.script = append(s.script, fault{kind: k})
	}
}

// InjectDelay appends a FaultDelay of d to the fault script (0 means the
// delay set by SetFaultDelay when the fault is served).
func (s *Server) InjectDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, fault{kind: FaultDelay, delay: d})
}

// SetRandomFaults makes every resource-change request that finds the
// script empty get a fault with probability rate, its kind drawn uniformly
// from kinds (from AllFaultKinds if none are given), from a random source
// seeded with seed. A rate of 0 or less turns random faults off.
func (s *Server) SetRandomFaults(seed int64, rate float64, kinds ...FaultKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rate <= 0 {
		s.random = randomFaults{}
		return
	}
	if len(kinds) == 0 {
		kinds = AllFaultKinds()
	}
	s.random = randomFaults{
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x5eed_fa17)),
		rate:  rate,
		kinds: append([]FaultKind(nil), kinds...),
	}
}

// ClearFaults empties the fault script and turns random faults off.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = nil
	s.random = randomFaults{}
}

// PendingFaults returns how many scripted faults are still waiting.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.script)
}

// SetFaultDelay sets how long FaultDelay waits when its delay was not
// given to InjectDelay. A negative delay counts as 0.
func (s *Server) SetFaultDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultDelay = d
}

// nextFaultLocked takes the fault for the next request.
func (s *Server) nextFaultLocked() fault {
	var f fault
	switch {
	case len(s.script) > 0:
		f = s.script[0]
		s.script[0] = fault{}
		s.script = s.script[1:]
		if len(s.script) == 0 {
			s.script = nil
		}
	case s.random.rate > 0 && s.random.rng.Float64() < s.random.rate:
		f.kind = s.random.kinds[s.random.rng.IntN(len(s.random.kinds))]
	}
	if f.kind == FaultDelay && f.delay == 0 {
		f.delay = s.faultDelay
	}
	return f
}
