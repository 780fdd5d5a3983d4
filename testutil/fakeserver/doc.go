// Package fakeserver is a stand-in for SmartX CloudTower's resource-change
// endpoint, and the list endpoints of the resources it reports on, that
// the CloudTower Go SDK cannot tell from the real one. It follows what
// CloudTower's published API spec, the SDK and its one public production
// user show (see the project's notes on the real CloudTower); where they
// settle nothing, Knobs choose.
//
// It is ordinary (non-test) code with no dependencies outside the standard
// library, used by tests (also inside testing/synctest bubbles), examples,
// the CLI's demo mode and benchmarks. It starts no goroutine of its own
// except the loopback HTTP server that StartHTTP creates and Close stops.
//
// # Wire contract
//
// All paths live under BasePath ("/v2/api").
//
//   - POST /v2/api/login with a JSON body {"username":..,"password":..,
//     "source":..} answers 200 {"data":{"token":"<token>"}} when the
//     credentials match Config.Username and Config.Password, and 400 with a
//     JSON error body otherwise.
//   - GET /v2/api/resource-changes needs, as in CloudTower's spec (the only
//     operation there secured by HTTP Basic), HTTP Basic with the API
//     credentials (Config.APIUsername, Config.APIPassword; "watcher" and
//     "watcher" by default). Config.ChangesAuth (AuthBasic, the default;
//     AuthToken; AuthEither) and SetChangesAuth make it take the login
//     token instead ("Authorization: <token>", the bare token, no
//     "Bearer"), or either. Every other route but login wants the token.
//     Config.DisableAuth lets everything in. A request without the
//     credentials its route wants gets 401 with a JSON error body.
//   - Config.RequiredHeaders (SetRequiredHeaders) names headers every
//     request, login included, must carry, such as
//     "x-bypass-whitelist: true"; a request without one gets 403 with a
//     JSON error body naming it.
//   - POST /v2/api/get-vms, get-hosts, get-clusters, get-vm-volumes,
//     get-vm-nics and get-labels (ListPath) take the SDK's request bodies
//     (models.GetVmsRequestBody and its siblings): where by id, id_in,
//     id_not and id_not_in, first, skip, and orderBy id_ASC or id_DESC
//     (the default is id_ASC). They answer 200 with a JSON array of the
//     current objects of the type (what the SDK's client/vm GetVms and its
//     siblings decode); anything else in the body gets 400, so that a test
//     never relies on a filter the fake ignores.
//   - Query parameters: start_revision (a decimal string), limit (an integer
//     from 1 to MaxLimit, DefaultLimit when absent), resource_type (a
//     comma-separated list of types), resource_id and action (exact
//     matches). An empty parameter counts as absent. A start_revision that
//     is not all decimal digits, or a limit that is not an integer in range,
//     gets 400 with a JSON error body. A start_revision too large for a
//     uint64 is valid and above every revision.
//   - The 200 answer is
//     {"data":[event...],"currentRevision":"<head>","compactRevision":"<compact>","ec":"0","error":null}
//     where every event is {"action","created_at","new_value","old_value",
//     "prev_revision","resource_id","resource_type","revision"}, all JSON
//     strings. Revisions are decimal strings; created_at is RFC 3339 in UTC
//     with milliseconds ("2025-01-02T03:04:05.678Z"); new_value and
//     old_value are strings holding JSON. An empty Event.NewValue or
//     Event.OldValue is omitted from the event object (so an INSERT has no
//     old_value and a DELETE no new_value, and the SDK sees nil), and so is
//     the prev_revision of a resource's first change.
//   - JSON error bodies look like CloudTower's ErrorBody:
//     {"message":"...","path":"/v2/api/...","status":400,"code":"..."}.
//   - Unknown paths and wrong methods get 404 with the plain-text body
//     "Cannot GET /path", as the real server's Express router does.
//   - Every response that has a body sets Content-Length (bodies are
//     encoded into a buffer first) and Content-Type, so that HTTP
//     keep-alive works.
//
// # Revisions and the page
//
// Revisions are uint64, assigned by Append from 1 upwards. Head is the
// newest revision ever appended ("0" for an empty log). CompactRevision is
// the newest revision whose history was discarded by Compact or by
// retention ("0" if none): a client positioned below it has lost changes.
// prev_revision is the revision of the previous change of the same
// resource (same resource_type and resource_id), absent for its first
// change; it is not the previous entry of the log.
//
// # Vocabulary and state
//
// Actions are ActionInsert, ActionUpdate and ActionDelete; resource types
// are the SDK's model names (TypeVM "Vm", TypeHost "Host", ...) and
// relations such as TypeLabelToVM "_LabelToVm", whose objects are
// {"id","A","B"}. Generate produces values with the SDK models' field
// names (see Generate). The server keeps the current state of every
// resource, updated by every appended or generated change (see Append),
// independent of compaction and retention; the list endpoints serve it and
// Resources returns it.
//
// A page is the first limit events, in revision order, that are above
// start_revision (or at or above it, see Knobs.InclusiveStart) and match
// the filters. When start_revision is absent the page is the newest limit
// matching events (or the oldest, see Knobs.OldestWhenNoStart).
// currentRevision is always the global head, whatever the filters.
// Discarded events are never served; a start_revision below the compact
// revision silently gets what remains, from the oldest retained event on,
// as a real server would: detecting the gap is the client's job.
//
// Each event is encoded to JSON once, when it is appended, and a page is
// the concatenation of its events' JSON, so that serving costs the server
// little next to what a client spends decoding (a page of 1000 generated
// events takes about 45 µs): the benchmarks measure the client. The log
// therefore holds each event about twice; Config.Retention bounds it.
//
// # Knobs and faults
//
// The exact semantics of the real server are not public, so Knobs selects
// among the plausible ones (inclusive start, which page an absent start
// gives, shuffled pages, repeated pages). Faults (see FaultKind) script or
// randomise server and network failures of resource-change requests.
// Config.Latency (SetLatency) adds a constant delay to every
// resource-change and list request. All of them can be changed while the
// server runs.
//
// # Transports
//
// StartHTTP serves on a loopback port (use Host with base path BasePath and
// scheme "http" for the SDK). Transport serves in memory in the caller's
// goroutine, without network or goroutines, so that it works inside
// testing/synctest bubbles; create the Server inside the bubble then, so
// that its channels and timers belong to it.
package fakeserver
