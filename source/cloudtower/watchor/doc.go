// Package watchor is a drop-in replacement for the CloudTower SDK's
// three-channel client, package watchor of
// github.com/smartxworks/cloudtower-go-sdk/v2: the same names, types and
// meaning, built on the towerwatch stream engine. Code written against the
// SDK switches by changing one import path:
//
//	import "github.com/smartxworks/cloudtower-go-sdk/v2/watchor"
//	// becomes
//	import "github.com/towerwatch/towerwatch/source/cloudtower/watchor"
//
// A ResourceChangeWatchClient polls GET /resource-changes through the SDK
// client it is given and hands out what it finds on three channels:
//
//	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{
//		Client:        c, // *client.Cloudtower, from cloudtower.Dial for example
//		ResourceTypes: []string{"Vm", "Host"}, // CloudTower's model names
//	})
//	if err != nil {
//		return err
//	}
//	if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: &rev}); err != nil {
//		return err
//	}
//	defer w.Stop()
//	for ev := range w.Channel() { // closed when the client stops
//		handle(ev)
//	}
//	if e, ok := <-w.ErrorChannel(); ok { // never blocks once Channel is closed
//		return e.Err // e.Type: compacted, request or unsupported
//	}
//
// # Channels
//
// Channel carries the changes (*models.ResourceChangeEvent) in revision
// order, each revision once and none skipped, with a buffer of 500. When
// the buffer is full the poller waits for the consumer (memory stays
// bounded), but Stop never waits for it.
//
// WarningChannel carries non-fatal failures: a poll failed and will be
// retried after a backoff. It holds only the newest warning (a buffer of
// one whose older value is replaced), so sending never waits: a warning
// nobody reads never blocks the poller.
//
// ErrorChannel carries the one fatal error that stops the client, as an
// *ErrorEvent whose Type is
//
//   - ErrorEventTypeCompacted: the position (the start revision, or the
//     last change delivered) is below the server's compact revision, so
//     changes were lost; CompactRevision holds the compact revision. This is
//     checked on every page, also while catching up a backlog. Re-list what
//     you mirror, then Start again after *CompactRevision.
//   - ErrorEventTypeUnsupported: the server answered 404 (whatever the
//     body): it has no resource-change API. errors.Is(Err,
//     cloudtower.ErrUnsupported) holds.
//   - ErrorEventTypeRequest: any other fatal failure: MaxRetries retries in
//     a row failed (errors.Is(Err, stream.ErrRetriesExhausted); Err also
//     wraps the last failure), or the server refused the request or the
//     credentials at once (cloudtower.ErrBadRequest,
//     cloudtower.ErrUnauthorized), which no retry can fix.
//
// Sending the fatal error never waits either: it is kept in ErrorChannel's
// buffer until someone reads it.
//
// # Life cycle
//
// Start launches one poller goroutine; the client is then started until
// Stop is called or a fatal error happens.
//
// Stop cancels the poller, interrupting the in-flight request, the backoff
// wait, the poll interval and a send to a full Channel, waits for it to
// return, and closes the three channels, all before it returns (within
// milliseconds). Events still buffered in Channel can be read after that.
// Stop on a client that is not started returns ErrNotStarted.
//
// A fatal error stops the client at once: Start may be called again and
// Stop returns ErrNotStarted. The error waits in ErrorChannel, and the
// three channels are closed one second later (or at once when Stop or Start
// is called). A consumer that selects over all three channels and returns
// at the first closed one, as in the SDK's usage document, thus receives
// the error before it sees a closed channel; a consumer that only ranges
// over Channel sees it closed after that second and can then receive the
// error from ErrorChannel without blocking.
//
// Start after the client stopped (either way) starts a new run with new
// channels; the previous run's poller has returned before Start does, and
// it only ever touches its own channels. Start(nil), or a nil or empty
// StartRevision, starts from now: only changes after the server's head
// revision at the time of Start are delivered.
//
// Channel, WarningChannel and ErrorChannel return the channels of the
// latest Start. Before the first Start they return the channels that the
// first Start will use, so a consumer may be set up first. Each Start after
// the client stopped replaces all three: call the accessors again after
// every Start (the SDK's usage example calls them in every select, which is
// right). A Start that fails leaves them as they were.
//
// All methods are safe for concurrent use.
//
// # Differences from the SDK's client
//
// Same API, without its defects: warnings and the fatal error never block
// the poller; Stop interrupts everything and frees the poller even if the
// consumer stopped reading; a restart cannot race the old poller; a 404
// is reported as unsupported; compaction is detected during catch-up too;
// a server that includes the start revision in its answer does not cause
// duplicates; a backlog is caught up without sleeping between full pages
// (pages of up to 1000 changes instead of 100); Start(nil) does not panic;
// the channel accessors never return nil.
//
// Also: ClientOptions may be nil; the backoff between retries starts at
// PollingInterval and doubles, with jitter, up to 30 s (or
// PollingInterval if longer); each poll is bounded by 60 s; retries are
// logged through log/slog's default logger at Warn level.
//
// # Credentials
//
// CloudTower's specification secures GET /resource-changes with HTTP
// Basic (API credentials), not the login token. With a client from
// cloudtower.Dial whose Config has APIUsername and APIPassword (and
// Headers, BypassWhitelist), nothing more is needed. For any other client,
// NewResourceChangeWatchClient takes source options after the params, so
// that nobody has to write a ClientOption by hand:
//
//	w, err := watchor.NewResourceChangeWatchClient(params,
//		cloudtower.APICredentials(apiUser, apiPassword),
//		cloudtower.BypassWhitelist(), cloudtower.Header("X-Tenant", "blue"))
//
// params.ClientOptions still applies, after them: an AuthInfo it sets
// wins, as with the SDK's client.
package watchor
