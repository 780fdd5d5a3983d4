package fakeserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// Serve generated changes on loopback and read one page with plain
// net/http, with the API credentials as HTTP Basic as CloudTower's spec
// wants; then log in and list VMs with the token, as every other route
// wants.
func Example() {
	s := fakeserver.New(fakeserver.Config{Seed: 1})
	defer s.Close()
	base := s.StartHTTP() // for the SDK: Host s.Host(), BasePath fakeserver.BasePath, scheme "http"
	s.Generate(250)

	req, _ := http.NewRequest("GET", base+fakeserver.ResourceChangesPath+"?start_revision=0&limit=5", nil)
	req.SetBasicAuth(s.APIUsername(), s.APIPassword()) // "watcher", "watcher"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	var page struct {
		Data []struct {
			Revision     string  `json:"revision"`
			PrevRevision *string `json:"prev_revision"`
			Action       string  `json:"action"`
			ResourceType string  `json:"resource_type"`
		} `json:"data"`
		CurrentRevision string `json:"currentRevision"`
		CompactRevision string `json:"compactRevision"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil {
		panic(err)
	}
	for _, e := range page.Data {
		prev := "-" // the resource's first change
		if e.PrevRevision != nil {
			prev = *e.PrevRevision
		}
		fmt.Println(e.Revision, prev, e.Action, e.ResourceType)
	}
	fmt.Println("current", page.CurrentRevision, "compact", page.CompactRevision)

	resp, err = http.Post(base+fakeserver.LoginPath, "application/json",
		strings.NewReader(`{"username":"admin","password":"admin","source":"LOCAL"}`))
	if err != nil {
		panic(err)
	}
	var login struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil {
		panic(err)
	}
	req, _ = http.NewRequest("POST", base+fakeserver.ListPath(fakeserver.TypeVM), strings.NewReader(`{"first":3,"orderBy":"id_ASC"}`))
	req.Header.Set("Authorization", login.Data.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var vms []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vms); err != nil {
		panic(err)
	}
	fmt.Println(len(s.Resources(fakeserver.TypeVM)), "VMs, the first three:", vms)
	// Output:
	// 1 - INSERT Cluster
	// 2 - INSERT VmVolume
	// 3 - INSERT Host
	// 4 3 UPDATE Host
	// 5 - INSERT Label
	// current 250 compact 0
	// 20 VMs, the first three: [{vm-k8s-node-000006 RUNNING} {vm-cache-000007 RUNNING} {vm-ci-runner-000008 STOPPED}]
}

// Serve in memory, with a scripted fault, and show the wire format.
func ExampleServer_Transport() {
	s := fakeserver.New(fakeserver.Config{DisableAuth: true})
	defer s.Close()
	s.Append(fakeserver.Event{
		Action:       fakeserver.ActionInsert,
		ResourceType: fakeserver.TypeVM,
		ResourceID:   "clx0h1h3k0001qwe8r7t6y5u4",
		NewValue:     `{"name":"web-1","status":"RUNNING"}`,
		CreatedAt:    time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC),
	})
	s.InjectFaults(fakeserver.Fault503)

	c := s.Client()
	for range 2 {
		resp, err := c.Get("http://" + fakeserver.MemoryHost + fakeserver.ResourceChangesPath + "?start_revision=0")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.ContentLength == int64(len(body)))
		fmt.Println(string(body))
	}
	// Output:
	// 503 true
	// {"message":"Service Unavailable","path":"/v2/api/resource-changes","status":503,"code":"ServiceUnavailable"}
	// 200 true
	// {"data":[{"action":"INSERT","created_at":"2025-01-02T03:04:05.678Z","new_value":"{\"name\":\"web-1\",\"status\":\"RUNNING\"}","resource_id":"clx0h1h3k0001qwe8r7t6y5u4","resource_type":"Vm","revision":"1"}],"currentRevision":"1","compactRevision":"0","ec":"0","error":null}
}
