package informers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// DefaultPageSize is the number of objects per list request.
const DefaultPageSize = 500

// Option configures New and the ready-made constructors.
type Option func(*config)

type config struct {
	pageSize int32
	refetch  bool
	srcOpts  []cloudtower.Option
	infOpts  []informer.Option
	err      error
}

func (c *config) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: informers: "+format, append([]any{stream.ErrInvalidOption}, args...)...)
	}
}

// Err returns the error o records, if any, without building an informer.
func (o Option) Err() error {
	if o == nil {
		return nil
	}
	c := &config{}
	o(c)
	return c.err
}

// Validate returns the errors of opts, joined (nil if every option is
// valid): the error New would return for them.
func Validate(opts ...Option) error { return stream.ValidateOptions(opts...) }

// PageSize sets the number of objects per list request (default
// DefaultPageSize). It must be at least 2.
func PageSize(n int) Option {
	return func(c *config) {
		if n < 2 || n > 1<<30 {
			c.fail("PageSize(%d): want 2 or more", n)
		}
		c.pageSize = int32(n)
	}
}

// RefetchByID makes the informer fetch each inserted or updated object by
// id (one list request with where id) instead of trusting the change's
// new_value; an object the server no longer has is deleted. It costs one
// request per change; off by default. It is the pattern of the one public
// production user of the feed, for servers whose new_value may lag.
func RefetchByID() Option {
	return func(c *config) { c.refetch = true }
}

// SourceOptions adds options of the change feed's cloudtower.Source, such
// as cloudtower.APICredentials (when the client was dialled without them),
// cloudtower.ExternalCloudTowerID or cloudtower.Header. The resource type
// filter is set by the kind.
func SourceOptions(opts ...cloudtower.Option) Option {
	return func(c *config) { c.srcOpts = append(c.srcOpts, opts...) }
}

// InformerOptions adds options of the generic informer: informer.Index,
// informer.Transform, informer.Resync, informer.WatchOptions, ...
func InformerOptions(opts ...informer.Option) Option {
	return func(c *config) {
		for _, o := range opts {
			if err := o.Err(); err != nil {
				c.fail("InformerOptions: %w", err)
			}
		}
		c.infOpts = append(c.infOpts, opts...)
	}
}

// New returns an informer of the objects of kind k, keyed by id: it lists
// them through k.List on c (the login token), and watches their changes
// through cloudtower.New(c, cloudtower.ResourceTypes(k.Type), ...) (the
// API credentials c was dialled with, or those given with SourceOptions),
// decoding new_value (INSERT, UPDATE) or old_value (DELETE) into V.
//
// A change that cannot be decoded makes the informer re-list. List errors
// are classified like the feed's: 401 and 403 (cloudtower.ErrUnauthorized),
// 404 (cloudtower.ErrUnsupported) and 400 (cloudtower.ErrBadRequest) are
// fatal (stream.Fatal) and end Run; the rest are retried: the request
// itself up to 5 times (100 ms to 5 s apart), then the whole list, with
// the informer's policy (informer.Retry).
func New[V any](c *client.Cloudtower, k Kind[V], opts ...Option) (*informer.Informer[string, V], error) {
	cfg := &config{pageSize: DefaultPageSize}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	switch {
	case cfg.err != nil:
	case c == nil:
		cfg.fail("New: nil client")
	case k.Type == "" || k.List == nil || k.ID == nil:
		cfg.fail("New: Kind needs Type, List and ID")
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	fetch := func(ctx context.Context, q Query) ([]V, error) {
		// A transient failure retries this request, not the whole list.
		r := requestRetry.Start()
		for {
			objs, err := k.List(ctx, c, q)
			if err == nil {
				return objs, nil
			}
			err = classify(k.Type, err)
			if stream.IsFinal(err) {
				return nil, err
			}
			if err := r.Wait(ctx, err); err != nil {
				return nil, err
			}
		}
	}
	lister := informer.OffsetLister(k.ID, int(cfg.pageSize), func(ctx context.Context, skip, limit int) ([]V, error) {
		return fetch(ctx, Query{Skip: int32(skip), First: int32(limit)})
	})
	d := decoder[V]{kind: k, fetch: fetch, refetch: cfg.refetch}
	src := cloudtower.New(c, append([]cloudtower.Option{cloudtower.ResourceTypes(k.Type)}, cfg.srcOpts...)...)
	return informer.New(lister, stream.Source[*models.ResourceChangeEvent](src), d.decode, k.ID, cfg.infOpts...)
}

// VMs returns an informer of the virtual machines; see New.
func VMs(c *client.Cloudtower, opts ...Option) (*informer.Informer[string, *models.VM], error) {
	return New(c, VMKind(), opts...)
}

// Hosts returns an informer of the hosts; see New.
func Hosts(c *client.Cloudtower, opts ...Option) (*informer.Informer[string, *models.Host], error) {
	return New(c, HostKind(), opts...)
}

// Clusters returns an informer of the clusters; see New.
func Clusters(c *client.Cloudtower, opts ...Option) (*informer.Informer[string, *models.Cluster], error) {
	return New(c, ClusterKind(), opts...)
}

// VMVolumes returns an informer of the virtual machine volumes; see New.
func VMVolumes(c *client.Cloudtower, opts ...Option) (*informer.Informer[string, *models.VMVolume], error) {
	return New(c, VMVolumeKind(), opts...)
}

// Labels returns an informer of the labels; see New.
func Labels(c *client.Cloudtower, opts ...Option) (*informer.Informer[string, *models.Label], error) {
	return New(c, LabelKind(), opts...)
}

// ErrUndecodable is wrapped by the error of a change the informer could
// not decode (it then re-lists): an unknown action, or a missing or
// malformed object.
var ErrUndecodable = errors.New("undecodable change")

type decoder[V any] struct {
	kind    Kind[V]
	fetch   func(ctx context.Context, q Query) ([]V, error)
	refetch bool
}

func (d decoder[V]) decode(ctx context.Context, ev *models.ResourceChangeEvent) (informer.Change[V], error) {
	var ch informer.Change[V]
	if t := str(ev.ResourceType); t != d.kind.Type {
		return ch, nil // another type: ignore
	}
	action := str(ev.Action)
	switch action {
	case "INSERT":
		ch.Op = informer.Insert
	case "UPDATE":
		ch.Op = informer.Update
	case "DELETE":
		ch.Op = informer.Delete
	default:
		return ch, fmt.Errorf("%w: action %q", ErrUndecodable, action)
	}
	raw := ev.NewValue
	if ch.Op == informer.Delete {
		raw = ev.OldValue
	}
	var obj V
	if err := json.Unmarshal([]byte(str(raw)), &obj); err != nil {
		return ch, fmt.Errorf("%w: %s %s %s: %w", ErrUndecodable, action, d.kind.Type, str(ev.ResourceID), err)
	}
	if isNil(obj) || d.kind.ID(obj) == "" {
		return ch, fmt.Errorf("%w: %s %s %s: object without id", ErrUndecodable, action, d.kind.Type, str(ev.ResourceID))
	}
	ch.Object = obj
	if d.refetch && ch.Op != informer.Delete {
		id := d.kind.ID(obj)
		objs, err := d.get(ctx, id)
		if err != nil {
			return ch, fmt.Errorf("refetch %s %s: %w", d.kind.Type, id, err)
		}
		if len(objs) == 0 {
			ch.Op = informer.Delete // gone since: the decoded object carries the key
		} else {
			ch.Object = objs[0]
		}
	}
	return ch, nil
}

// requestRetry is the policy of one list request (a page, or a refetch):
// after it, the informer starts the list again (or, for a refetch,
// re-lists), with its own policy.
var requestRetry = stream.RetryPolicy{Min: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.5, MaxRetries: 5}

// get fetches one object by id.
func (d decoder[V]) get(ctx context.Context, id string) ([]V, error) {
	return d.fetch(ctx, Query{ID: id, First: 1})
}

func isNil[V any](v V) bool {
	rv := reflect.ValueOf(&v).Elem()
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// classify marks the list errors that retrying cannot fix as fatal.
func classify(typ string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	status := 0
	var api *runtime.APIError
	if errors.As(err, &api) {
		status = api.Code
	} else if name := errorTypeName(err); name != "" {
		// The SDK's typed responses: Get<Type>sBadRequest, ...NotFound,
		// ...InternalServerError.
		switch {
		case strings.HasSuffix(name, "BadRequest"):
			status = http.StatusBadRequest
		case strings.HasSuffix(name, "NotFound"):
			status = http.StatusNotFound
		case strings.HasSuffix(name, "InternalServerError"):
			status = http.StatusInternalServerError
		}
	}
	op := "list " + typ
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return stream.Fatal(fmt.Errorf("informers: %s: HTTP %d: %w: %w", op, status, cloudtower.ErrUnauthorized, err))
	case status == http.StatusNotFound:
		return stream.Fatal(fmt.Errorf("informers: %s: HTTP %d: %w: %w", op, status, cloudtower.ErrUnsupported, err))
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return stream.Fatal(fmt.Errorf("informers: %s: HTTP %d: %w: %w", op, status, cloudtower.ErrBadRequest, err))
	case status != 0:
		return fmt.Errorf("informers: %s: HTTP %d: %w", op, status, err)
	}
	return fmt.Errorf("informers: %s: %w", op, err)
}

// errorTypeName returns the type name of the first error in err's chain
// that carries an SDK ErrorBody payload.
func errorTypeName(err error) string {
	var body interface{ GetPayload() *models.ErrorBody }
	if !errors.As(err, &body) {
		return ""
	}
	t := reflect.TypeOf(body)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
