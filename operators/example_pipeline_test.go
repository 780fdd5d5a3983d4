package operators_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// The pipeline of the README's "Composing pipelines" section, verbatim
// from here to the end of lastRevision: keep the two in sync.

// A Mirror keeps a local copy of CloudTower's VMs.
type Mirror interface {
	// Apply applies changes: the newest change of each VM, in revision order.
	Apply(changes []*models.ResourceChangeEvent) error
	// Relist replaces the copy with a full listing (the SDK's GetVms).
	Relist(ctx context.Context) error
}

// mirrorVMs keeps m up to date with the VM changes of src, applying them in
// batches, at most one change per VM per batch, each batch at most latency
// after its first change. It resumes where the last run stopped (store
// holds the revision of the last applied batch), survives network failures,
// and re-lists when the history it needed was compacted away.
func mirrorVMs(ctx context.Context, src *cloudtower.Source, store operators.CheckpointStore, m Mirror, latency time.Duration) error {
	// After the stored revision; on the first run, from the oldest change kept.
	after, err := operators.LoadAfter(ctx, store, stream.FromStart()) // errors.Is(err, operators.ErrCorruptCheckpoint): fix or delete the file
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the goroutines of CoalesceByKey and Batch, whatever ends the loop

	events := operators.Resume(ctx, src, // reopens after the last delivered revision on failure
		operators.WithStreamOptions(after),
		operators.OnCompaction(operators.Restart)) // a gap notice, then go on (default: fail)
	vms := operators.Filter(events, isVMChange)
	latest := operators.CoalesceByKey(ctx, vms, resourceID, latency)
	batches := operators.Batch(ctx, latest, 100, latency)
	for batch, err := range operators.Checkpoint(ctx, batches, store, lastRevision) {
		if errors.Is(err, operators.ErrGap) { // not final: changes were lost
			if err := m.Relist(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err // final; the checkpoint holds the last applied batch
		}
		if err := m.Apply(batch); err != nil {
			return err // this batch is not checkpointed: the next run applies it again
		}
	}
	return nil
}

func isVMChange(ev *models.ResourceChangeEvent) bool {
	return ev.ResourceType != nil && *ev.ResourceType == "Vm" // CloudTower's model name
}

func resourceID(ev *models.ResourceChangeEvent) string {
	if ev.ResourceID == nil {
		return ""
	}
	return *ev.ResourceID
}

// lastRevision is the revision of a batch: that of its last change
// (batches are never empty).
func lastRevision(batch []*models.ResourceChangeEvent) (stream.Revision, error) {
	return cloudtower.RevisionOf(batch[len(batch)-1])
}

// End of the README's code.

// vmSet is the example's Mirror: the ids of the VMs that exist. It cancels
// the run once it has applied the change with revision stopAt.
type vmSet struct {
	ids    map[string]bool
	stopAt string
	stop   context.CancelFunc
}

func (s *vmSet) Apply(changes []*models.ResourceChangeEvent) error {
	for _, ev := range changes {
		if *ev.Action == fakeserver.ActionDelete {
			delete(s.ids, *ev.ResourceID)
		} else {
			s.ids[*ev.ResourceID] = true
		}
		if *ev.Revision == s.stopAt {
			s.stop()
		}
	}
	return nil
}

func (s *vmSet) Relist(context.Context) error {
	return errors.New("the example's history is never compacted")
}

// vmsOnServer returns what a mirror should hold: the VMs that exist after
// every change, and the revision of the last VM change.
func vmsOnServer(srv *fakeserver.Server) (vms map[string]bool, last string) {
	vms = map[string]bool{}
	for _, ev := range srv.Events(0) {
		if ev.ResourceType != fakeserver.TypeVM {
			continue
		}
		if ev.Action == fakeserver.ActionDelete {
			delete(vms, ev.ResourceID)
		} else {
			vms[ev.ResourceID] = true
		}
		last = fmt.Sprint(ev.Revision)
	}
	return vms, last
}

// Mirror CloudTower's VMs with a pipeline of operators: filter the VM
// changes, keep the newest change per VM, batch, checkpoint. The second
// run resumes after the first one's checkpoint.
func Example_composingPipelines() {
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	defer srv.Close()
	srv.StartHTTP()
	c, err := cloudtower.Dial(context.Background(), cloudtower.Config{
		Host: srv.Host(), Scheme: "http", Username: srv.Username(), Password: srv.Password(), APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(),
	})
	if err != nil {
		panic(err)
	}
	defer cloudtower.CloseIdleConnections(c)
	src := cloudtower.New(c)

	dir, err := os.MkdirTemp("", "pipeline-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := operators.NewFileStore(filepath.Join(dir, "vms.checkpoint"))
	mirror := &vmSet{ids: map[string]bool{}}

	for _, changes := range []int{300, 200} {
		srv.Generate(changes)
		want, last := vmsOnServer(srv)
		// A run stops (as a shutdown would) once the last VM change so
		// far is applied.
		ctx, cancel := context.WithCancel(context.Background())
		mirror.stopAt, mirror.stop = last, cancel
		err := mirrorVMs(ctx, src, store, mirror, 20*time.Millisecond)
		cancel()
		checkpoint, _ := store.Load(context.Background())
		fmt.Printf("stopped: %v; %d VMs, same as the server's: %v; checkpoint %s\n",
			errors.Is(err, context.Canceled), len(mirror.ids), equalSets(mirror.ids, want), checkpoint)
	}
	// Output:
	// stopped: true; 24 VMs, same as the server's: true; checkpoint 300
	// stopped: true; 41 VMs, same as the server's: true; checkpoint 499
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
