package wire_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/jetstream/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestToken(t *testing.T) {
	for in, want := range map[string]string{"Vm": "Vm", "VmVolume": "VmVolume", "_LabelToVm": "_LabelToVm", "INSERT": "INSERT", "": "_", "a.b c*>": "a_b_c__", "é": "__"} {
		if got := wire.Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	for _, p := range []string{"", "a..b", "a.*", ">", "a b"} {
		if wire.ValidPrefix(p) == nil {
			t.Errorf("ValidPrefix(%q) accepted", p)
		}
	}
}

func TestCloudTowerRoundTrip(t *testing.T) {
	s := func(v string) *string { return &v }
	ev := &models.ResourceChangeEvent{Revision: s("42"), PrevRevision: s("41"), ResourceType: s("Vm"), ResourceID: s("cl1"),
		Action: s("UPDATE"), NewValue: s(`{"name":"a"}`)}
	m, err := wire.CloudTower{}.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Vm.UPDATE" || m.Header.Get(wire.HeaderResourceID) != "cl1" || m.Header.Get(wire.HeaderAction) != "UPDATE" {
		t.Fatalf("encoded %s %v", m.Subject, m.Header)
	}
	got, err := wire.CloudTower{}.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got.Revision, *got.ResourceID, *got.NewValue) != fmt.Sprint(*ev.Revision, *ev.ResourceID, *ev.NewValue) || got.OldValue != nil {
		t.Fatalf("decoded %+v", got)
	}
	// Without a revision in the body, the header's.
	h := nats.Header{wire.HeaderRevision: []string{"7"}}
	got, err = wire.CloudTower{}.Decode(wire.Message{Header: h, Data: []byte(`{"action":"DELETE"}`)})
	if err != nil || *got.Revision != "7" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, err := (wire.CloudTower{}).Decode(wire.Message{Data: []byte(`{`)}); !errors.Is(err, wire.ErrMessage) {
		t.Fatalf("bad body: %v", err)
	}
	if _, err := wire.RevisionHeader(nats.Header{wire.HeaderRevision: []string{"x"}}); !errors.Is(err, wire.ErrMessage) {
		t.Fatalf("bad header: %v", err)
	}
}
