package waitfor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/initbox/initbox/internal/cli"
)

// tlsOptions are the TLS flags shared by tcp --tls and https.
type tlsOptions struct {
	enabled    bool
	caFile     string
	serverName string
	insecure   bool
}

func (t *tlsOptions) flags(fs *cli.FlagSet) {
	fs.Bool(&t.enabled, "tls", "tcp: also complete a verified TLS handshake")
	fs.String(&t.caFile, "ca-file", "", "tcp --tls, https: trust the CA certificates in `FILE` (PEM) instead of the system's")
	fs.String(&t.serverName, "server-name", "", "tcp --tls, https: verify the certificate for `NAME` instead of the host")
	fs.Bool(&t.insecure, "insecure-skip-verify", "tcp --tls, https: do not verify the server's certificate (unsafe)")
}

// config builds the tls.Config, verifying by default; host is the name to
// verify when --server-name is not given.
func (t *tlsOptions) config(host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.insecure}
	if t.serverName != "" {
		cfg.ServerName = t.serverName
	}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading --ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", t.caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
