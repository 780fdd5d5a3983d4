// Package cloudtower plugs CloudTower's resource-change feed into the
// stream engine: Source polls GET /resource-changes through the official
// SDK (github.com/smartxworks/cloudtower-go-sdk/v2) and implements
// stream.Source[*models.ResourceChangeEvent], and Dial builds a logged-in
// SDK client with verified TLS and request timeouts.
//
//	c, err := cloudtower.Dial(ctx, cloudtower.Config{
//		Host:        "tower.example.com",
//		Username:    "admin", // the login: a token for every other call
//		Password:    os.Getenv("TOWER_PASSWORD"),
//		APIUsername: "watcher", // API credentials: HTTP Basic on GET /resource-changes
//		APIPassword: os.Getenv("TOWER_API_PASSWORD"),
//	})
//	if err != nil {
//		return err // errors.Is(err, cloudtower.ErrUnauthorized), ...
//	}
//	src := cloudtower.New(c, cloudtower.ResourceTypes("Vm", "Host"))
//	for ev, err := range src.Watch(ctx, cloudtower.After(rev)) {
//		if err != nil {
//			return err // the stream has ended
//		}
//		handle(ev) // *ev.Revision, *ev.Action ("INSERT", "UPDATE", "DELETE"), *ev.ResourceType ("Vm"), ...
//	}
//
// The delivery guarantees (ordered, unique, reliable, resumable, bounded,
// prompt) are the stream package's; this package only maps CloudTower's
// requests, responses and errors onto it. Resume after the last handled
// revision with After (stream.After), or read it with RevisionOf; start
// from the oldest retained change with FromStart, or at the head with
// FromNow (the default).
//
// # Authentication
//
// CloudTower's API specification secures GET /resource-changes, and only
// it, with HTTP Basic; every other operation takes the token of POST
// /login in the Authorization header. Config therefore holds two kinds of
// credentials: the login (Username and Password, or Token) and the API
// credentials (APIUsername and APIPassword), which Dial sets as the
// resource-change operation's AuthInfo, as the SDK intends. Either may be
// given alone: API credentials are enough for watching; a login alone sends
// the token on the feed too, which some servers accept. For a client not
// made by Dial, the APICredentials source option does the same. On a 401 or
// 403 of the feed, APIError.Credentials says which were sent (never their
// values).
//
// Config.Headers are sent with every request, the login included, and
// Config.BypassWhitelist adds "x-bypass-whitelist: true", which some
// deployments require; the Header and BypassWhitelist source options do
// the same for the polls of any client.
//
// Resource types are CloudTower's model names, case-sensitive: "Vm",
// "Host", "Cluster", "VmVolume", "VmNic", "Label", relations such as
// "_LabelToVm"; actions are "INSERT", "UPDATE" and "DELETE".
// KnownResourceTypes lists the common ones and SuggestResourceType finds
// the spelling of a near miss ("VM" -> "Vm").
//
// # Requests
//
// Each poll sends start_revision (omitted when the stream has no position
// yet: the engine then only wants the head), limit (at most MaxPageSize),
// and the filters set with ResourceTypes, ResourceID and Action, with the
// stream's context, so cancelling the stream or its PollTimeout aborts the
// request. The response's currentRevision and compactRevision become the
// page's Head and Compact; absent or empty, they are zero (unknown, none).
//
// # Decoding
//
// A 200 response is decoded by DecodeResponse, not by the SDK's
// encoding/json path: the result is the same *models.ResourceChangeResponse
// (the decoder is exact and falls back to encoding/json on anything
// unusual), about five times faster and with 2 allocations per change
// instead of 18. Each event owns its strings: keeping one event does not
// keep its page in memory. Other statuses go through the SDK's own reader.
// A ClientOptions option that replaces the operation's Reader wins.
//
// # Errors
//
// One table, in statusKind, decides what a failure means. HTTP error
// statuses become an *APIError (errors.As for Status and the server's
// Message; Unwrap reaches the SDK's own error type):
//
//	failure                                  stream             errors.Is
//	404, any body (JSON, text, HTML, empty)  ends at once       ErrUnsupported
//	400                                      ends at once       ErrBadRequest (message from the server)
//	401, 403                                 ends at once       ErrUnauthorized
//	other 4xx except 408 and 429             ends at once       ErrBadRequest
//	408, 429, 5xx                            retried            - (Retry-After honoured, see below)
//	network error, timeout, reset            retried            - (wraps the *url.Error ...)
//	undecodable 200 (truncated, malformed)   retried            - (wraps the SDK's error)
//	200 body over MaxResponseBytes           retried            stream.ErrProtocol (*TooLargeError)
//	invalid currentRevision/compactRevision  retried            stream.ErrProtocol
//	event without a valid revision           retried (page)     stream.ErrProtocol
//
// Fatal errors are marked with stream.Fatal, so the stream ends with them
// at once; the others are retried with backoff by the engine (forever, or
// up to stream.MaxRetries) and reported to its OnWarning hook and logger.
// A page holding an event without a valid revision is rejected whole: such
// an event is never delivered, and nothing after it is skipped.
//
// A Retry-After header is honoured when the SDK keeps the response: for
// statuses it does not model (429, 502, 503, ...) and for bodies it could
// not decode. It is lost for a 500 with a JSON body, which the SDK decodes
// into a type without headers.
//
// A token expires: the stream then ends with ErrUnauthorized. Dial again
// and resume after the last handled revision.
//
// A 200 body is read through a bound (MaxResponseBytes, default
// DefaultMaxResponseBytes): a broken proxy that streams an endless body
// costs a retried poll and about that much memory, never more.
//
// Errors say what happened (the request, the status, the server's
// message); what to do about them is in the doc comments of the sentinels
// (ErrUnsupported, ErrUnauthorized, ErrBadRequest, ErrConfig).
//
// # Secrets
//
// Neither a password nor the token appears in an error, a log line or a
// printed Config (String, GoString, LogValue), nor do the values of
// secret-looking Headers (Authorization, Cookie, anything naming a token,
// key, secret or password). A server's error message that echoes one of
// them (a careless server may echo the request) is scrubbed before it
// reaches an error. Dial turns off the SDK runtime's DEBUG dump, which
// would print them.
package cloudtower
