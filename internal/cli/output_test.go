package cli

import (
	"strings"
	"testing"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

// TestTableRows: -o table aligns its columns, and a row ends with its last
// value: a change without a name (a Label, a VmNic, a _LabelToVm) has no
// trailing spaces.
func TestTableRows(t *testing.T) {
	var out strings.Builder
	p := newPrinter("table", &out)
	ev := func(rev, typ, id, action, newValue string) *models.ResourceChangeEvent {
		at := "2026-12-01T10:00:00.000Z"
		return &models.ResourceChangeEvent{Revision: &rev, ResourceType: &typ, ResourceID: &id, Action: &action, CreatedAt: &at, NewValue: &newValue}
	}
	for _, e := range []*models.ResourceChangeEvent{
		ev("1", "Vm", "vm-1", "INSERT", `{"name":"web-1"}`),
		ev("2", "VmNic", "nic-1", "UPDATE", `{"vlan":{"id":"v"}}`),
		ev("3", "_LabelToVm", "", "DELETE", `{}`),
	} {
		if err := p.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	at := shortTime("2026-12-01T10:00:00.000Z") // in local time
	want := "REVISION  TYPE        ID                         ACTION  TIME                 NAME\n" +
		"1         Vm          vm-1                       INSERT  " + at + "  web-1\n" +
		"2         VmNic       nic-1                      UPDATE  " + at + "\n" +
		"3         _LabelToVm                             DELETE  " + at + "\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", strings.ReplaceAll(got, " \n", "·\n"), want)
	}
}
