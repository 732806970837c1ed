package neterr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Verification errors made by crypto/x509 from real certificates read as
// one sentence each: no "x509: " left, nothing cut in the middle of a quote.
func TestTLSReasons(t *testing.T) {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	mk := func(tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	// A "CA" that may not sign certificates: the hint case.
	caKey := key()
	notCA := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not a CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	caCert := mk(notCA, notCA, &caKey.PublicKey, caKey)
	leafKey := key()
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "db"}, DNSNames: []string{"db"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	leaf := mk(leafTmpl, notCA, &leafKey.PublicKey, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	expired := mk(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "old"}, DNSNames: []string{"db"}, NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}, notCA, &leafKey.PublicKey, caKey)

	for _, c := range []struct {
		cert *x509.Certificate
		name string
		want string
	}{
		{leaf, "db", `TLS: certificate signed by unknown authority (possibly because of "invalid signature: parent certificate cannot sign this kind of certificate" while trying to verify candidate authority certificate "not a CA")`},
		{leaf, "other", `TLS: certificate is valid for db, not other`},
		{expired, "db", `TLS: certificate has expired or is not yet valid: current time`},
	} {
		_, err := c.cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.name})
		if err == nil {
			t.Fatal("verified")
		}
		got := Reason(err).Error()
		if !strings.HasPrefix(got, c.want) || strings.Contains(got, "x509: ") {
			t.Errorf("Reason(%q)\n= %q\nwant %q", err, got, c.want)
		}
	}
}
