package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/towerwatch/towerwatch/source/cloudtower"
)

// The library's errors say what happened; what to do about it, in
// ctwatch's flags, is said here, once.

// flagHint adds to an error the flags that fix it.
func flagHint(err error) error {
	if h := hint(err); h != "" {
		return fmt.Errorf("%w\n(%s: %s)", err, Name, h)
	}
	return err
}

const resumeNote = "; with --checkpoint, running again resumes where this run stopped"

func hint(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		verify    *tls.CertificateVerificationError
		hostname  x509.HostnameError
		dns       *net.DNSError
		ae        *cloudtower.APIError
	)
	switch {
	case errors.As(err, &hostname):
		return "the server's certificate does not name this host: give --server the name it was issued for"
	case errors.As(err, &unknownCA) || errors.As(err, &verify):
		return "the server's certificate is not trusted: give the CA certificate with --ca-file FILE or CLOUDTOWER_CA_FILE"
	case errors.As(err, &dns):
		return "the host name does not resolve: check --server"
	case errors.Is(err, cloudtower.ErrUnsupported):
		return "no resource-change API here: check --server (a URL may give the base path, default " + cloudtower.DefaultBasePath + "), or upgrade CloudTower"
	case errors.Is(err, cloudtower.ErrUnauthorized):
		if !errors.As(err, &ae) || ae.Op != "GET /resource-changes" {
			return "login refused: check --username, --password and --user-source, or --token (CLOUDTOWER_USERNAME, CLOUDTOWER_PASSWORD, CLOUDTOWER_TOKEN)"
		}
		return unauthorizedHint(ae.Credentials) + resumeNote
	case errors.Is(err, cloudtower.ErrBadRequest):
		return "check --types (model names such as Vm, Host, VmVolume, _LabelToVm), --action (INSERT, UPDATE, DELETE), --resource-id and the start revision"
	}
	return ""
}

// unauthorizedHint says which flags to set when GET /resource-changes was
// refused with creds.
func unauthorizedHint(creds cloudtower.Credentials) string {
	switch creds {
	case cloudtower.CredentialsAPI:
		return "the server refused the API credentials: check --api-username and --api-password (CLOUDTOWER_API_USERNAME, CLOUDTOWER_API_PASSWORD)"
	case cloudtower.CredentialsToken:
		return "the server refused the login token on the resource-change feed, which CloudTower secures with HTTP Basic: set --api-username and --api-password (CLOUDTOWER_API_USERNAME, CLOUDTOWER_API_PASSWORD); or the token expired: check --username, --password or --token"
	}
	return "set --api-username and --api-password (CLOUDTOWER_API_USERNAME, CLOUDTOWER_API_PASSWORD), or check --username, --password and --token"
}
