// Package tlsconfig is the TLS flags applets share (--ca-file,
// --server-name, --insecure-skip-verify, --cert-file, --key-file) and the
// tls.Config they make.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/initbox/initbox/internal/cli"
)

// Options are the TLS flags.
type Options struct {
	CAFile     string
	ServerName string
	Insecure   bool
	// A client certificate and its key, read again at every handshake so
	// that a rotated Secret is used without a restart.
	CertFile, KeyFile string
}

// Flags registers --ca-file and --insecure-skip-verify, and --server-name
// when withServerName; prefix starts each usage ("tcp --tls, https: ").
func (o *Options) Flags(fs *cli.FlagSet, prefix string, withServerName bool) {
	o.FlagsFor(fs, prefix, prefix, withServerName)
}

// FlagsFor is Flags where the client certificate's flags apply to more
// clients (certPrefix) than the server's verification flags (prefix).
func (o *Options) FlagsFor(fs *cli.FlagSet, prefix, certPrefix string, withServerName bool) {
	o.VerifyFlags(fs, prefix, withServerName)
	o.CertFlags(fs, certPrefix)
}

// VerifyFlags registers the flags of how the server is verified.
func (o *Options) VerifyFlags(fs *cli.FlagSet, prefix string, withServerName bool) {
	fs.String(&o.CAFile, "ca-file", "", prefix+"trust the CA certificates in `FILE` (PEM) instead of the system's")
	if withServerName {
		fs.String(&o.ServerName, "server-name", "", prefix+"verify the certificate for `NAME` instead of the host")
	}
	fs.Bool(&o.Insecure, "insecure-skip-verify", prefix+"do not verify the server's certificate (unsafe)")
}

// CertFlags registers the flags of the client certificate.
func (o *Options) CertFlags(fs *cli.FlagSet, certPrefix string) {
	fs.String(&o.CertFile, "cert-file", "", certPrefix+"present the client certificate in `FILE` (PEM; re-read at every connection)")
	fs.String(&o.KeyFile, "key-file", "", certPrefix+"the client certificate's private key, in `FILE` (PEM)")
}

// Config builds a verifying tls.Config (TLS 1.2 or later) for host, unless
// the flags say otherwise. An unreadable or empty CA file is an error.
func (o *Options) Config(host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
	if o.ServerName != "" {
		cfg.ServerName = o.ServerName
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if get, err := o.ClientCertificate(); err != nil {
		return nil, err
	} else if get != nil {
		cfg.GetClientCertificate = get
	}
	return cfg, nil
}

// ClientCertificate is nil without --cert-file, and otherwise what
// tls.Config.GetClientCertificate should be: the pair read from the files
// at every handshake (a Secret's files change in place when it is
// rotated). The pair must load now: a bad one is bad input.
func (o *Options) ClientCertificate() (func(*tls.CertificateRequestInfo) (*tls.Certificate, error), error) {
	switch {
	case o.CertFile == "" && o.KeyFile == "":
		return nil, nil
	case o.CertFile == "" || o.KeyFile == "":
		return nil, errors.New("--cert-file and --key-file go together")
	}
	load := func() (*tls.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("the client certificate (--cert-file %s, --key-file %s): %v", o.CertFile, o.KeyFile, err)
		}
		return &pair, nil
	}
	if _, err := load(); err != nil {
		return nil, err
	}
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return load() }, nil
}

// Downgrade refuses a redirect to plain http once any hop of the chain has
// been https — not only the first URL: http → https → http would otherwise
// send the request (and its headers) in the clear after TLS was promised.
// It returns nil for an allowed hop, else an error naming the target
// (shown through show, which masks credentials).
func Downgrade(req *http.Request, via []*http.Request, show func(string) string) error {
	if req.URL.Scheme == "https" {
		return nil
	}
	for _, v := range via {
		if v.URL.Scheme == "https" {
			return &DowngradeError{To: show(req.URL.String())}
		}
	}
	return nil
}

// DowngradeError is a refused https → http redirect.
type DowngradeError struct{ To string }

func (e *DowngradeError) Error() string {
	return "refused a redirect from https to plain http (" + e.To + ")"
}
