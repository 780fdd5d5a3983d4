package stream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
)

// NoRetryLimit as RetryPolicy.MaxRetries retries forever.
const NoRetryLimit = -1

// RetryPolicy is the one backoff policy of towerwatch: the engine retries
// failed polls with it (see Retry), and the layers above (operators.Resume,
// the JetStream bridge and its lock) reopen with it.
//
// The wait before retry n (n = 1, 2, ...) is Min·Multiplier^(n-1), at most
// Max, randomised by Jitter, then raised to what the server asked for with
// a RetryAfterError, and kept within [Min, Max].
//
// Zero Min, Max and Multiplier take the defaults (DefaultMinBackoff,
// DefaultMaxBackoff, 2). Jitter and MaxRetries are taken as they are: zero
// Jitter waits exactly, zero MaxRetries gives up at the first failure. Start
// from DefaultRetryPolicy to change one field.
type RetryPolicy struct {
	// Min and Max are the first and the largest wait.
	Min, Max time.Duration
	// Multiplier is the growth of the wait per failure, at least 1.
	Multiplier float64
	// Jitter is the randomisation factor, 0 to 1: a wait w becomes a
	// uniformly random wait in [w·(1-Jitter), w·(1+Jitter)].
	Jitter float64
	// MaxRetries is how many retries in a row may fail before giving up;
	// NoRetryLimit retries forever.
	MaxRetries int
}

// DefaultRetryPolicy returns the engine's default policy: 500 ms growing
// twofold to 30 s, jitter 0.5, retrying forever.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Min:        DefaultMinBackoff,
		Max:        DefaultMaxBackoff,
		Multiplier: 2,
		Jitter:     0.5,
		MaxRetries: NoRetryLimit,
	}
}

// Validate reports a policy that Start could only repair: a negative
// duration, Max below Min, a Multiplier below 1, a Jitter outside [0, 1],
// a MaxRetries below NoRetryLimit. The error wraps ErrInvalidOption.
func (p RetryPolicy) Validate() error {
	n := p.normalized()
	switch {
	case p.Min < 0 || p.Max < 0:
		return fmt.Errorf("%w: RetryPolicy: negative Min %v or Max %v", ErrInvalidOption, p.Min, p.Max)
	case n.Max < n.Min:
		return fmt.Errorf("%w: RetryPolicy: Max %v below Min %v", ErrInvalidOption, n.Max, n.Min)
	case !(n.Multiplier >= 1) || math.IsInf(n.Multiplier, 0):
		return fmt.Errorf("%w: RetryPolicy: Multiplier %v, want at least 1", ErrInvalidOption, p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter <= 1):
		return fmt.Errorf("%w: RetryPolicy: Jitter %v, want 0 to 1", ErrInvalidOption, p.Jitter)
	case p.MaxRetries < NoRetryLimit:
		return fmt.Errorf("%w: RetryPolicy: MaxRetries %d, want NoRetryLimit or more", ErrInvalidOption, p.MaxRetries)
	}
	return nil
}

// normalized fills in the defaults of zero fields.
func (p RetryPolicy) normalized() RetryPolicy {
	if p.Min == 0 {
		p.Min = DefaultMinBackoff
	}
	if p.Max == 0 {
		p.Max = max(DefaultMaxBackoff, p.Min)
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	return p
}

// Start returns a Retrier for one run of retries under p. Start does not
// validate p (see Validate); it repairs what it must: a Max below Min is
// taken as Min, a Multiplier below 1 as 1, a Jitter outside [0, 1] as the
// nearest bound.
func (p RetryPolicy) Start() *Retrier {
	p = p.normalized()
	p.Min = max(p.Min, 0)
	p.Max = max(p.Max, p.Min)
	if !(p.Multiplier >= 1) {
		p.Multiplier = 1
	}
	if !(p.Jitter >= 0) {
		p.Jitter = 0
	}
	p.Jitter = min(p.Jitter, 1)
	return &Retrier{p: p, started: true}
}

// Retrier counts the failures in a row of one retried operation and says
// how long to wait before the next attempt. Create one with
// RetryPolicy.Start; the zero Retrier is RetryPolicy{}.Start(), which gives
// up at the first failure. A Retrier is not safe for concurrent use.
//
// A Retrier does not decide what is worth retrying: check IsFinal (or the
// caller's own rule) before calling Next or Wait.
type Retrier struct {
	p        RetryPolicy
	started  bool
	failures int
	next     time.Duration // the wait before jitter of the next retry; 0: p.Min
}

// Next records the failure err and returns the wait before the next
// attempt, or ok == false when the policy's MaxRetries are used up. The
// wait honours a RetryAfterError in err's chain, capped at Max.
func (r *Retrier) Next(err error) (wait time.Duration, ok bool) {
	if !r.started {
		*r = *RetryPolicy{}.Start()
	}
	r.failures++
	if r.p.MaxRetries != NoRetryLimit && r.failures > r.p.MaxRetries {
		return 0, false
	}
	base := r.next
	if base == 0 {
		base = r.p.Min
	}
	if grown := float64(base) * r.p.Multiplier; grown < float64(r.p.Max) {
		r.next = time.Duration(grown)
	} else {
		r.next = r.p.Max
	}
	wait = base
	if j := r.p.Jitter; j > 0 && base > 0 {
		lo := float64(base) * (1 - j)
		wait = time.Duration(lo + rand.Float64()*(float64(base)*(1+j)-lo))
	}
	var ra RetryAfterError
	if errors.As(err, &ra) {
		wait = max(wait, ra.RetryAfter())
	}
	return min(max(wait, r.p.Min), r.p.Max), true
}

// Wait records the failure err, then sleeps the wait Next returns. It
// returns nil once the next attempt may start, ctx.Err() if ctx is done
// first, and a *RetryError (with Attempts and Err set) when the retries
// are used up.
func (r *Retrier) Wait(ctx context.Context, err error) error {
	wait, ok := r.Next(err)
	if !ok {
		return &RetryError{Attempts: r.failures, Err: err}
	}
	return ctxtime.Sleep(ctx, wait)
}

// Reset forgets the failures: call it after a success, so that the next
// failure waits Min again and counts as the first.
func (r *Retrier) Reset() {
	r.failures, r.next = 0, 0
}

// Failures returns the failures recorded since the start or the last Reset.
func (r *Retrier) Failures() int { return r.failures }

// IsFinal reports whether err ends a stream for good: opening it again with
// the same arguments cannot succeed. It is the one rule every layer uses to
// choose between giving up and reopening (or retrying). It is true when err
// is or wraps
//
//   - context.Canceled or context.DeadlineExceeded: the context is done,
//     and everything built on it ends;
//   - an error marked with Fatal: the source said retrying cannot help;
//   - ErrInvalidOption: the arguments are wrong;
//   - ErrCompacted: the position is lost, a new start must be chosen.
//
// A *RetryError is never final, whatever it wraps: it ends one stream, and
// a supervisor that reopens (operators.Resume, the JetStream bridge) does
// so on it. IsFinal(nil) is false.
//
// Inside one stream, the engine applies the same rule to a failed poll,
// except that a context error from a poll whose ctx is still live is a
// timeout of that poll, and is retried.
func IsFinal(err error) bool {
	var re *RetryError
	switch {
	case err == nil, errors.As(err, &re):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return isFinalFailure(err)
}

// isFinalFailure is IsFinal without the context errors: the rule for the
// failure of one poll.
func isFinalFailure(err error) bool {
	return IsFatal(err) || errors.Is(err, ErrInvalidOption) || errors.Is(err, ErrCompacted)
}
