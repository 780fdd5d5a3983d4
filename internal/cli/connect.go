package cli

import (
	"context"
	"strings"

	"github.com/towerwatch/towerwatch/source/cloudtower"
)

// connection is the cloudtower.Config of the flags for a real server (not
// --demo): the login (--username and --password, or --token), the API
// credentials for the resource-change feed (--api-username and
// --api-password), the headers and TLS. A password missing for a user name
// is prompted for on a terminal.
func (r *runner) connection(ctx context.Context) (cloudtower.Config, error) {
	cfg := r.cfg
	cc := cloudtower.Config{
		Host: cfg.Server, Username: cfg.Username, Password: cfg.Password, UserSource: cfg.UserSource,
		Token: cfg.Token, APIUsername: cfg.APIUsername, APIPassword: cfg.APIPassword,
		Headers: cfg.Headers.Clone(), BypassWhitelist: cfg.BypassWhitelist,
		CAFile: cfg.CAFile, InsecureSkipVerify: cfg.InsecureSkipVerify, Timeout: cfg.Timeout,
	}
	if cc.Host == "" {
		return cc, UsageError("no server: set --server or CLOUDTOWER_SERVER (or try --demo)")
	}
	if cc.Token == "" && cc.Username == "" && cc.APIUsername == "" {
		return cc, UsageError("no credentials: set --api-username and --api-password for the resource-change feed, and --username and --password (or --token) for the login (or CLOUDTOWER_API_USERNAME, CLOUDTOWER_API_PASSWORD, CLOUDTOWER_USERNAME, CLOUDTOWER_PASSWORD, CLOUDTOWER_TOKEN)")
	}
	if cc.Token == "" && cc.Username != "" && cc.Password == "" {
		pw, err := r.promptPassword(ctx, cc.Username, "Password", "no password for %s: set CLOUDTOWER_PASSWORD (or --password), or use --token")
		if err != nil {
			return cc, err
		}
		cc.Password = pw
	}
	if cc.APIUsername != "" && cc.APIPassword == "" {
		pw, err := r.promptPassword(ctx, cc.APIUsername, "API password", "no API password for %s: set CLOUDTOWER_API_PASSWORD (or --api-password)")
		if err != nil {
			return cc, err
		}
		cc.APIPassword = pw
	}
	if cc.InsecureSkipVerify {
		cfg.Warnf("--insecure-skip-verify: the server's TLS certificate is not verified: anyone on the network path can read the credentials and the changes; use --ca-file instead")
	}
	return cc, nil
}

// redactHeaderFlag hides the value of a --header NAME=VALUE whose name
// looks secret (Authorization, Cookie, anything naming a token, key,
// secret, password, session or credential), for commands ctwatch prints.
func redactHeaderFlag(v string) string {
	name, _, ok := strings.Cut(v, "=")
	n := strings.ToLower(name)
	for _, w := range []string{"auth", "cookie", "token", "key", "secret", "pass", "session", "credential", "signature"} {
		if ok && strings.Contains(n, w) {
			return name + "=<redacted>"
		}
	}
	return v
}
