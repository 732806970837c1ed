package image

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/testenv"
)

// TestSpec is the image of the binary built for the tests (testenv.BinaryFor),
// with the build machine's CA bundle, at a fixed epoch: what the image,
// runc and node suites build.
func TestSpec(t testing.TB) Spec {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		ca = "/etc/ssl/certs/ca-certificates.crt"
	} else {
		os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644)
	}
	return Spec{
		Binaries: map[string]string{"amd64": testenv.BinaryFor(t, "amd64"), "arm64": testenv.BinaryFor(t, "arm64")},
		Applets:  applets.Names(),
		CABundle: ca,
		Epoch:    time.Unix(1700000000, 0).UTC(),
		Version:  "v0.0.0-test",
		Revision: "0123456789abcdef",
		Source:   "https://github.com/initbox/initbox",
	}
}
