package waitfor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// pki is a CA, a server certificate for db.test and 127.0.0.1 signed by it,
// and two revocation lists: one revoking the server's certificate, one not.
type pki struct {
	caPEM, certPEM, keyPEM, crlRevoked, crlClean []byte
}

func makePKI(t *testing.T) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "db.test"}, DNSNames: []string{"db.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	crl := func(n int64, revoked ...int64) []byte {
		var entries []x509.RevocationListEntry
		for _, s := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: now.Add(-time.Minute)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour),
			RevokedCertificateEntries: entries}, ca, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	return pki{
		caPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		crlRevoked: crl(1, 7, 42),
		crlClean:   crl(2, 7),
	}
}

// Every libpq keyword, with values valid and invalid, is judged as psql
// (libpq) judges it: a DSN psql connects with is ready for initbox too, one
// psql refuses as invalid is bad input (exit 2), and one psql cannot connect
// with is not ready. The server takes TLS, so the TLS keywords are judged
// on a real handshake.
func TestPostgresKeywordsAgainstPsql(t *testing.T) {
	p := makePKI(t)
	srv := pgtest.StartTLS(t, p.certPEM, p.keyPEM)
	psql := srv.Tool("psql")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	ca := write("ca.crt", p.caPEM)
	revoked := write("revoked.crl", p.crlRevoked)
	clean := write("clean.crl", p.crlClean)
	// A CRL directory as openssl rehash makes it (HASH.r0), and one whose
	// file is not named so, which OpenSSL does not read.
	crlDir, badDir := filepath.Join(dir, "crls"), filepath.Join(dir, "badcrls")
	os.Mkdir(crlDir, 0o755)
	os.Mkdir(badDir, 0o755)
	hash, err := exec.Command("openssl", "crl", "-hash", "-noout", "-in", clean).Output()
	if err != nil {
		testenv.Skip(t, "openssl (Debian's openssl) is needed for the CRL directory's names: "+err.Error())
	}
	os.WriteFile(filepath.Join(crlDir, strings.TrimSpace(string(hash))+".r0"), p.crlClean, 0o644)
	os.WriteFile(filepath.Join(badDir, "clean.crl"), p.crlClean, 0o644)
	passfile := write("pgpass", []byte("*:*:*:postgres:"+pgtest.Password+"\n"))
	os.Chmod(passfile, 0o600)
	services := write("services", []byte("[svc]\ndbname=postgres\n"))
	t.Setenv("PGSERVICEFILE", services)
	port := strconv.Itoa(srv.Port)
	base := "host=127.0.0.1 port=" + port + " user=postgres password=" + pgtest.Password + " dbname=postgres"
	tlsBase := "host=db.test hostaddr=127.0.0.1 port=" + port + " user=postgres password=" + pgtest.Password + " dbname=postgres sslmode=verify-full sslrootcert=" + ca
	sock := "host=" + srv.Socket() + " port=" + port + " user=postgres dbname=postgres"

	cases := []string{
		// Each keyword of libpq 15, as PQconndefaults lists them.
		base + " service=svc",
		base + " user=postgres",
		base + " password=wrong",
		"host=127.0.0.1 port=" + port + " user=postgres dbname=postgres passfile=" + passfile,
		base + " channel_binding=prefer",
		base + " channel_binding=require sslmode=disable",
		base + " channel_binding=require sslmode=require",
		base + " connect_timeout=5",
		base + " dbname=postgres",
		base + " host=localhost",
		base + " hostaddr=127.0.0.1",
		"host=db.test hostaddr=127.0.0.1 port=" + port + " user=postgres password=" + pgtest.Password + " dbname=postgres",
		"hostaddr=127.0.0.1 port=" + port + " user=postgres password=" + pgtest.Password + " dbname=postgres",
		base + " hostaddr=not-an-address",
		base + " hostaddr=127.0.0.1,127.0.0.1",
		base + " port=" + port,
		base + " client_encoding=UTF8",
		base + " client_encoding=LATIN1",
		base + " client_encoding=NO_SUCH_ENCODING",
		base + " options='-c search_path=public'",
		base + " options='-c no_such_setting=1'",
		base + " application_name=initbox-test",
		base + " fallback_application_name=initbox-fb",
		base + " keepalives=1", base + " keepalives=0", base + " keepalives=yes",
		base + " keepalives_idle=30", base + " keepalives_idle=abc",
		base + " keepalives_interval=10",
		base + " keepalives_count=3", base + " keepalives_count=x",
		base + " tcp_user_timeout=1000", base + " tcp_user_timeout=1s",
		base + " sslmode=disable", base + " sslmode=allow", base + " sslmode=prefer", base + " sslmode=require",
		base + " sslmode=verify-ca sslrootcert=" + ca, base + " sslmode=nonsense",
		base + " sslcompression=0", base + " sslcompression=1",
		base + " sslcert=/nonexistent/client.crt sslkey=/nonexistent/client.key sslmode=disable",
		base + " sslpassword=x",
		base + " sslrootcert=" + ca + " sslmode=require",
		tlsBase,
		tlsBase + " sslcrl=" + clean,
		tlsBase + " sslcrl=" + revoked,
		tlsBase + " sslcrldir=" + crlDir,
		tlsBase + " sslcrldir=" + badDir,
		base + " sslsni=1", base + " sslsni=0",
		sock + " requirepeer=postgres", sock + " requirepeer=root",
		base + " ssl_min_protocol_version=TLSv1.2", base + " ssl_min_protocol_version=TLSv1.3 sslmode=require",
		base + " ssl_max_protocol_version=TLSv1.2 sslmode=require", base + " ssl_min_protocol_version=TLSv9",
		base + " ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
		base + " gssencmode=disable", base + " gssencmode=prefer", base + " gssencmode=sometimes",
		base + " krbsrvname=postgres",
		base + " gsslib=gssapi",
		base + " replication=database", base + " replication=true",
		base + " target_session_attrs=any", base + " target_session_attrs=read-write", base + " target_session_attrs=sometimes",
		// Not libpq keywords: psql refuses them, and so must initbox.
		base + " nosuchoption=1",
		base + " search_path=public",
		base + " timezone=UTC",
		// The URL form.
		"postgresql://postgres:" + pgtest.Password + "@127.0.0.1:" + port + "/postgres?keepalives=0&application_name=u",
		"postgresql://postgres:" + pgtest.Password + "@127.0.0.1:" + port + "/postgres?nosuchoption=1",
	}
	for _, dsn := range cases {
		name := strings.TrimPrefix(strings.TrimPrefix(dsn, base), " ")
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(psql, dsn, "-XAtqc", "SELECT 1")
			cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5", "LC_ALL=C")
			cmd.Dir = "/"
			out, err := cmd.CombinedOutput()
			psqlOK := err == nil && strings.TrimSpace(string(out)) == "1"
			invalid := !psqlOK && isInvalidOption(string(out))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r := testenv.Run(t, ctx, Applet, nil, "postgres", dsn, "--query", "SELECT 1", "--timeout", "3s", "--termination-log", "")
			switch {
			case psqlOK && r.Code != 0:
				t.Fatalf("psql connects, initbox exit %d:\n%s", r.Code, r.Stderr)
			case invalid && r.Code != 2:
				t.Fatalf("psql refuses the DSN (%s), initbox exit %d (want 2, bad input):\n%s", strings.TrimSpace(string(out)), r.Code, r.Stderr)
			case !psqlOK && r.Code == 0:
				t.Fatalf("psql fails (%s), initbox is ready", strings.TrimSpace(string(out)))
			}
			t.Logf("psql ok=%v invalid=%v: %s", psqlOK, invalid, strings.TrimSpace(string(out)))
		})
	}
}

// isInvalidOption: psql's message for a connection string libpq refuses
// before connecting.
func isInvalidOption(out string) bool {
	for _, s := range []string{"invalid connection option", "invalid integer value", "invalid sslmode value", "invalid gssencmode value",
		"invalid ssl_min_protocol_version value", "invalid ssl_max_protocol_version value", "invalid SSL protocol version range",
		"invalid target_session_attrs value", "could not parse network address", "could not match", "invalid channel_binding value",
		"invalid URI query parameter", "invalid sslcompression", "invalid keepalives"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
