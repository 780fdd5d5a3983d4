package cloudtower

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// generatedPage returns a page of n generated changes as the fake server
// sends it.
func generatedPage(t testing.TB, n int) []byte {
	t.Helper()
	srv := fakeserver.New(fakeserver.Config{Seed: 7, DisableAuth: true})
	t.Cleanup(srv.Close)
	srv.Generate(n)
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s%s/resource-changes?start_revision=0&limit=%d", fakeserver.MemoryHost, fakeserver.BasePath, n), nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("page: %d %v", resp.StatusCode, err)
	}
	return body
}

var decodeCases = map[string]string{
	"empty body":       ``,
	"empty object":     `{}`,
	"whitespace":       " \t\r\n{ \"data\" : [ ] , \"ec\" : \"0\" } \n",
	"plain":            `{"data":[{"action":"UPDATE","created_at":"2026-11-25T10:00:00.000Z","new_value":"{\"name\":\"vm-1\"}","old_value":null,"prev_revision":"41","resource_id":"ck1","resource_type":"Vm","revision":"42"}],"currentRevision":"42","compactRevision":"7","ec":"0","error":null}`,
	"null data":        `{"data":null,"currentRevision":null}`,
	"empty event":      `{"data":[{}]}`,
	"no revision":      `{"data":[{"action":"INSERT"}]}`,
	"all escapes":      `{"data":[{"new_value":"\"\\\/\b\f\n\r\t end"}]}`,
	"unicode escape":   `{"data":[{"new_value":"caf\u00e9 \ud83d\ude00 \ud800"}]}`,
	"utf8":             `{"data":[{"new_value":"虚拟机-1 ✓","resource_id":"é"}]}`,
	"invalid utf8":     "{\"data\":[{\"new_value\":\"a\xffb\"}]}",
	"control char":     "{\"data\":[{\"new_value\":\"a\x01b\"}]}",
	"unknown key":      `{"data":[{"revision":"1","extra":{"a":[1,2]}}],"more":true}`,
	"key case":         `{"Data":[{"Revision":"1"}]}`,
	"duplicate key":    `{"data":[{"revision":"1","revision":"2"}],"data":[]}`,
	"error object":     `{"data":[],"error":{"code":1.50,"msg":"x"}}`,
	"number revision":  `{"data":[{"revision":42}]}`,
	"null element":     `{"data":[null]}`,
	"trailing data":    `{"data":[]} {"x":1}`,
	"trailing garbage": `{"data":[]}xyz`,
	"truncated":        `{"data":[{"revision":"1"`,
	"truncated escape": `{"data":[{"revision":"1\`,
	"bad literal":      `{"data":nul}`,
	"array body":       `[]`,
	"html":             `<html>bad gateway</html>`,
	"trailing comma":   `{"data":[],}`,
	"escaped key":      `{"d\u0061ta":[]}`,
}

// checkAgainstSDK asserts that DecodeResponse gives what the SDK's own
// decoding gives, and that the fast path, when it accepts the input,
// agrees too.
func checkAgainstSDK(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	want, wantErr := decodeSlowPath(b)
	got, gotErr := DecodeResponse(b)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeResponse(%q)\n= %#v, %v\nwant %#v, %v", b, got, gotErr, want, wantErr)
	}
	f, err := decodeFastPath(b)
	if err != nil {
		return false
	}
	if wantErr != nil || !reflect.DeepEqual(f, want) {
		t.Fatalf("fast path accepted %q\n= %#v\nbut the SDK gives %#v, %v", b, f, want, wantErr)
	}
	return true
}

func TestDecodeResponse(t *testing.T) {
	fastWanted := map[string]bool{"empty object": true, "whitespace": true, "plain": true, "null data": true,
		"empty event": true, "no revision": true, "all escapes": true, "utf8": true}
	for name, body := range decodeCases {
		t.Run(name, func(t *testing.T) {
			if fast := checkAgainstSDK(t, []byte(body)); fast != fastWanted[name] {
				t.Errorf("fast path taken: %v, want %v", fast, fastWanted[name])
			}
		})
	}
}

// TestDecodeGeneratedPage checks that the fake server's pages, with their
// escaped JSON values, take the fast path and decode as the SDK decodes
// them.
func TestDecodeGeneratedPage(t *testing.T) {
	page := generatedPage(t, 200)
	if !checkAgainstSDK(t, page) {
		t.Fatal("a generated page did not take the fast path")
	}
	resp, _ := DecodeResponse(page)
	if len(resp.Data) != 200 || *resp.Data[199].Revision != "200" {
		t.Fatalf("decoded %d events", len(resp.Data))
	}
}

// TestDecodeEventsIndependent checks that events do not share strings
// with each other or with the input buffer.
func TestDecodeEventsIndependent(t *testing.T) {
	body := []byte(decodeCases["plain"])
	resp, err := DecodeResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	clear(body)
	if got := *resp.Data[0].ResourceID; got != "ck1" {
		t.Fatalf("resource id after clearing the input = %q", got)
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, body := range decodeCases {
		f.Add([]byte(body))
	}
	f.Add(generatedPage(f, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgainstSDK(t, b)
	})
}

var eventCases = []string{
	``, `null`, `{}`, ` {"revision":"1"} `, `{"revision":"1"} x`, `{"revision":1}`, `[]`,
	`{"action":"UPDATE","new_value":"{\"a\":\"\u00e9\"}","revision":"42"}`,
	`{"action":"UPDATE","new_value":"{\"a\":1}","old_value":null,"revision":"42","resource_id":"vm-1"}`,
}

// checkEventAgainstJSON asserts that DecodeEvent gives what json.Unmarshal
// gives.
func checkEventAgainstJSON(t *testing.T, b []byte) {
	t.Helper()
	want := new(models.ResourceChangeEvent)
	wantErr := json.Unmarshal(b, want)
	got, gotErr := DecodeEvent(b)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || (wantErr == nil && !reflect.DeepEqual(got, want)) {
		t.Fatalf("DecodeEvent(%q)\n= %#v, %v\nwant %#v, %v", b, got, gotErr, want, wantErr)
	}
}

func TestDecodeEvent(t *testing.T) {
	for _, c := range eventCases {
		checkEventAgainstJSON(t, []byte(c))
	}
	for _, c := range decodeCases { // whole responses are not events: same errors or values
		checkEventAgainstJSON(t, []byte(c))
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, c := range eventCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkEventAgainstJSON(t, b) })
}

func BenchmarkDecodeResponse(b *testing.B) {
	page := generatedPage(b, 1000)
	for _, impl := range []struct {
		name   string
		decode func([]byte) (any, error)
	}{
		{"towerwatch", func(b []byte) (any, error) { return DecodeResponse(b) }},
		{"sdk", func(b []byte) (any, error) { return decodeSlowPath(b) }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				if _, err := impl.decode(page); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
		})
	}
}
