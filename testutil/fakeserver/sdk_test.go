package fakeserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	oaerrors "github.com/go-openapi/errors"
	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	sdk "github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/cluster"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/host"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/label"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm_nic"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm_volume"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

// validator is what the SDK's models implement.
type validator interface {
	Validate(strfmt.Registry) error
}

// validationErrors flattens the SDK's validation error tree.
func validationErrors(err error) []*oaerrors.Validation {
	var out []*oaerrors.Validation
	var walk func(error)
	walk = func(err error) {
		var ce *oaerrors.CompositeError
		var ve *oaerrors.Validation
		switch {
		case err == nil:
		case errors.As(err, &ce):
			for _, e := range ce.Errors {
				walk(e)
			}
		case errors.As(err, &ve):
			out = append(out, ve)
		default:
			out = append(out, &oaerrors.Validation{Name: err.Error()})
		}
	}
	walk(err)
	return out
}

// relation is the object of a relation type such as TypeLabelToVM.
type relation struct {
	ID *string `json:"id"`
	A  *string `json:"A"`
	B  *string `json:"B"`
}

// decodeModel decodes v into the SDK model of type typ, checks its key
// fields, and returns it.
func decodeModel(t *testing.T, typ, id, v string) any {
	t.Helper()
	var m any
	switch typ {
	case TypeVM:
		m = new(models.VM)
	case TypeHost:
		m = new(models.Host)
	case TypeCluster:
		m = new(models.Cluster)
	case TypeVMVolume:
		m = new(models.VMVolume)
	case TypeVMNic:
		m = new(models.VMNic)
	case TypeLabel:
		m = new(models.Label)
	case TypeLabelToVM:
		m = new(relation)
	default:
		t.Fatalf("type %q", typ)
	}
	if err := json.Unmarshal([]byte(v), m); err != nil {
		t.Fatalf("%s %s: %v\n%s", typ, id, err, v)
	}
	set := func(p *string) bool { return p != nil && *p != "" }
	ok := true
	switch m := m.(type) {
	case *models.VM:
		ok = set(m.ID) && *m.ID == id && set(m.Name) && m.Status != nil && m.Vcpu != nil && m.Memory != nil &&
			m.Cluster != nil && set(m.Cluster.ID) && set(m.Cluster.Name) &&
			m.Host != nil && set(m.Host.ID) && set(m.Host.Name) && set(m.Host.ManagementIP) && m.CPU != nil && m.Ha != nil
	case *models.Host:
		ok = set(m.ID) && *m.ID == id && set(m.Name) && m.Status != nil && m.State != nil &&
			m.Cluster != nil && set(m.Cluster.ID) && set(m.ManagementIP) && m.TotalMemoryBytes != nil
	case *models.Cluster:
		ok = set(m.ID) && *m.ID == id && set(m.Name) && m.ConnectState != nil && m.Type != nil && set(m.Version)
	case *models.VMVolume:
		ok = set(m.ID) && *m.ID == id && set(m.Name) && m.Cluster != nil && set(m.Cluster.ID) && m.Size != nil && m.ElfStoragePolicy != nil
	case *models.VMNic:
		ok = set(m.ID) && *m.ID == id && m.VM != nil && set(m.VM.ID) && set(m.VM.Name) && set(m.MacAddress) && m.Model != nil
	case *models.Label:
		ok = set(m.ID) && *m.ID == id && set(m.Key) && m.Value != nil && set(m.CreatedAt)
	case *relation:
		ok = set(m.ID) && *m.ID == id && set(m.A) && set(m.B)
	}
	if !ok {
		t.Fatalf("%s %s: key fields missing in %s", typ, id, v)
	}
	if val, isModel := m.(validator); isModel {
		// Every field present is valid (enums, formats); fields the
		// model requires but the generator leaves out are all we allow.
		for _, e := range validationErrors(val.Validate(strfmt.Default)) {
			if e.Code() != oaerrors.RequiredFailCode {
				t.Fatalf("%s %s: %v\n%s", typ, id, e, v)
			}
		}
	}
	return m
}

// TestGeneratedValuesDecodeAsSDKModels decodes every generated new_value
// and old_value into the SDK's model of its type.
func TestGeneratedValuesDecodeAsSDKModels(t *testing.T) {
	s := New(Config{Seed: 11})
	defer s.Close()
	s.Generate(5000)
	live := map[string]bool{} // ids of live labels and VMs
	n := map[string]int{}
	for _, e := range s.Events(0) {
		if e.NewValue != "" {
			decodeModel(t, e.ResourceType, e.ResourceID, e.NewValue)
		}
		if e.OldValue != "" {
			decodeModel(t, e.ResourceType, e.ResourceID, e.OldValue)
		}
		switch e.Action {
		case ActionInsert:
			if e.ResourceType == TypeLabelToVM {
				r := decodeModel(t, e.ResourceType, e.ResourceID, e.NewValue).(*relation)
				if !live[*r.A] || !live[*r.B] {
					t.Fatalf("rev %d: relation %s between resources that are not live", e.Revision, e.NewValue)
				}
			}
			live[e.ResourceID] = true
		case ActionDelete:
			delete(live, e.ResourceID)
		}
		n[e.ResourceType]++
	}
	for _, typ := range ResourceTypes() {
		if n[typ] == 0 {
			t.Errorf("no %s", typ)
		}
	}
}

// sdkClient returns the SDK's client of s through hc at host, with the
// token as its default authentication.
func sdkClient(s *Server, host string, hc *http.Client) *sdk.Cloudtower {
	rt := httptransport.NewWithClient(host, BasePath, []string{"http"}, hc)
	rt.DefaultAuthentication = httptransport.APIKeyAuth("Authorization", "header", s.Token())
	return sdk.New(rt, strfmt.Default)
}

var sdkTransports = []struct {
	name  string
	start func(t *testing.T, s *Server) *sdk.Cloudtower
}{
	{"loopback", func(t *testing.T, s *Server) *sdk.Cloudtower {
		s.StartHTTP()
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		return sdkClient(s, s.Host(), &http.Client{Transport: tr})
	}},
	{"memory", func(t *testing.T, s *Server) *sdk.Cloudtower {
		return sdkClient(s, MemoryHost, s.Client())
	}},
}

func ids[T any](items []T, id func(T) *string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = *id(it)
	}
	return out
}

func resourceIDs(rs []Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// TestListsThroughSDK lists every type through the SDK's own client, over
// loopback HTTP and in memory.
func TestListsThroughSDK(t *testing.T) {
	for _, tr := range sdkTransports {
		t.Run(tr.name, func(t *testing.T) {
			s := New(Config{Seed: 2})
			defer s.Close()
			s.Generate(3000)
			c := tr.start(t, s)
			ctx := context.Background()

			all := resourceIDs(s.Resources(TypeVM))
			if len(all) < 20 {
				t.Fatalf("only %d VMs", len(all))
			}
			vms, err := c.VM.GetVms(vm.NewGetVmsParamsWithContext(ctx).WithRequestBody(&models.GetVmsRequestBody{}))
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(vms.Payload, func(v *models.VM) *string { return v.ID }); !slices.Equal(got, all) {
				t.Fatalf("GetVms: %d VMs, want %d", len(got), len(all))
			}
			for _, v := range vms.Payload {
				r, _ := s.Resource(TypeVM, *v.ID)
				decodeModel(t, TypeVM, *v.ID, r.JSON)
				if v.Name == nil || v.Status == nil || v.Cluster == nil {
					t.Fatalf("VM decoded without name, status or cluster: %+v", v)
				}
			}
			list := func(body *models.GetVmsRequestBody) []string {
				t.Helper()
				vms, err := c.VM.GetVms(vm.NewGetVmsParamsWithContext(ctx).WithRequestBody(body))
				if err != nil {
					t.Fatal(err)
				}
				return ids(vms.Payload, func(v *models.VM) *string { return v.ID })
			}
			desc := slices.Clone(all)
			slices.Reverse(desc)
			for name, tc := range map[string]struct {
				body *models.GetVmsRequestBody
				want []string
			}{
				"id":        {&models.GetVmsRequestBody{Where: &models.VMWhereInput{ID: &all[3]}}, all[3:4]},
				"id_in":     {&models.GetVmsRequestBody{Where: &models.VMWhereInput{IDIn: []string{all[7], all[1], "nope"}}}, []string{all[1], all[7]}},
				"id_not_in": {&models.GetVmsRequestBody{Where: &models.VMWhereInput{IDNotIn: all[1:]}}, all[:1]},
				"first":     {&models.GetVmsRequestBody{First: ptr[int32](5)}, all[:5]},
				"skip":      {&models.GetVmsRequestBody{First: ptr[int32](5), Skip: ptr[int32](10)}, all[10:15]},
				"skip all":  {&models.GetVmsRequestBody{Skip: ptr(int32(len(all) + 5))}, []string{}},
				"desc":      {&models.GetVmsRequestBody{OrderBy: ptr(models.VMOrderByInputIDDESC), First: ptr[int32](3)}, desc[:3]},
				"asc":       {&models.GetVmsRequestBody{OrderBy: ptr(models.VMOrderByInputIDASC)}, all},
				"no match":  {&models.GetVmsRequestBody{Where: &models.VMWhereInput{ID: ptr("nope")}}, []string{}},
			} {
				if got := list(tc.body); !slices.Equal(got, tc.want) {
					t.Errorf("%s: %v, want %v", name, got, tc.want)
				}
			}
			// Unsupported queries are refused, not silently ignored.
			for name, body := range map[string]*models.GetVmsRequestBody{
				"name":           {Where: &models.VMWhereInput{Name: ptr("x")}},
				"order":          {OrderBy: ptr(models.VMOrderByInputNameASC)},
				"after":          {After: ptr("x")},
				"negative first": {First: ptr[int32](-1)},
			} {
				_, err := c.VM.GetVms(vm.NewGetVmsParamsWithContext(ctx).WithRequestBody(body))
				var bad *vm.GetVmsBadRequest
				if !errors.As(err, &bad) {
					t.Errorf("%s: %v, want a 400", name, err)
				}
			}

			// The other types.
			hosts, err := c.Host.GetHosts(host.NewGetHostsParamsWithContext(ctx).WithRequestBody(&models.GetHostsRequestBody{}))
			if err != nil || !slices.Equal(ids(hosts.Payload, func(v *models.Host) *string { return v.ID }), resourceIDs(s.Resources(TypeHost))) {
				t.Errorf("GetHosts: %v", err)
			}
			clusters, err := c.Cluster.GetClusters(cluster.NewGetClustersParamsWithContext(ctx).WithRequestBody(&models.GetClustersRequestBody{}))
			if err != nil || !slices.Equal(ids(clusters.Payload, func(v *models.Cluster) *string { return v.ID }), resourceIDs(s.Resources(TypeCluster))) {
				t.Errorf("GetClusters: %v", err)
			}
			vols, err := c.VMVolume.GetVMVolumes(vm_volume.NewGetVMVolumesParamsWithContext(ctx).WithRequestBody(&models.GetVMVolumesRequestBody{}))
			if err != nil || !slices.Equal(ids(vols.Payload, func(v *models.VMVolume) *string { return v.ID }), resourceIDs(s.Resources(TypeVMVolume))) {
				t.Errorf("GetVMVolumes: %v", err)
			}
			nics, err := c.VMNic.GetVMNics(vm_nic.NewGetVMNicsParamsWithContext(ctx).WithRequestBody(&models.GetVMNicsRequestBody{}))
			if err != nil || !slices.Equal(ids(nics.Payload, func(v *models.VMNic) *string { return v.ID }), resourceIDs(s.Resources(TypeVMNic))) {
				t.Errorf("GetVMNics: %v", err)
			}
			labels, err := c.Label.GetLabels(label.NewGetLabelsParamsWithContext(ctx).WithRequestBody(&models.GetLabelsRequestBody{
				Where: &models.LabelWhereInput{IDIn: resourceIDs(s.Resources(TypeLabel))[:2]},
			}))
			if err != nil || !slices.Equal(ids(labels.Payload, func(v *models.Label) *string { return v.ID }), resourceIDs(s.Resources(TypeLabel))[:2]) {
				t.Errorf("GetLabels: %v", err)
			}
			if st := s.Stats(); st.Lists != 19 || st.ResourceChanges != 0 {
				t.Errorf("stats %+v", st)
			}

			// The lists want the token; the resource changes, Basic.
			_, err = c.VM.GetVms(vm.NewGetVmsParamsWithContext(ctx), func(op *runtime.ClientOperation) {
				op.AuthInfo = httptransport.BasicAuth(s.APIUsername(), s.APIPassword())
			})
			var api *runtime.APIError
			if !errors.As(err, &api) || api.Code != 401 {
				t.Errorf("GetVms with Basic: %v", err)
			}
			rc := resource_change.NewGetResourceChangesParamsWithContext(ctx).WithStartRevision(ptr("0"))
			if _, err := c.ResourceChange.GetResourceChanges(rc); err == nil {
				t.Error("resource changes with the token: accepted")
			}
			basic := func(op *runtime.ClientOperation) {
				op.AuthInfo = httptransport.BasicAuth(s.APIUsername(), s.APIPassword())
			}
			page, err := c.ResourceChange.GetResourceChanges(rc, basic)
			if err != nil || len(page.Payload.Data) != DefaultLimit {
				t.Fatalf("resource changes with Basic: %v", err)
			}
			for _, e := range page.Payload.Data {
				if *e.Revision == "1" && e.PrevRevision != nil {
					t.Errorf("first change with prev_revision %q", *e.PrevRevision)
				}
			}
		})
	}
}

// TestStateFromAppend checks that hand-appended events update the state,
// and that the state outlives compaction and retention.
func TestStateFromAppend(t *testing.T) {
	s := New(Config{Retention: 3})
	defer s.Close()
	s.Append(
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "b", NewValue: `{"id":"b","name":"vm-b"}`},
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "a", NewValue: `{"id":"a","name":"vm-a"}`},
		Event{Action: ActionUpdate, ResourceType: TypeVM, ResourceID: "b", OldValue: `{"id":"b","name":"vm-b"}`, NewValue: ` {"id":"b","name":"vm-b2"}`},
		Event{Action: ActionUpdate, ResourceType: TypeVM, ResourceID: "c", NewValue: `{"id":"c"}`},     // an update of an unknown resource: stored
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "d", NewValue: `not json`},       // not stored
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "e", NewValue: `[1]`},            // not an object
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "f", NewValue: `{"id":"f"`},      // truncated
		Event{Action: "CREATE", ResourceType: TypeVM, ResourceID: "g", NewValue: `{"id":"g"}`},         // unknown action
		Event{Action: ActionInsert, ResourceType: TypeVM, NewValue: `{"id":"h"}`},                      // no id
		Event{Action: ActionInsert, ResourceType: TypeHost, ResourceID: "a", NewValue: `{"id":"a"}`},   // another type
		Event{Action: ActionDelete, ResourceType: TypeVM, ResourceID: "c", OldValue: `{"id":"c"}`},     // deleted
		Event{Action: ActionDelete, ResourceType: TypeVM, ResourceID: "zzz", OldValue: `{"id":"zzz"}`}, // unknown: nothing
	)
	if s.Len() != 3 || s.CompactRevision() != 9 {
		t.Fatalf("len %d compact %d", s.Len(), s.CompactRevision())
	}
	got := s.Resources(TypeVM)
	want := []Resource{
		{Type: TypeVM, ID: "a", JSON: `{"id":"a","name":"vm-a"}`, Revision: 2},
		{Type: TypeVM, ID: "b", JSON: ` {"id":"b","name":"vm-b2"}`, Revision: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Vm state %+v", got)
	}
	if r, ok := s.Resource(TypeHost, "a"); !ok || r.Revision != 10 {
		t.Errorf("Host a: %+v %v", r, ok)
	}
	if _, ok := s.Resource(TypeVM, "c"); ok {
		t.Error("deleted VM c is still there")
	}
	if rs := s.Resources("Nothing"); rs == nil || len(rs) != 0 {
		t.Errorf("unknown type: %#v", rs)
	}
	s.Compact(s.Head())
	if got := s.Resources(TypeVM); !slices.Equal(got, want) {
		t.Errorf("after compaction: %+v", got)
	}
	// The list endpoint serves it as a JSON array.
	c := memClient(t, s)
	r := c.do(context.Background(), "POST", ListPath(TypeVM), `{"orderBy":"id_DESC"}`, map[string]string{"Authorization": s.Token()})
	if r.err != nil || r.resp.StatusCode != 200 || string(r.body) != `[ {"id":"b","name":"vm-b2"},{"id":"a","name":"vm-a"}]` {
		t.Errorf("list: %v %d %s", r.err, r.resp.StatusCode, r.body)
	}
	checkHeaders(t, r, contentJSON)
	if ListPath(TypeLabelToVM) != "" || ListPath(TypeVMNic) != BasePath+"/get-vm-nics" {
		t.Errorf("ListPath: %q %q", ListPath(TypeLabelToVM), ListPath(TypeVMNic))
	}
	for _, body := range []string{`not json`, `{"where":{"name":"x"}}`, `{"first":-1}`, `{"skip":-1}`, `{"last":1}`, `{"orderBy":"name_ASC"}`} {
		checkError(t, c.do(context.Background(), "POST", ListPath(TypeVM), body, map[string]string{"Authorization": s.Token()}), 400, ListPath(TypeVM))
	}
	if r := c.do(context.Background(), "GET", ListPath(TypeVM), "", map[string]string{"Authorization": s.Token()}); r.resp.StatusCode != 404 {
		t.Errorf("GET of a list: %d", r.resp.StatusCode)
	}
}
