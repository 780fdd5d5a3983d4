package fakeserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Resource is the current state of one resource, as the list endpoints
// serve it.
type Resource struct {
	// Type is the resource type, such as TypeVM.
	Type string
	// ID is the resource's id.
	ID string
	// JSON is the object, the NewValue of the change that set it.
	JSON string
	// Revision is the revision of that change.
	Revision uint64
}

// Resources returns the current state of every resource of type typ, by
// id in ascending byte order: what the list endpoint of the type serves
// (see ListPath), for types with or without one.
//
// The state is the server's truth, independent of the log's compaction
// and retention: it is the result of every change ever appended (see
// Append for which changes count), also of those that were discarded
// since.
func (s *Server) Resources(typ string) []Resource {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	m := s.log.state[typ]
	out := make([]Resource, 0, len(m))
	for id, st := range m {
		out = append(out, Resource{Type: typ, ID: id, JSON: st.value, Revision: st.rev})
	}
	slices.SortFunc(out, func(a, b Resource) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Resource returns the current state of the resource typ/id, and whether
// it exists.
func (s *Server) Resource(typ, id string) (Resource, bool) {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	st := s.log.state[typ][id]
	if st == nil {
		return Resource{}, false
	}
	return Resource{Type: typ, ID: id, JSON: st.value, Revision: st.rev}, true
}

// isJSONObject reports whether v is a JSON object.
func isJSONObject(v string) bool {
	i := 0
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i < len(v) && v[i] == '{' && json.Valid([]byte(v))
}

// listPaths maps each list endpoint to the resource type it serves.
var listPaths = map[string]string{
	BasePath + "/get-vms":        TypeVM,
	BasePath + "/get-hosts":      TypeHost,
	BasePath + "/get-clusters":   TypeCluster,
	BasePath + "/get-vm-volumes": TypeVMVolume,
	BasePath + "/get-vm-nics":    TypeVMNic,
	BasePath + "/get-labels":     TypeLabel,
}

// ListPath returns the path of the list endpoint (POST) of a resource
// type, such as "/v2/api/get-vms" for TypeVM, or "" if the type has none.
// TypeVM, TypeHost, TypeCluster, TypeVMVolume, TypeVMNic and TypeLabel
// have one; relation types do not.
func ListPath(typ string) string {
	for p, t := range listPaths {
		if t == typ {
			return p
		}
	}
	return ""
}

// listQuery is a decoded list request body: the subset of the SDK's
// Get*RequestBody (models.GetVmsRequestBody and its siblings) the fake
// understands.
type listQuery struct {
	Where *struct {
		ID      *string  `json:"id"`
		IDIn    []string `json:"id_in"`
		IDNot   *string  `json:"id_not"`
		IDNotIn []string `json:"id_not_in"`
	} `json:"where"`
	First   *int   `json:"first"`
	Skip    *int   `json:"skip"`
	OrderBy string `json:"orderBy"`
	After   any    `json:"after"`
	Before  any    `json:"before"`
	Last    any    `json:"last"`
}

// parseList decodes and checks a list request body; an empty body is an
// empty query.
func parseList(r *http.Request, path string) (q listQuery, refused reply, ok bool) {
	bad := func(msg string) (listQuery, reply, bool) {
		return q, jsonError(400, "InvalidInput", path, msg), false
	}
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return bad("reading the request body: " + err.Error())
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, reply{}, true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return bad("the fake server understands a body {where, first, skip, orderBy} with where by id, id_in, id_not, id_not_in: " + err.Error())
	}
	switch {
	case q.After != nil || q.Before != nil || q.Last != nil:
		return bad("the fake server does not support after, before or last")
	case q.First != nil && *q.First < 0:
		return bad("first must not be negative")
	case q.Skip != nil && *q.Skip < 0:
		return bad("skip must not be negative")
	}
	switch q.OrderBy {
	case "", "id_ASC", "id_DESC":
	default:
		return bad("the fake server orders by id_ASC or id_DESC only, got " + strconv.Quote(q.OrderBy))
	}
	return q, reply{}, true
}

func (q *listQuery) match(id string) bool {
	w := q.Where
	if w == nil {
		return true
	}
	switch {
	case w.ID != nil && id != *w.ID,
		w.IDIn != nil && !slices.Contains(w.IDIn, id),
		w.IDNot != nil && id == *w.IDNot,
		slices.Contains(w.IDNotIn, id):
		return false
	}
	return true
}

// list appends the JSON array the list query q selects among resources of
// type typ to dst.
func (l *eventLog) list(dst []byte, typ string, q *listQuery) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := l.state[typ]
	ids := make([]string, 0, len(m))
	for id := range m {
		if q.match(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if q.OrderBy == "id_DESC" {
		slices.Reverse(ids)
	}
	if q.Skip != nil {
		ids = ids[min(*q.Skip, len(ids)):]
	}
	if q.First != nil {
		ids = ids[:min(*q.First, len(ids))]
	}
	dst = append(dst, '[')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m[id].value...)
	}
	return append(dst, ']')
}

func (s *Server) serveList(r *http.Request, typ string) reply {
	path := r.URL.Path
	rep, ok := s.admit(r, path, true)
	if ok && s.auth && r.Header.Get("Authorization") != s.token {
		rep, ok = jsonError(401, "Unauthorized", path, "Unauthorized"), false
	}
	var q listQuery
	if ok {
		q, rep, ok = parseList(r, path)
	}
	if ok {
		b := getBuffer()
		b.b = s.log.list(b.b, typ, &q)
		rep = reply{status: 200, contentType: contentJSON, body: b}
	}
	s.mu.Lock()
	s.stats.Requests++
	s.stats.Lists++
	if rep.drop == dropNone {
		s.stats.StatusCodes[rep.status]++
	}
	s.mu.Unlock()
	return rep
}
