package fakeserver

import (
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Paths and limits of the wire contract.
const (
	// BasePath is the API base path, as the SDK's TransportConfig wants it.
	BasePath = "/v2/api"
	// LoginPath is the login endpoint (POST).
	LoginPath = BasePath + "/login"
	// ResourceChangesPath is the resource-change endpoint (GET).
	ResourceChangesPath = BasePath + "/resource-changes"
	// DefaultLimit is the page size when the request has no limit.
	DefaultLimit = 100
	// MaxLimit is the largest limit accepted; 0 and anything larger get 400.
	MaxLimit = 1000
	// DefaultRequestLog is how many requests Requests remembers unless
	// Config.RequestLog says otherwise.
	DefaultRequestLog = 1000
)

// ErrClosed is returned by the in-memory transport once the server is
// closed, and by requests that were waiting (FaultHang, FaultDelay) when it
// closed. RunGenerator returns it when the server closes.
var ErrClosed = errors.New("fakeserver: server closed")

// ErrReset is wrapped (in a *net.OpError) by the error the in-memory
// transport returns for FaultReset.
var ErrReset = errors.New("fakeserver: connection reset by peer")

// AuthMode is the authentication GET /resource-changes accepts (see
// Config.ChangesAuth). Every other route, except login, takes the token.
type AuthMode int32

const (
	// AuthBasic requires HTTP Basic with the API credentials
	// (Config.APIUsername, Config.APIPassword), as CloudTower's published
	// spec secures the endpoint. It is the zero value and the default.
	AuthBasic AuthMode = iota
	// AuthToken requires the login token in the Authorization header
	// ("Authorization: <token>"), as the SDK sends it when given no
	// ClientOption.
	AuthToken
	// AuthEither accepts Basic API credentials or the token.
	AuthEither
)

// String returns "basic", "token" or "either".
func (m AuthMode) String() string {
	switch m {
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	case AuthEither:
		return "either"
	}
	return "AuthMode(" + strconv.Itoa(int(m)) + ")"
}

// Default API credentials of the resource-change endpoint.
const (
	DefaultAPIUsername = "watcher"
	DefaultAPIPassword = "watcher"
)

// Config configures a Server. The zero value is ready to use.
type Config struct {
	// Username and Password are the accepted login credentials; both
	// default to "admin".
	Username string
	Password string
	// Token is what a successful login returns and what every route other
	// than login (and, depending on ChangesAuth, the resource-change
	// endpoint) wants as its Authorization header. Empty means a random
	// token (see Server.Token).
	Token string
	// APIUsername and APIPassword are the API credentials the
	// resource-change endpoint accepts as HTTP Basic; they default to
	// DefaultAPIUsername and DefaultAPIPassword.
	APIUsername string
	APIPassword string
	// ChangesAuth is the authentication GET /resource-changes accepts;
	// the zero value is AuthBasic (see SetChangesAuth).
	ChangesAuth AuthMode
	// DisableAuth lets every request in without credentials (login still
	// checks its body).
	DisableAuth bool
	// RequiredHeaders, when set, are headers every request (login
	// included) must carry, such as "x-bypass-whitelist: true"; a request
	// without one gets 403 with a JSON error body naming it. A header
	// given with values must have one of them; one given with no value
	// (or only "") must merely be present. See SetRequiredHeaders.
	RequiredHeaders http.Header
	// Latency is a constant delay added to every resource-change and list
	// request before it is handled, as a network round trip and server
	// work would add (see SetLatency). It is distinct from FaultDelay and
	// ends early, with no response, when the request's context is done or
	// the server closes.
	Latency time.Duration
	// Seed seeds the generator, page shuffling and repeated pages, so that
	// a sequential client sees the same thing on every run.
	Seed int64
	// Retention is the most events the log keeps; older ones are compacted
	// away as new ones are appended. 0 keeps everything.
	Retention int
	// Knobs are the initial server semantics (see SetKnobs).
	Knobs Knobs
	// FaultDelay is how long FaultDelay waits; 0 means DefaultFaultDelay.
	FaultDelay time.Duration
	// RequestLog is how many resource-change requests Requests remembers;
	// 0 means DefaultRequestLog and a negative value none.
	RequestLog int
	// Now is the clock used for the created_at of appended and generated
	// events; nil means time.Now (which testing/synctest fakes).
	Now func() time.Time
	// OnFault, if set, is called in the request's goroutine just before a
	// fault takes effect (for FaultHang and FaultDelay: before the wait
	// begins). Tests use it to learn that a request is hanging; it must not
	// call back into the Server's fault methods.
	OnFault func(FaultKind)
}

// Knobs choose among the plausible semantics of the real server. The zero
// value is the default. Change them at run time with SetKnobs.
type Knobs struct {
	// InclusiveStart serves events at or above start_revision instead of
	// strictly above it.
	InclusiveStart bool
	// OldestWhenNoStart makes a request without start_revision get the
	// oldest retained events instead of the newest limit ones.
	OldestWhenNoStart bool
	// Shuffle serves each page's events in a random order (deterministic
	// from Config.Seed for a sequential client) instead of by revision.
	Shuffle bool
	// RepeatEvery, when positive, re-serves the previous page response
	// (byte for byte, with its old currentRevision) after every RepeatEvery
	// fresh pages, instead of a fresh page.
	RepeatEvery int
	// RepeatRate is the probability that a page request is answered with
	// the previous page response instead of a fresh one.
	//
	// A page is only repeated to a request whose start_revision is at or
	// above the start of the request it answered (as a retried or stale
	// response would be): concurrent requests for earlier starts get fresh
	// pages, since a page after a later start would skip changes.
	//
	// Whatever the repeat knobs, a repeat always follows a fresh page
	// (never two repeats in a row), and the previous response is
	// remembered only while a repeat knob is set, so a repeat needs a
	// fresh page served with the knob on first.
	RepeatRate float64
}

// Server is a fake CloudTower resource-change server. Create it with New;
// its methods are safe for concurrent use. Call Close when done.
type Server struct {
	username, password, token string
	apiUsername, apiPassword  string
	auth                      bool
	changesAuth               atomic.Int32 // an AuthMode
	latency                   atomic.Int64 // a time.Duration
	required                  atomic.Pointer[http.Header]
	now                       func() time.Time
	onFault                   func(FaultKind)
	seed                      int64

	log eventLog

	genMu sync.Mutex
	gen   *generator

	mu               sync.Mutex // guards everything below
	knobs            Knobs
	script           []fault
	random           randomFaults
	faultDelay       time.Duration
	shuffleRNG       *mrand.Rand
	repeatRNG        *mrand.Rand
	last             []byte // previous fresh page body, while repeat knobs are on
	lastEvents       int
	lastStart        uint64 // start_revision of the page in last
	lastHasStart     bool
	lastOK           bool // last holds a page
	lastFresh        bool // the previous page served was fresh, not a repeat
	freshSinceRepeat int
	stats            Stats
	reqs             requestRing

	done      chan struct{}
	closeOnce sync.Once

	httpMu sync.Mutex
	ts     *httptest.Server
}

// New returns a server with an empty log.
func New(cfg Config) *Server {
	s := &Server{
		username:    cfg.Username,
		password:    cfg.Password,
		token:       cfg.Token,
		apiUsername: cfg.APIUsername,
		apiPassword: cfg.APIPassword,
		auth:        !cfg.DisableAuth,
		now:         cfg.Now,
		onFault:     cfg.OnFault,
		seed:        cfg.Seed,
		knobs:       cfg.Knobs,
		faultDelay:  cfg.FaultDelay,
		shuffleRNG:  mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x5_4ff1e)),
		repeatRNG:   mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x4e_9ea7)),
		done:        make(chan struct{}),
	}
	if s.username == "" {
		s.username = "admin"
	}
	if s.password == "" {
		s.password = "admin"
	}
	if s.token == "" {
		s.token = rand.Text()
	}
	if s.apiUsername == "" {
		s.apiUsername = DefaultAPIUsername
	}
	if s.apiPassword == "" {
		s.apiPassword = DefaultAPIPassword
	}
	s.SetChangesAuth(cfg.ChangesAuth)
	s.SetLatency(cfg.Latency)
	s.SetRequiredHeaders(cfg.RequiredHeaders)
	if s.now == nil {
		s.now = time.Now
	}
	if s.faultDelay == 0 {
		s.faultDelay = DefaultFaultDelay
	}
	n := cfg.RequestLog
	if n == 0 {
		n = DefaultRequestLog
	}
	s.reqs.buf = make([]Request, max(n, 0))
	s.log.retention = max(cfg.Retention, 0)
	s.log.init()
	s.stats = newStats()
	return s
}

// Close stops the loopback HTTP server if one was started, ends every
// request waiting in FaultHang or FaultDelay, and makes the in-memory
// transport fail with ErrClosed. It waits for running HTTP handlers to
// return. The log stays readable. Close may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.httpMu.Lock()
	ts := s.ts
	s.httpMu.Unlock()
	if ts != nil {
		ts.Close()
	}
}

func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Token returns the token that login hands out and that resource-change
// requests must send.
func (s *Server) Token() string { return s.token }

// Username returns the accepted username.
func (s *Server) Username() string { return s.username }

// Password returns the accepted password.
func (s *Server) Password() string { return s.password }

// APIUsername returns the user name of the API credentials the
// resource-change endpoint accepts as HTTP Basic.
func (s *Server) APIUsername() string { return s.apiUsername }

// APIPassword returns the password of the API credentials.
func (s *Server) APIPassword() string { return s.apiPassword }

// ChangesAuth returns the authentication the resource-change endpoint
// currently accepts.
func (s *Server) ChangesAuth() AuthMode { return AuthMode(s.changesAuth.Load()) }

// SetChangesAuth changes the authentication the resource-change endpoint
// accepts; requests that arrive afterwards see it. An unknown mode counts
// as AuthBasic.
func (s *Server) SetChangesAuth(m AuthMode) {
	if m < AuthBasic || m > AuthEither {
		m = AuthBasic
	}
	s.changesAuth.Store(int32(m))
}

// Latency returns the constant latency of resource-change and list
// requests.
func (s *Server) Latency() time.Duration { return time.Duration(s.latency.Load()) }

// SetLatency sets the constant latency added to every resource-change and
// list request that arrives afterwards (see Config.Latency). A negative
// latency counts as 0.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// SetRequiredHeaders replaces the headers every request must carry (see
// Config.RequiredHeaders); nil or empty requires none. h is copied.
func (s *Server) SetRequiredHeaders(h http.Header) {
	if len(h) == 0 {
		s.required.Store(nil)
		return
	}
	c := h.Clone()
	s.required.Store(&c)
}

// Knobs returns the current knobs.
func (s *Server) Knobs() Knobs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knobs
}

// SetKnobs replaces the knobs; requests that arrive afterwards see them.
func (s *Server) SetKnobs(k Knobs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs = k
	if k.RepeatEvery <= 0 && k.RepeatRate <= 0 {
		s.last, s.lastOK, s.freshSinceRepeat = nil, false, 0
	}
}

// Append adds events to the log, in order, and returns the new head. It
// assigns each event's Revision (head+1, head+2, ...) and PrevRevision (the
// revision of the previous change of the same resource type and id, see
// Event), and sets a zero CreatedAt to the current time (never earlier
// than the previous event's). Events beyond the retention limit are
// compacted away.
//
// Each event also updates the current state (see Resources) when its
// type, id and value allow: an ActionInsert or ActionUpdate with a
// ResourceID and a NewValue holding a JSON object stores that object, an
// ActionDelete with a ResourceID removes the resource. Other events only
// enter the log.
func (s *Server) Append(events ...Event) uint64 {
	return s.log.append(s.now(), events, false)
}

// Head returns the newest revision ever appended, 0 for an empty log.
func (s *Server) Head() uint64 {
	h, _, _ := s.log.revisions()
	return h
}

// CompactRevision returns the newest discarded revision, 0 if none.
func (s *Server) CompactRevision() uint64 {
	_, c, _ := s.log.revisions()
	return c
}

// Len returns how many events the log retains.
func (s *Server) Len() int {
	_, _, n := s.log.revisions()
	return n
}

// Compact discards every event at or below upTo and raises the compact
// revision to upTo (clamped to the head). It never lowers the compact
// revision, and returns it.
func (s *Server) Compact(upTo uint64) uint64 { return s.log.compactTo(upTo) }

// SetRetention changes the retention limit (0 keeps everything) and
// compacts at once if the log is over it.
func (s *Server) SetRetention(n int) { s.log.setRetention(n) }

// Events returns a copy of the retained events with a revision above
// after, in revision order: exactly what the server would serve to an
// unfiltered client reading from after.
func (s *Server) Events(after uint64) []Event { return s.log.snapshot(after) }

// Stats counts what the server did since New or the last ResetStats.
type Stats struct {
	// Requests is every request, to any path, over either transport.
	// Requests, ResourceChanges and Faults count a request as soon as it is
	// accepted; the other counters when it completes.
	Requests int
	// Logins is requests to the login endpoint.
	Logins int
	// Lists is requests to the list endpoints (see ListPath).
	Lists int
	// ResourceChanges is requests to the resource-change endpoint.
	ResourceChanges int
	// Pages is 200 resource-change responses: fresh, repeated and
	// corrupted ones.
	Pages int
	// Repeats is pages that re-served the previous response.
	Repeats int
	// Events is events sent in clean fresh pages (not in repeats, nor in
	// pages a fault corrupted).
	Events int
	// Faults is faults served (FaultNone is not counted).
	Faults int
	// FaultsByKind counts Faults by kind.
	FaultsByKind map[FaultKind]int
	// StatusCodes counts responses by HTTP status. Requests that got no
	// status line (FaultReset, FaultHang, an interrupted FaultDelay) are
	// not counted.
	StatusCodes map[int]int
}

func newStats() Stats {
	return Stats{FaultsByKind: map[FaultKind]int{}, StatusCodes: map[int]int{}}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.FaultsByKind = make(map[FaultKind]int, len(s.stats.FaultsByKind))
	for k, v := range s.stats.FaultsByKind {
		st.FaultsByKind[k] = v
	}
	st.StatusCodes = make(map[int]int, len(s.stats.StatusCodes))
	for k, v := range s.stats.StatusCodes {
		st.StatusCodes[k] = v
	}
	return st
}

// ResetStats zeroes the counters and forgets the recorded requests.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
	s.reqs.reset()
}

// Request is a resource-change request as the server saw it. Query values
// are raw strings, "" when absent.
type Request struct {
	StartRevision string
	Limit         string
	ResourceType  string
	ResourceID    string
	Action        string
	// Auth is the kind of Authorization header the request carried:
	// "basic" (HTTP Basic, whatever the credentials), "token" (anything
	// else) or "" (none). It never holds the credentials.
	Auth string
	// Status is the HTTP status served; 0 while the request is still being
	// served, or if no status was sent (the connection was dropped, or the
	// wait of FaultHang or FaultDelay was cut short).
	Status int
	// Fault is the fault served, FaultNone if none.
	Fault FaultKind
	// Repeat reports that the previous page response was re-served.
	Repeat bool
	// Events is the number of events in the page served.
	Events int
}

// Requests returns the most recent resource-change requests (at most
// Config.RequestLog of them), in the order the server accepted them. A
// request is recorded as soon as it is accepted, with its fault; its
// Status, Repeat and Events are filled in when it completes.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs.all()
}

// requestRing is a bounded log of requests, addressed by sequence number
// so that a request can be completed after newer ones were added.
type requestRing struct {
	buf   []Request
	base  uint64 // sequence number of the first request since the last reset
	total uint64 // sequence number of the next request
}

func (r *requestRing) add(q Request) uint64 {
	seq := r.total
	r.total++
	if len(r.buf) > 0 {
		r.buf[seq%uint64(len(r.buf))] = q
	}
	return seq
}

// at returns the request numbered seq, or nil if it was forgotten.
func (r *requestRing) at(seq uint64) *Request {
	if len(r.buf) == 0 || seq < r.base || r.total-seq > uint64(len(r.buf)) {
		return nil
	}
	return &r.buf[seq%uint64(len(r.buf))]
}

func (r *requestRing) all() []Request {
	from := max(r.base, r.total-min(r.total, uint64(len(r.buf))))
	out := make([]Request, 0, r.total-from)
	for seq := from; seq < r.total; seq++ {
		out = append(out, r.buf[seq%uint64(len(r.buf))])
	}
	return out
}

func (r *requestRing) reset() {
	clear(r.buf)
	r.base = r.total
}
