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
	case errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return errors.New("TLS: " + lastPart(err.Error()))
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

func lastPart(s string) string {
	if i := strings.LastIndex(s, "x509: "); i >= 0 {
		return s[i+len("x509: "):]
	}
	return s
}
