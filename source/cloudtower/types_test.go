package cloudtower

import (
	"slices"
	"strings"
	"testing"
)

func TestSuggestResourceType(t *testing.T) {
	for _, row := range []struct{ in, want string }{
		{"VM", "Vm"}, {"vm", "Vm"}, {"VM_VOLUME", "VmVolume"}, {"vm_nic", "VmNic"}, {"HOST", "Host"},
		{"LABEL_TO_VM", "_LabelToVm"}, {"labeltovm", "_LabelToVm"},
		{"Vm", ""}, {"_LabelToVm", ""}, {"NoSuchType", ""}, {"", ""},
	} {
		got, ok := SuggestResourceType(row.in)
		if got != row.want || ok != (row.want != "") {
			t.Errorf("SuggestResourceType(%q) = %q, %v; want %q", row.in, got, ok, row.want)
		}
	}
	known := KnownResourceTypes()
	for _, want := range []string{"Vm", "Host", "Cluster", "VmVolume", "VmNic", "Label", "_LabelToVm", "Vds", "SecurityPolicy", "EverouteCluster"} {
		if !slices.Contains(known, want) {
			t.Errorf("KnownResourceTypes lacks %q", want)
		}
	}
	seen := map[string]bool{}
	for _, k := range known {
		if seen[foldType(k)] || strings.TrimSpace(k) != k {
			t.Errorf("KnownResourceTypes: %q is ambiguous or padded", k)
		}
		seen[foldType(k)] = true
	}
	known[0] = "changed"
	if KnownResourceTypes()[0] == "changed" {
		t.Error("KnownResourceTypes returns its own slice")
	}
}
