package natstest

import (
	"context"
	"testing"
	"time"

	sdkclient "github.com/smartxworks/cloudtower-go-sdk/v2/client"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// CloudTower starts a fake CloudTower on loopback HTTP with n generated
// changes (revisions 1..n, seed 1), logs in to it (the API credentials
// for the resource changes, HTTP Basic) and returns both. The
// server is closed and the client's connections are released when the
// test ends.
func CloudTower(tb testing.TB, n int) (*fakeserver.Server, *sdkclient.Cloudtower) {
	tb.Helper()
	fake := fakeserver.New(fakeserver.Config{Seed: 1})
	fake.Generate(n)
	fake.StartHTTP()
	tb.Cleanup(fake.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: fake.Host(), Scheme: "http", Username: fake.Username(), Password: fake.Password(), APIUsername: fake.APIUsername(), APIPassword: fake.APIPassword(),
		Timeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(func() { cloudtower.CloseIdleConnections(c) })
	return fake, c
}
