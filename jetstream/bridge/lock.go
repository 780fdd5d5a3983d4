package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of LockConfig.
const (
	DefaultLockBucket = "towerwatch_leader"
	DefaultLockTTL    = 10 * time.Second
	DefaultLockPoll   = time.Second
)

var (
	// ErrLeaseLost is the cause of a lease's context when another holder
	// took the key (the lease expired on the server before it was renewed).
	ErrLeaseLost = errors.New("bridge: leader lease lost to another holder")
	// ErrLeaseExpired is the cause when renewals failed for a whole TTL:
	// another bridge may be taking over.
	ErrLeaseExpired = errors.New("bridge: leader lease expired: renewals failed")
	// ErrLeaseReleased is the cause after Release.
	ErrLeaseReleased = errors.New("bridge: leader lease released")
)

// LockConfig configures the leader lock: a key in a JetStream key-value
// bucket whose TTL is the lease time. The zero value is usable.
type LockConfig struct {
	// Bucket is the key-value bucket; default DefaultLockBucket. Every
	// bridge sharing the bucket must use the same TTL.
	Bucket string
	// Key is the lock's key; default: the stream's name, so that one bucket
	// serves the bridges of several streams.
	Key string
	// TTL is the lease time (the bucket's max age): a holder that stops
	// renewing loses the key TTL after its last renewal. Default
	// DefaultLockTTL; at least 100ms (the server's minimum max age).
	TTL time.Duration
	// Renew is the time between renewals; default TTL/4. It must be below
	// TTL.
	Renew time.Duration
	// Poll is the time between two attempts of a standby to take the key;
	// default DefaultLockPoll.
	Poll time.Duration
	// Replicas of the bucket; default 1.
	Replicas int
	// ID names this holder in the key's value (for operators looking at the
	// bucket); default host name, process id and a random suffix.
	ID string
	// Logger receives lock events (default slog.Default()).
	Logger *slog.Logger
}

func (c LockConfig) withDefaults(streamName string) (LockConfig, error) {
	if c.Bucket == "" {
		c.Bucket = DefaultLockBucket
	}
	if c.Key == "" {
		c.Key = streamName
	}
	if c.TTL == 0 {
		c.TTL = DefaultLockTTL
	}
	if c.TTL < 100*time.Millisecond {
		return c, fmt.Errorf("bridge: %w: lock TTL %v below 100ms", stream.ErrInvalidOption, c.TTL)
	}
	if c.Renew == 0 {
		c.Renew = c.TTL / 4
	}
	if c.Renew <= 0 || c.Renew >= c.TTL {
		return c, fmt.Errorf("bridge: %w: lock renewal %v not within (0, TTL %v)", stream.ErrInvalidOption, c.Renew, c.TTL)
	}
	if c.Poll == 0 {
		c.Poll = DefaultLockPoll
	}
	if c.Poll < 0 {
		return c, fmt.Errorf("bridge: %w: negative lock poll %v", stream.ErrInvalidOption, c.Poll)
	}
	if c.Replicas < 0 {
		return c, fmt.Errorf("bridge: %w: negative lock replicas %d", stream.ErrInvalidOption, c.Replicas)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Lock is a leader lock over a JetStream key-value bucket. At most one
// Lease on a key is valid at a time; see Acquire.
type Lock struct {
	kv  jetstream.KeyValue
	cfg LockConfig
}

// NewLock creates (or opens) the bucket of cfg and returns the lock on its
// key. streamName names the default key.
func NewLock(ctx context.Context, js jetstream.JetStream, streamName string, cfg LockConfig) (*Lock, error) {
	cfg, err := cfg.withDefaults(streamName)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "towerwatch bridge leader locks",
		History:     1,
		TTL:         cfg.TTL,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: lock bucket %s: %w", cfg.Bucket, err)
	}
	return &Lock{kv: kv, cfg: cfg}, nil
}

// Config returns the lock's configuration with defaults filled in.
func (l *Lock) Config() LockConfig { return l.cfg }

// Holder is the value stored under the lock's key, as JSON.
type Holder struct {
	ID       string    `json:"id"`
	Acquired time.Time `json:"acquired"`
}

// Acquire blocks until it holds the key, or ctx is done. It tries to
// create the key every Poll: that succeeds once the key is absent, because
// its holder released it or stopped renewing it for TTL.
//
// The returned Lease renews the key in a goroutine of its own until it is
// lost or released. Call Release exactly once in every case, also after
// the lease was lost or ctx was cancelled, to end that goroutine.
func (l *Lock) Acquire(ctx context.Context) (*Lease, error) {
	val, err := json.Marshal(Holder{ID: l.cfg.ID, Acquired: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(0)
	defer t.Stop()
	waiting := false
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, l.cfg.Poll+l.cfg.TTL/2)
		rev, err := l.kv.Create(rctx, l.cfg.Key, val)
		cancel()
		if err == nil {
			l.cfg.Logger.Info("towerwatch bridge: leader lock acquired", "bucket", l.cfg.Bucket, "key", l.cfg.Key, "id", l.cfg.ID)
			return l.newLease(ctx, val, rev, sent), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			if !waiting {
				waiting = true
				l.cfg.Logger.Info("towerwatch bridge: standing by: another bridge holds the leader lock", "bucket", l.cfg.Bucket, "key", l.cfg.Key, "holder", l.Holder(ctx))
			}
		} else {
			l.cfg.Logger.Warn("towerwatch bridge: taking the leader lock failed", "bucket", l.cfg.Bucket, "key", l.cfg.Key, "error", err)
		}
		t.Reset(l.cfg.Poll)
	}
}

// Holder returns the ID (LockConfig.ID) of the bridge that holds the key,
// "" if none does, or "?" if the key cannot be read.
func (l *Lock) Holder(ctx context.Context) string {
	e, err := l.kv.Get(ctx, l.cfg.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return ""
	}
	if err != nil {
		return "?"
	}
	var h Holder
	if json.Unmarshal(e.Value(), &h) != nil {
		return "?"
	}
	return h.ID
}

// Lease is a held leader lock. Its Context is cancelled, with a cause
// (context.Cause) of ErrLeaseLost, ErrLeaseExpired or ErrLeaseReleased,
// as soon as the holder may no longer act as the leader.
type Lease struct {
	lock   *Lock
	val    []byte
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}

	mu  sync.Mutex
	rev uint64 // the key's revision while held; 0 once lost
}

func (l *Lock) newLease(parent context.Context, val []byte, rev uint64, sent time.Time) *Lease {
	ctx, cancel := context.WithCancelCause(parent)
	le := &Lease{lock: l, val: val, ctx: ctx, cancel: cancel, rev: rev,
		stop: make(chan struct{}), done: make(chan struct{})}
	go le.renew(sent)
	return le
}

// Context returns a context that is cancelled when the lease ends.
func (le *Lease) Context() context.Context { return le.ctx }

// Done is closed when the lease ends; see Context.
func (le *Lease) Done() <-chan struct{} { return le.ctx.Done() }

// renew keeps the key alive every Renew. The lease is valid until TTL after
// the send time of the last successful renewal: the server's clock starts
// the key's age later than that, so the key cannot expire before.
func (le *Lease) renew(sent time.Time) {
	defer close(le.done)
	cfg := le.lock.cfg
	validUntil := sent.Add(cfg.TTL)
	tick := time.NewTicker(cfg.Renew)
	defer tick.Stop()
	expiry := time.NewTimer(time.Until(validUntil))
	defer expiry.Stop()
	failures := 0
	for {
		select {
		case <-le.stop:
			return
		case <-le.ctx.Done(): // the parent context
			return
		case <-expiry.C:
			le.lose(ErrLeaseExpired)
			return
		case <-tick.C:
		}
		le.mu.Lock()
		rev := le.rev
		le.mu.Unlock()
		sent := time.Now()
		rctx, cancel := context.WithDeadline(le.ctx, validUntil)
		nrev, err := le.lock.kv.Update(rctx, cfg.Key, le.val, rev)
		cancel()
		switch {
		case err == nil:
			le.mu.Lock()
			le.rev = nrev
			le.mu.Unlock()
			validUntil = sent.Add(cfg.TTL)
			expiry.Reset(time.Until(validUntil))
			if failures > 0 {
				cfg.Logger.Info("towerwatch bridge: leader lock renewed again", "key", cfg.Key, "failures", failures)
				failures = 0
			}
		case le.ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists),
			errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			le.lose(fmt.Errorf("%w: %w", ErrLeaseLost, err))
			return
		default:
			level := slog.LevelDebug
			if failures++; failures == 1 {
				level = slog.LevelWarn
			}
			cfg.Logger.Log(context.Background(), level, "towerwatch bridge: renewing the leader lock failed", "key", cfg.Key, "error", err,
				"valid_for", time.Until(validUntil).Round(time.Millisecond))
		}
	}
}

func (le *Lease) lose(cause error) {
	le.mu.Lock()
	le.rev = 0
	le.mu.Unlock()
	le.lock.cfg.Logger.Warn("towerwatch bridge: leader lock lost", "key", le.lock.cfg.Key, "cause", cause)
	le.cancel(cause)
}

// Release ends the lease: it stops the renewals and, unless the lease was
// already lost, deletes the key (if it still holds the revision this lease
// wrote) so that a standby takes over at its next poll instead of after
// the TTL. It interrupts a renewal in flight and waits for the renewal
// goroutine. ctx bounds the deletion.
func (le *Lease) Release(ctx context.Context) error {
	select {
	case <-le.stop:
		<-le.done
		return nil // released before
	default:
	}
	close(le.stop)
	// Cancel first: a renewal in flight (NATS not answering) ends now
	// instead of at its deadline; if its answer is lost, the key check
	// below still finds the key this lease wrote.
	le.cancel(ErrLeaseReleased)
	<-le.done
	le.mu.Lock()
	rev := le.rev
	le.rev = 0
	le.mu.Unlock()
	if rev == 0 {
		return nil
	}
	err := le.lock.kv.Delete(ctx, le.lock.cfg.Key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A renewal whose answer was lost (its context was cancelled with
		// the lease's) may have moved the key on: it is still this lease's
		// if it holds this lease's value (ID and acquisition time).
		var e jetstream.KeyValueEntry
		if e, err = le.lock.kv.Get(ctx, le.lock.cfg.Key); err == nil {
			if !bytes.Equal(e.Value(), le.val) {
				return nil // another holder's
			}
			err = le.lock.kv.Delete(ctx, le.lock.cfg.Key, jetstream.LastRevision(e.Revision()))
		}
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil // expired meanwhile
	}
	if err != nil {
		return fmt.Errorf("bridge: releasing the leader lock: %w", err)
	}
	le.lock.cfg.Logger.Info("towerwatch bridge: leader lock released", "key", le.lock.cfg.Key)
	return nil
}
