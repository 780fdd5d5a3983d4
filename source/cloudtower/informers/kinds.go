package informers

import (
	"context"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/cluster"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/host"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/label"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm_volume"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

// The resource types of the ready-made kinds, as CloudTower spells them in
// the change feed's resource_type.
const (
	TypeVM       = "Vm"
	TypeHost     = "Host"
	TypeCluster  = "Cluster"
	TypeVMVolume = "VmVolume"
	TypeLabel    = "Label"
)

// Query is one list request of a Kind: a page of at most First objects
// after skipping Skip, ordered by id ascending; with ID set, only the
// object with that id (for RefetchByID).
type Query struct {
	Skip, First int32
	ID          string
}

// Kind describes a CloudTower resource type for New: its type name in the
// change feed, how to list it, and how to read an object's id. V is the
// SDK model, such as *models.VM.
type Kind[V any] struct {
	// Type is the resource type in the change feed, such as "Vm".
	Type string
	// List runs one list request through the SDK's get-* operation for
	// the type, with the login token (the client's default
	// authentication): orderBy id_ASC, first, skip, and where id when
	// q.ID is set. It returns the SDK's error as is.
	List func(ctx context.Context, c *client.Cloudtower, q Query) ([]V, error)
	// ID returns an object's id ("" if it has none).
	ID func(obj V) string
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func where(q Query) *string {
	if q.ID == "" {
		return nil
	}
	return &q.ID
}

// VMKind returns the Kind of the virtual machines (POST /get-vms).
func VMKind() Kind[*models.VM] {
	return Kind[*models.VM]{
		Type: TypeVM,
		ID:   func(v *models.VM) string { return str(v.ID) },
		List: func(ctx context.Context, c *client.Cloudtower, q Query) ([]*models.VM, error) {
			body := &models.GetVmsRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.VMOrderByInputIDASC.Pointer()}
			if id := where(q); id != nil {
				body.Where = &models.VMWhereInput{ID: id}
			}
			resp, err := c.VM.GetVms(vm.NewGetVmsParams().WithContext(ctx).WithRequestBody(body))
			if err != nil {
				return nil, err
			}
			return resp.Payload, nil
		},
	}
}

// HostKind returns the Kind of the hosts (POST /get-hosts).
func HostKind() Kind[*models.Host] {
	return Kind[*models.Host]{
		Type: TypeHost,
		ID:   func(v *models.Host) string { return str(v.ID) },
		List: func(ctx context.Context, c *client.Cloudtower, q Query) ([]*models.Host, error) {
			body := &models.GetHostsRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.HostOrderByInputIDASC.Pointer()}
			if id := where(q); id != nil {
				body.Where = &models.HostWhereInput{ID: id}
			}
			resp, err := c.Host.GetHosts(host.NewGetHostsParams().WithContext(ctx).WithRequestBody(body))
			if err != nil {
				return nil, err
			}
			return resp.Payload, nil
		},
	}
}

// ClusterKind returns the Kind of the clusters (POST /get-clusters).
func ClusterKind() Kind[*models.Cluster] {
	return Kind[*models.Cluster]{
		Type: TypeCluster,
		ID:   func(v *models.Cluster) string { return str(v.ID) },
		List: func(ctx context.Context, c *client.Cloudtower, q Query) ([]*models.Cluster, error) {
			body := &models.GetClustersRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.ClusterOrderByInputIDASC.Pointer()}
			if id := where(q); id != nil {
				body.Where = &models.ClusterWhereInput{ID: id}
			}
			resp, err := c.Cluster.GetClusters(cluster.NewGetClustersParams().WithContext(ctx).WithRequestBody(body))
			if err != nil {
				return nil, err
			}
			return resp.Payload, nil
		},
	}
}

// VMVolumeKind returns the Kind of the virtual machine volumes (POST /get-vm-volumes).
func VMVolumeKind() Kind[*models.VMVolume] {
	return Kind[*models.VMVolume]{
		Type: TypeVMVolume,
		ID:   func(v *models.VMVolume) string { return str(v.ID) },
		List: func(ctx context.Context, c *client.Cloudtower, q Query) ([]*models.VMVolume, error) {
			body := &models.GetVMVolumesRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.VMVolumeOrderByInputIDASC.Pointer()}
			if id := where(q); id != nil {
				body.Where = &models.VMVolumeWhereInput{ID: id}
			}
			resp, err := c.VMVolume.GetVMVolumes(vm_volume.NewGetVMVolumesParams().WithContext(ctx).WithRequestBody(body))
			if err != nil {
				return nil, err
			}
			return resp.Payload, nil
		},
	}
}

// LabelKind returns the Kind of the labels (POST /get-labels).
func LabelKind() Kind[*models.Label] {
	return Kind[*models.Label]{
		Type: TypeLabel,
		ID:   func(v *models.Label) string { return str(v.ID) },
		List: func(ctx context.Context, c *client.Cloudtower, q Query) ([]*models.Label, error) {
			body := &models.GetLabelsRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.LabelOrderByInputIDASC.Pointer()}
			if id := where(q); id != nil {
				body.Where = &models.LabelWhereInput{ID: id}
			}
			resp, err := c.Label.GetLabels(label.NewGetLabelsParams().WithContext(ctx).WithRequestBody(body))
			if err != nil {
				return nil, err
			}
			return resp.Payload, nil
		},
	}
}
