package cloudtower

import (
	"bytes"
	"testing"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

var encodeStrings = []string{
	"", "plain", `{"name":"vm-1","labels":[]}`, "a\\b", "<b>&amp;</b>", "\b\f\n\r\t\x00\x01\x1f\x7f",
	"虚拟机 ✓", "bad \xff utf8 \xe4\xb8", "\u2028\u2029", "\ufffd",
}

// checkEncode asserts that EncodeEvent gives exactly what the SDK gives.
func checkEncode(t *testing.T, ev *models.ResourceChangeEvent) {
	t.Helper()
	want, wantErr := ev.MarshalJSON()
	got, err := EncodeEvent(ev)
	if err != nil || wantErr != nil || !bytes.Equal(got, want) {
		t.Fatalf("EncodeEvent(%+v)\n= %s, %v\nwant %s, %v", ev, got, err, want, wantErr)
	}
}

func TestEncodeEvent(t *testing.T) {
	checkEncode(t, &models.ResourceChangeEvent{})
	for _, s := range encodeStrings {
		s := s
		checkEncode(t, &models.ResourceChangeEvent{NewValue: &s})
		checkEncode(t, &models.ResourceChangeEvent{Action: &s, Revision: &s, OldValue: &s})
	}
	resp, err := DecodeResponse(generatedPage(t, 50))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range resp.Data {
		checkEncode(t, ev)
	}
	null := &models.ResourceChangeEvent{MarshalOpts: &models.ResourceChangeEventMarshalOpts{Action_Explicit_Null_When_Empty: true}}
	checkEncode(t, null)
	if _, err := EncodeEvent(nil); err == nil {
		t.Fatal("EncodeEvent(nil) did not fail")
	}
}

func FuzzEncodeEvent(f *testing.F) {
	for _, s := range encodeStrings {
		f.Add(s, "Vm", "42")
	}
	f.Fuzz(func(t *testing.T, value, typ, rev string) {
		checkEncode(t, &models.ResourceChangeEvent{NewValue: &value, ResourceType: &typ, Revision: &rev, OldValue: &value})
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	resp, err := DecodeResponse(generatedPage(b, 1000))
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name   string
		encode func(*models.ResourceChangeEvent) ([]byte, error)
	}{
		{"towerwatch", EncodeEvent},
		{"sdk", func(ev *models.ResourceChangeEvent) ([]byte, error) { return ev.MarshalJSON() }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := impl.encode(resp.Data[i%len(resp.Data)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
