// Package neterr shortens network errors to what a person needs to read in
// a log line or a termination message.
package neterr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/initbox/initbox/internal/resolve"
)

// Reason shortens a network error: "connection refused", "NXDOMAIN for
// db.default.svc.cluster.local, …", "timeout", "TLS: certificate signed by
// unknown authority".
func Reason(err error) error {
	if err == nil {
		return nil
	}
	var nf *resolve.NotFoundError
	if errors.As(err, &nf) {
		return nf
	}
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
		ae tls.AlertError
	)
	switch {
	case errors.As(err, &ua):
		return errors.New("TLS: " + x509Text(ua.Error()))
	case errors.As(err, &he):
		return errors.New("TLS: " + x509Text(he.Error()))
	case errors.As(err, &ci):
		return errors.New("TLS: " + x509Text(ci.Error()))
	case errors.As(err, &rh):
		return errors.New("TLS: the server did not answer with TLS")
	case errors.As(err, &ae):
		return errors.New("TLS: " + ae.Error())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timeout")
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// x509Text is a verification error's own text without crypto/x509's
// "x509: " prefixes — the leading one and the one inside a quoted hint
// ("…unknown authority (possibly because of "x509: invalid signature…"").
func x509Text(s string) string {
	return strings.ReplaceAll(strings.TrimPrefix(s, "x509: "), `"x509: `, `"`)
}
