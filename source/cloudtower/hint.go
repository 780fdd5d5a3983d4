package cloudtower

import (
	"bytes"
	"context"

	"github.com/towerwatch/towerwatch/stream"
)

// While the engine catches up, the next request needs the last revision
// of the page being received. hintLast finds it in the raw body before
// the page is decoded, and tells the engine with stream.HintNext, so that
// the next request overlaps this page's decoding. The scan is a guess,
// not a parse: the engine checks every hint against the decoded page (a
// wrong one costs a request, never a change), so it only has to be fast
// and right for the usual body.

// revisionKey precedes each event's revision in the usual body. Inside a
// JSON string (new_value, old_value) its quotes would be escaped, and the
// page's own currentRevision and compactRevision keys do not match it.
var revisionKey = []byte(`"revision":"`)

// maxHintDigits bounds the digits hintLast reads.
const maxHintDigits = 40

// hintLast reports the revision of the last event in body, if it finds
// one, to the engine behind ctx.
func hintLast(ctx context.Context, body []byte) {
	if ctx == nil {
		return
	}
	if rev, ok := lastRevision(body); ok {
		stream.HintNext(ctx, rev)
	}
}

// lastRevision returns the revision of the last event in body: the digits
// after its last `"revision":"`.
func lastRevision(body []byte) (stream.Revision, bool) {
	i := bytes.LastIndex(body, revisionKey)
	if i < 0 {
		return stream.Revision{}, false
	}
	digits := body[i+len(revisionKey):]
	n := 0
	for n < len(digits) && n <= maxHintDigits && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	if n == 0 || n > maxHintDigits || n == len(digits) || digits[n] != '"' {
		return stream.Revision{}, false
	}
	rev, err := stream.ParseRevision(string(digits[:n]))
	return rev, err == nil
}
