package cloudtower

import (
	"testing"

	"github.com/towerwatch/towerwatch/stream"
)

func TestLastRevision(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // "" for no hint
	}{
		{`{"data":[{"revision":"7","new_value":"{}"},{"revision":"12","new_value":"{\"revision\":\"99\"}"}],"currentRevision":"20","compactRevision":""}`, "12"},
		{`{"data":[{"new_value":"{\"revision\":\"99\"}","revision":"0012"}],"currentRevision":"20"}`, "12"},
		{`{"data":[],"currentRevision":"20","compactRevision":"3"}`, ""},
		{`{"data":[{"revision":"12a"}]}`, ""},
		{`{"data":[{"revision":"`, ""},
		{`{"data":[{"revision":"123`, ""},
		{`{"data":[{"revision":""}]}`, ""},
		{``, ""},
	} {
		rev, ok := lastRevision([]byte(tc.body))
		if ok != (tc.want != "") || (ok && rev != stream.MustParseRevision(tc.want)) {
			t.Errorf("lastRevision(%s) = %v, %v; want %q", tc.body, rev, ok, tc.want)
		}
	}
}
