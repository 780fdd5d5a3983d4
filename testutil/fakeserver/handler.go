package fakeserver

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	contentJSON = "application/json"
	contentText = "text/plain; charset=utf-8"
)

// dropKind says how a response ends without being completed.
type dropKind int

const (
	dropNone     dropKind = iota
	dropAbort             // no response at all (a wait was cut short)
	dropReset             // a partial header, then the connection closes
	dropTruncate          // full headers, half the body, then the connection closes
)

// reply is the outcome of one request, independent of the transport.
type reply struct {
	status      int
	contentType string
	retryAfter  bool
	body        *buffer // nil for an empty body
	drop        dropKind
	err         error // why a dropAbort happened: a context error or ErrClosed
}

func (r *reply) bytes() []byte {
	if r.body == nil {
		return nil
	}
	return r.body.b
}

func (r *reply) free() {
	r.body.free()
	r.body = nil
}

func jsonError(status int, code, path, msg string) reply {
	b := getBuffer()
	b.b = appendError(b.b, status, code, path, msg)
	return reply{status: status, contentType: contentJSON, body: b}
}

func textReply(status int, text string) reply {
	b := getBuffer()
	b.b = append(b.b, text...)
	return reply{status: status, contentType: contentText, body: b}
}

// cannot is the Express router's answer to an unknown route.
func cannot(r *http.Request) reply {
	return textReply(http.StatusNotFound, "Cannot "+r.Method+" "+r.URL.Path)
}

// serve handles one request for either transport.
func (s *Server) serve(r *http.Request) reply {
	switch r.URL.Path {
	case ResourceChangesPath:
		if r.Method == http.MethodGet {
			return s.serveChanges(r)
		}
	case LoginPath:
		if r.Method == http.MethodPost {
			return s.serveLogin(r)
		}
	default:
		if typ, ok := listPaths[r.URL.Path]; ok && r.Method == http.MethodPost {
			return s.serveList(r, typ)
		}
	}
	rep, ok := s.admit(r, r.URL.Path, false)
	if ok {
		rep = cannot(r)
	}
	s.mu.Lock()
	s.stats.Requests++
	s.stats.StatusCodes[rep.status]++
	s.mu.Unlock()
	return rep
}

// admit waits out the latency (when latency is set: resource-change and
// list requests) and checks the required headers. When ok is false, rep is
// the answer: a 403, or a dropAbort if the wait was cut short.
func (s *Server) admit(r *http.Request, path string, latency bool) (rep reply, ok bool) {
	if d := s.Latency(); latency && d > 0 {
		if err := s.wait(r.Context(), d); err != nil {
			return reply{drop: dropAbort, err: err}, false
		}
	}
	if h := s.required.Load(); h != nil {
		for _, name := range slices.Sorted(maps.Keys(*h)) {
			if msg := checkHeader(r.Header, name, (*h)[name]); msg != "" {
				return jsonError(403, "Forbidden", path, msg), false
			}
		}
	}
	return reply{}, true
}

// checkHeader returns why h does not satisfy the required header name
// with values vals, or "".
func checkHeader(h http.Header, name string, vals []string) string {
	got, present := h[http.CanonicalHeaderKey(name)]
	var want []string
	for _, v := range vals {
		if v != "" {
			want = append(want, v)
		}
	}
	switch {
	case !present:
		if len(want) > 0 {
			return "missing required header " + strconv.Quote(strings.ToLower(name)+": "+want[0])
		}
		return "missing required header " + strconv.Quote(strings.ToLower(name))
	case len(want) == 0:
		return ""
	}
	for _, g := range got {
		for _, w := range want {
			if g == w {
				return ""
			}
		}
	}
	return "required header " + strconv.Quote(strings.ToLower(name)) + " must be " + strconv.Quote(want[0])
}

func (s *Server) serveLogin(r *http.Request) reply {
	var in struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
		Source   *string `json:"source"`
	}
	rep, ok := s.admit(r, LoginPath, false)
	switch {
	case !ok:
	case r.Body == nil || json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in) != nil:
		rep = jsonError(400, "InvalidInput", LoginPath, "request body must be a JSON object with username and password")
	case in.Username == nil || in.Password == nil:
		rep = jsonError(400, "InvalidInput", LoginPath, "username and password are required")
	case *in.Username != s.username || *in.Password != s.password:
		rep = jsonError(400, "LoginFailed", LoginPath, "username or password is incorrect")
	default:
		b := getBuffer()
		b.b = append(b.b, `{"data":{"token":`...)
		b.b = appendString(b.b, s.token)
		b.b = append(b.b, `}}`...)
		rep = reply{status: 200, contentType: contentJSON, body: b}
	}
	s.mu.Lock()
	s.stats.Requests++
	s.stats.Logins++
	s.stats.StatusCodes[rep.status]++
	s.mu.Unlock()
	return rep
}

// parseLimit parses a limit: decimal digits, 1..MaxLimit.
func parseLimit(v string) (int, bool) {
	if len(v) > 10 || !allDigits(v) {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, false
	}
	return n, true
}

// parseRevision parses a start revision: decimal digits only. beyond
// reports a valid revision too large for a uint64.
func parseRevision(v string) (rev uint64, beyond, ok bool) {
	if !allDigits(v) {
		return 0, false, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, true, true // only digits, so the error is a range error
	}
	return n, false, true
}

func allDigits(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// changeOutcome is what serveChanges records about a request when it
// completes.
type changeOutcome struct {
	events   int
	repeat   bool
	fresh    bool   // a clean fresh page
	page     []byte // its body, to remember for repeats
	remember bool   // remember page for repeats
	// start of this request (hasStart: it had one), for repeats: a page is
	// only repeated to a request that starts at or above the page's start
	start    uint64
	hasStart bool
}

// authKind says what kind of Authorization header r carries (see
// Request.Auth).
func authKind(r *http.Request) string {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return ""
	case len(h) > 6 && strings.EqualFold(h[:6], "basic "):
		return "basic"
	}
	return "token"
}

// changesAuthorized reports whether r carries the credentials the
// resource-change endpoint accepts.
func (s *Server) changesAuthorized(r *http.Request) bool {
	if !s.auth {
		return true
	}
	basic := func() bool {
		u, p, ok := r.BasicAuth()
		return ok && u == s.apiUsername && p == s.apiPassword
	}
	token := func() bool {
		h, ok := r.Header["Authorization"]
		return ok && len(h) > 0 && h[0] == s.token
	}
	switch s.ChangesAuth() {
	case AuthToken:
		return token()
	case AuthEither:
		return token() || basic()
	default:
		return basic()
	}
}

// parseChanges authenticates and validates a resource-change request. It
// returns the refusal when ok is false.
func (s *Server) parseChanges(r *http.Request, rec *Request) (pq pageQuery, refused reply, ok bool) {
	if !s.changesAuthorized(r) {
		return pq, jsonError(401, "Unauthorized", ResourceChangesPath, "Unauthorized"), false
	}
	pq.limit = DefaultLimit
	if rec.Limit != "" {
		n, ok := parseLimit(rec.Limit)
		if !ok {
			return pq, jsonError(400, "InvalidInput", ResourceChangesPath,
				"limit must be an integer from 1 to "+strconv.Itoa(MaxLimit)+", got "+strconv.Quote(rec.Limit)), false
		}
		pq.limit = n
	}
	if rec.StartRevision != "" {
		rev, beyond, ok := parseRevision(rec.StartRevision)
		if !ok {
			return pq, jsonError(400, "InvalidInput", ResourceChangesPath,
				"start_revision must be a decimal string, got "+strconv.Quote(rec.StartRevision)), false
		}
		pq.start, pq.beyond, pq.hasStart = rev, beyond, true
	}
	if rec.ResourceType != "" {
		for t := range strings.SplitSeq(rec.ResourceType, ",") {
			if t = strings.TrimSpace(t); t != "" {
				pq.filter.types = append(pq.filter.types, t)
			}
		}
	}
	pq.filter.id = rec.ResourceID
	pq.filter.action = rec.Action
	return pq, reply{}, true
}

func (s *Server) serveChanges(r *http.Request) (rep reply) {
	q := r.URL.Query()
	rec := Request{
		StartRevision: q.Get("start_revision"),
		Limit:         q.Get("limit"),
		ResourceType:  q.Get("resource_type"),
		ResourceID:    q.Get("resource_id"),
		Action:        q.Get("action"),
		Auth:          authKind(r),
	}
	refused, ok := s.admit(r, ResourceChangesPath, true)
	var pq pageQuery
	if ok {
		pq, refused, ok = s.parseChanges(r, &rec)
	}
	if !ok {
		s.mu.Lock()
		s.stats.Requests++
		s.stats.ResourceChanges++
		if refused.drop == dropNone {
			s.stats.StatusCodes[refused.status]++
		}
		rec.Status = refused.status
		s.reqs.add(rec)
		s.mu.Unlock()
		return refused
	}

	// Accepted: count it, take its fault and record it at once, so that
	// Stats and Requests show a request that is still waiting.
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ResourceChanges++
	k := s.knobs
	f := s.nextFaultLocked()
	if f.kind != FaultNone {
		s.stats.Faults++
		s.stats.FaultsByKind[f.kind]++
	}
	rec.Fault = f.kind
	seq := s.reqs.add(rec)
	var shuffleSeed uint64
	if k.Shuffle {
		shuffleSeed = s.shuffleRNG.Uint64()
	}
	out := changeOutcome{start: pq.start, hasStart: pq.hasStart && !pq.beyond}
	var repeated *buffer
	if f.kind == FaultNone {
		repeated = s.takeRepeatLocked(k, &out)
	}
	s.mu.Unlock()
	defer func() { s.finishChange(seq, &rep, &out) }()

	if f.kind != FaultNone && s.onFault != nil {
		s.onFault(f.kind)
	}
	ctx := r.Context()
	switch f.kind {
	case Fault500:
		return jsonError(500, "InternalServerError", ResourceChangesPath, "Internal Server Error")
	case Fault502:
		return jsonError(502, "BadGateway", ResourceChangesPath, "Bad Gateway")
	case Fault502Text:
		return textReply(502, "502 Bad Gateway")
	case Fault503:
		return jsonError(503, "ServiceUnavailable", ResourceChangesPath, "Service Unavailable")
	case Fault503Empty:
		return reply{status: 503}
	case Fault429:
		rep = jsonError(429, "TooManyRequests", ResourceChangesPath, "Too Many Requests")
		rep.retryAfter = true
		return rep
	case Fault401:
		return jsonError(401, "Unauthorized", ResourceChangesPath, "Unauthorized")
	case Fault404:
		return jsonError(404, "NotFound", ResourceChangesPath, "Cannot GET "+ResourceChangesPath)
	case Fault404Text:
		return cannot(r)
	case FaultHang:
		return reply{drop: dropAbort, err: s.wait(ctx, -1)}
	case FaultReset:
		return reply{drop: dropReset}
	case FaultDelay:
		if err := s.wait(ctx, max(f.delay, 0)); err != nil {
			return reply{drop: dropAbort, err: err}
		}
		s.mu.Lock()
		repeated = s.takeRepeatLocked(s.knobs, &out)
		s.mu.Unlock()
	}
	if repeated != nil {
		return reply{status: 200, contentType: contentJSON, body: repeated}
	}

	pe := pagePool.Get().(*pageEvents)
	defer pe.free()
	pq.inclusive = k.InclusiveStart
	pq.newest = !k.OldestWhenNoStart
	head, compact := s.log.page(pe, &pq)
	if k.Shuffle && len(pe.ev) > 1 {
		mrand.New(mrand.NewPCG(shuffleSeed, 0)).Shuffle(len(pe.ev), func(i, j int) {
			pe.ev[i], pe.ev[j] = pe.ev[j], pe.ev[i]
			pe.enc[i], pe.enc[j] = pe.enc[j], pe.enc[i]
		})
	}
	c, bad := corruptNone, -1
	switch f.kind {
	case FaultMissingRevision, FaultInvalidRevision:
		c = corruptMissingRevision
		if f.kind == FaultInvalidRevision {
			c = corruptInvalidRevision
		}
		if len(pe.ev) == 0 {
			pe.ev = append(pe.ev, s.fabricate(head))
			pe.enc = append(pe.enc, nil)
		}
		bad = len(pe.ev) / 2
	}
	out.events = len(pe.ev)

	b := getBuffer()
	b.b = appendPage(b.b, pe, head, compact, c, bad)
	rep = reply{status: 200, contentType: contentJSON, body: b}
	switch f.kind {
	case FaultMalformedJSON:
		b.b = append(b.b[:len(b.b)/2], "\x00<html>garbage</html>"...)
	case FaultTruncate:
		rep.drop = dropTruncate
	case FaultNone, FaultDelay:
		out.fresh = true
		out.page = b.b
	}
	return rep
}

// takeRepeatLocked decides whether this page request gets the previous
// page again and, if so, returns a copy of it.
func (s *Server) takeRepeatLocked(k Knobs, out *changeOutcome) *buffer {
	if k.RepeatEvery <= 0 && k.RepeatRate <= 0 {
		return nil
	}
	out.remember = true
	if !s.lastOK || !s.lastFresh {
		return nil
	}
	if out.hasStart && s.lastHasStart && out.start < s.lastStart {
		return nil // a page after a later start would skip changes: no server answers so
	}
	switch {
	case k.RepeatEvery > 0 && s.freshSinceRepeat >= k.RepeatEvery:
	case k.RepeatRate > 0 && s.repeatRNG.Float64() < k.RepeatRate:
	default:
		return nil
	}
	s.lastFresh = false
	s.freshSinceRepeat = 0
	out.repeat = true
	out.events = s.lastEvents
	b := getBuffer()
	b.b = append(b.b, s.last...)
	return b
}

// fabricate returns an event to carry a revision fault on an empty page.
func (s *Server) fabricate(head uint64) Event {
	return Event{
		Revision:     head + 1,
		Action:       ActionUpdate,
		ResourceType: TypeVM,
		ResourceID:   "cl00000000000000000000000",
		NewValue:     `{}`,
		OldValue:     `{}`,
		CreatedAt:    s.now(),
	}
}

// wait blocks for d (forever if d < 0) or until ctx is done or the server
// closes; it returns nil only if the whole wait elapsed.
func (s *Server) wait(ctx context.Context, d time.Duration) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
}

// finishChange records how an accepted request ended.
func (s *Server) finishChange(seq uint64, rep *reply, out *changeOutcome) {
	status := rep.status
	if rep.drop == dropAbort || rep.drop == dropReset {
		status = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	if status != 0 {
		st.StatusCodes[status]++
	}
	if status == 200 {
		st.Pages++
		if out.repeat {
			st.Repeats++
		}
	}
	if out.fresh {
		st.Events += out.events
		if out.remember {
			s.last = append(s.last[:0], out.page...)
			s.lastEvents = out.events
			s.lastStart, s.lastHasStart = out.start, out.hasStart
			s.lastOK = true
			s.freshSinceRepeat++ // only pages served with a repeat knob on count
		}
		s.lastFresh = true
	}
	if rec := s.reqs.at(seq); rec != nil {
		rec.Status = status
		rec.Repeat = out.repeat
		if status == 200 {
			rec.Events = out.events
		}
	}
}
