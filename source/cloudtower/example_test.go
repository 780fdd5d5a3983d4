package cloudtower_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// Watch VM and host changes, from the oldest change the server keeps. The
// fake server stands in for CloudTower; against a real one, give Dial its
// address and credentials (or a token) instead.
func Example() {
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	defer srv.Close()
	srv.Generate(50)
	srv.StartHTTP()

	ctx := context.Background()
	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: srv.Host(), Scheme: "http",
		Username: srv.Username(), Password: srv.Password(), APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cloudtower.CloseIdleConnections(c)

	src := cloudtower.New(c, cloudtower.ResourceTypes(fakeserver.TypeVM, fakeserver.TypeHost))
	n := 0
	for ev, err := range src.Watch(ctx, cloudtower.FromStart()) {
		if err != nil {
			fmt.Println("ended:", err) // see the package documentation's error table
			return
		}
		fmt.Println(*ev.ResourceType, *ev.Action)
		if n++; n == 3 {
			break // frees everything: the request in flight, the prefetch
		}
	}
	// Output:
	// Host INSERT
	// Host UPDATE
	// Vm INSERT
}

// A server without the resource-change API answers 404: the stream ends at
// once with ErrUnsupported, without retrying.
func Example_unsupported() {
	srv := fakeserver.New(fakeserver.Config{})
	defer srv.Close()
	srv.StartHTTP()
	srv.InjectFaults(fakeserver.Fault404)

	ctx := context.Background()
	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: srv.Host(), Scheme: "http", Token: srv.Token(), APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cloudtower.CloseIdleConnections(c)

	quiet := slog.New(slog.DiscardHandler)
	for _, err := range cloudtower.New(c).Watch(ctx, stream.Logger(quiet)) {
		var apiErr *cloudtower.APIError
		if errors.Is(err, cloudtower.ErrUnsupported) && errors.As(err, &apiErr) {
			fmt.Println("unsupported, HTTP", apiErr.Status)
		}
	}
	// Output:
	// unsupported, HTTP 404
}

// DecodeResponse decodes a recorded response body exactly as the SDK
// would, only faster.
func ExampleDecodeResponse() {
	body := []byte(`{"data":[{"action":"UPDATE","resource_type":"Vm","resource_id":"vm-1","revision":"42","new_value":"{\"name\":\"web-1\"}"}],"currentRevision":"42","compactRevision":"7"}`)
	resp, err := cloudtower.DecodeResponse(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := resp.Data[0]
	fmt.Println(*ev.Revision, *ev.Action, *ev.ResourceType, *ev.NewValue, "head", *resp.CurrentRevision)
	// Output:
	// 42 UPDATE Vm {"name":"web-1"} head 42
}

// A client not made by Dial (here the SDK's own runtime, sending the login
// token): the APICredentials option authenticates the polls with HTTP
// Basic, as CloudTower's resource-change feed wants, and BypassWhitelist
// adds the header some deployments require.
func ExampleAPICredentials() {
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	defer srv.Close()
	srv.Generate(20)

	rt := httptransport.NewWithClient(fakeserver.MemoryHost, fakeserver.BasePath, []string{"http"}, srv.Client())
	rt.DefaultAuthentication = httptransport.APIKeyAuth("Authorization", "header", srv.Token())
	c := client.New(rt, strfmt.Default)

	src := cloudtower.New(c,
		cloudtower.APICredentials(srv.APIUsername(), srv.APIPassword()),
		cloudtower.BypassWhitelist())
	n := 0
	for ev, err := range src.Watch(context.Background(), cloudtower.FromStart()) {
		if err != nil {
			fmt.Println("ended:", err)
			return
		}
		fmt.Println(*ev.Revision, *ev.Action)
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// 1 INSERT
	// 2 INSERT
}

// Validate reports what Dial would refuse, before anything is sent; the
// error wraps ErrConfig and stream.ErrInvalidOption.
func ExampleConfig_Validate() {
	err := cloudtower.Config{Host: "tower.example.com", APIUsername: "watcher"}.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, cloudtower.ErrConfig), errors.Is(err, stream.ErrInvalidOption))
	// Output:
	// invalid cloudtower config: APIUsername "watcher" has no APIPassword
	// true true
}
