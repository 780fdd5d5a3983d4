package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

func TestRetrierWaitsGrowWithinBounds(t *testing.T) {
	p := stream.RetryPolicy{Min: time.Second, Max: 10 * time.Second, Multiplier: 3, MaxRetries: 5}
	r := p.Start()
	var waits []time.Duration
	for {
		w, ok := r.Next(errFlaky)
		if !ok {
			break
		}
		waits = append(waits, w)
	}
	want := []time.Duration{time.Second, 3 * time.Second, 9 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) || r.Failures() != 6 {
		t.Fatalf("waits %v after %d failures, want %v after 6", waits, r.Failures(), want)
	}
	r.Reset()
	if w, ok := r.Next(errFlaky); !ok || w != time.Second || r.Failures() != 1 {
		t.Fatalf("after Reset: %v, %v, %d failures", w, ok, r.Failures())
	}
}

func TestRetrierJitterAndRetryAfter(t *testing.T) {
	r := stream.DefaultRetryPolicy().Start()
	for i := range 100 {
		w, ok := r.Next(errFlaky)
		if !ok || w < stream.DefaultMinBackoff || w > stream.DefaultMaxBackoff {
			t.Fatalf("retry %d: %v, %v", i, w, ok)
		}
	}
	r = stream.RetryPolicy{Min: time.Millisecond, Max: time.Minute, MaxRetries: stream.NoRetryLimit}.Start()
	if w, _ := r.Next(fmt.Errorf("x: %w", retryAfter{5 * time.Second})); w != 5*time.Second {
		t.Fatalf("Retry-After 5s: waited %v", w)
	}
	if w, _ := r.Next(retryAfter{time.Hour}); w != time.Minute {
		t.Fatalf("Retry-After 1h: waited %v, want the 1m cap", w)
	}
	var zero stream.Retrier
	if _, ok := zero.Next(errFlaky); ok {
		t.Fatal("the zero Retrier retries")
	}
}

func TestRetrierWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := stream.RetryPolicy{Min: time.Second, MaxRetries: 1}.Start()
		start := time.Now()
		if err := r.Wait(t.Context(), errFlaky); err != nil || time.Since(start) != time.Second {
			t.Fatalf("Wait = %v after %v", err, time.Since(start))
		}
		err := r.Wait(t.Context(), errFlaky)
		var re *stream.RetryError
		if !errors.As(err, &re) || re.Attempts != 2 || !errors.Is(err, errFlaky) {
			t.Fatalf("Wait after the last retry = %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r.Reset()
		if err := r.Wait(ctx, errFlaky); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait on a done ctx = %v", err)
		}
	})
}

func TestRetryPolicyValidate(t *testing.T) {
	for _, p := range []stream.RetryPolicy{{}, stream.DefaultRetryPolicy(), {Min: time.Minute}, {Jitter: 1, Multiplier: 1}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, p := range []stream.RetryPolicy{
		{Min: -1}, {Max: -1}, {Min: time.Second, Max: time.Millisecond}, {Multiplier: 0.5},
		{Jitter: -0.1}, {Jitter: 1.1}, {MaxRetries: -2},
	} {
		if err := p.Validate(); !errors.Is(err, stream.ErrInvalidOption) {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

func TestIsFinal(t *testing.T) {
	for _, tc := range []struct {
		err   error
		final bool
	}{
		{nil, false},
		{errFlaky, false},
		{context.Canceled, true},
		{fmt.Errorf("poll: %w", context.DeadlineExceeded), true},
		{stream.Fatal(errFlaky), true},
		{fmt.Errorf("%w: PageSize(1)", stream.ErrInvalidOption), true},
		{&stream.CompactedError{}, true},
		{&stream.RetryError{Attempts: 3, Err: errFlaky}, false},
		{&stream.RetryError{Attempts: 3, Err: context.DeadlineExceeded}, false},
		{fmt.Errorf("%w: %w", stream.ErrProtocol, errFlaky), false},
	} {
		if got := stream.IsFinal(tc.err); got != tc.final {
			t.Errorf("IsFinal(%v) = %v, want %v", tc.err, got, tc.final)
		}
	}
}
