package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// An intermediate CA's pair: tls.crt holds the leaf and the intermediate,
// ca.crt the root alone, and openssl verify — trusting the root only —
// builds the path from what tls.crt carries (before, "unable to get local
// issuer certificate").
func TestCertIntermediateChain(t *testing.T) {
	needOpenSSL(t)
	rootCrt, rootKey := makeCA(t, "Root CA")
	dir := t.TempDir()
	interKey, interCSR, interCrt := filepath.Join(dir, "i.key"), filepath.Join(dir, "i.csr"), filepath.Join(dir, "i.crt")
	ext := filepath.Join(dir, "ext")
	os.WriteFile(ext, []byte("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"), 0o644)
	openssl(t, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", interKey, "-out", interCSR, "-subj", "/CN=Intermediate CA")
	openssl(t, "x509", "-req", "-in", interCSR, "-CA", rootCrt, "-CAkey", rootKey, "-CAcreateserial", "-out", interCrt, "-days", "30", "-extfile", ext)
	bundle := filepath.Join(dir, "ca-bundle.crt")
	os.WriteFile(bundle, append(mustRead(t, interCrt), mustRead(t, rootCrt)...), 0o644)
	out := filepath.Join(dir, "out")
	args := []string{"--out", out, "--dns", "svc.example", "--ca-cert", bundle, "--ca-key", interKey}
	run(t, nil, args...).MustExit(t, 0, "issued")
	if got, want := string(mustRead(t, filepath.Join(out, "ca.crt"))), string(mustRead(t, rootCrt)); got != want {
		t.Fatalf("ca.crt is not the root alone:\n%s", got)
	}
	crts, err := parseCerts(mustRead(t, filepath.Join(out, "tls.crt")))
	if err != nil || len(crts) != 2 || crts[1].Subject.CommonName != "Intermediate CA" {
		t.Fatalf("tls.crt: %d certificates (%v), want the leaf and the intermediate", len(crts), err)
	}
	tlsCrt := filepath.Join(out, "tls.crt")
	if v := openssl(t, "verify", "-CAfile", filepath.Join(out, "ca.crt"), "-untrusted", tlsCrt, tlsCrt); !strings.Contains(v, ": OK") {
		t.Fatalf("openssl verify: %s", v)
	}
	// A real handshake: the server sends what tls.crt holds, the client
	// trusts the root only.
	addr := sServer(t, out, "-cert_chain", tlsCrt)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool(t, filepath.Join(out, "ca.crt")), ServerName: "svc.example"})
	if err != nil {
		t.Fatalf("a client trusting the root only: %v", err)
	}
	c.Close()
	run(t, nil, args...).MustExit(t, 0, "unchanged")
}

// writeCA writes a self-signed ECDSA CA valid from nb to na.
func writeCA(t *testing.T, nb, na time.Time) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Dated CA"}, NotBefore: nb, NotAfter: na,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	crt, k := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600)
	return crt, k
}

// A CA that has expired, or is not valid yet, signs nothing: exit 1
// naming its validity — on the first run and on every later one.
func TestCertCAValidity(t *testing.T) {
	now := time.Now()
	for name, c := range map[string]struct {
		nb, na time.Time
		want   string
	}{
		"expired": {now.Add(-48 * time.Hour), now.Add(-time.Hour), "expired at"},
		"not yet": {now.Add(time.Hour), now.Add(48 * time.Hour), "is not valid until"},
	} {
		t.Run(name, func(t *testing.T) {
			crt, key := writeCA(t, c.nb, c.na)
			out := filepath.Join(t.TempDir(), "out")
			run(t, nil, "--out", out, "--dns", "a.example", "--ca-cert", crt, "--ca-key", key).MustExit(t, 1, c.want)
			if _, err := os.Lstat(filepath.Join(out, "tls.crt")); err == nil {
				t.Fatal("a pair was issued")
			}
		})
	}
	// A pair issued while the CA was valid is not "unchanged" once it has
	// expired: the run fails, naming why.
	crt, key := writeCA(t, now.Add(-time.Hour), now.Add(3*time.Second))
	out := filepath.Join(t.TempDir(), "out")
	run(t, nil, "--out", out, "--dns", "a.example", "--ca-cert", crt, "--ca-key", key).MustExit(t, 0, "issued")
	time.Sleep(time.Until(now.Add(4 * time.Second)))
	run(t, nil, "--out", out, "--dns", "a.example", "--ca-cert", crt, "--ca-key", key).MustExit(t, 1, "expired at")
}

// Never an empty DN (Java reads neither the certificate nor a store
// holding it), and never a common name over X.509's 64 characters.
func TestCertSubjects(t *testing.T) {
	needOpenSSL(t)
	long := strings.Repeat("a", 60) + ".svc.example.org" // 76 characters
	for name, c := range map[string]struct {
		args    []string
		subject string
	}{
		"an IP alone":        {[]string{"--ip", "10.1.2.3"}, "CN = 10.1.2.3"},
		"a long DNS name":    {[]string{"--dns", long}, "O = initbox"},
		"long, then a short": {[]string{"--dns", long, "--dns", "short.example"}, "CN = short.example"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			run(t, nil, append([]string{"--out", out}, c.args...)...).MustExit(t, 0, "issued")
			crt := filepath.Join(out, "tls.crt")
			if s := openssl(t, "x509", "-noout", "-subject", "-issuer", "-in", crt); !strings.Contains(s, "subject="+c.subject) || !strings.Contains(s, "issuer="+c.subject) {
				t.Fatalf("openssl: %s", s)
			}
			if _, err := exec.LookPath("keytool"); err == nil {
				keytool(t, "-printcert", "-file", crt)
			}
		})
	}
	run(t, nil, "--out", filepath.Join(t.TempDir(), "o"), "--dns", "a.example", "--cn", long).MustExit(t, 2, "more than X.509's 64")
}

// Names from the environment are host names (no wildcard), and every
// name made from them fits; --out may not be a link.
func TestCertBadInputs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	env := map[string]string{"POD_IP": "10.0.0.1", "POD_NAME": "*.evil", "POD_NAMESPACE": "ns"}
	run(t, env, "--out", out, "--pod-sans").MustExit(t, 2, `POD_NAME "*.evil": a wildcard`)
	env["POD_NAME"] = "web-0"
	env["POD_NAMESPACE"] = strings.Repeat("n", 63) + "." + strings.Repeat("m", 63) + "." + strings.Repeat("o", 63)
	run(t, env, "--out", out, "--pod-sans", "--service", "web", "--cluster-domain", strings.Repeat("c", 50)).MustExit(t, 2, "made from POD_NAME, --service, POD_NAMESPACE and --cluster-domain: not a DNS name")
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink("real", filepath.Join(dir, "link"))
	run(t, nil, "--out", filepath.Join(dir, "link"), "--dns", "a.example").MustExit(t, 2, "is a symbolic link")
}

// A keystore whose mode was widened is written again, 0600.
func TestCertKeystoreMode(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("store-pw"), 0o600)
	ks := filepath.Join(dir, "ks.p12")
	args := []string{"--out", filepath.Join(dir, "out"), "--dns", "a.example", "--keystore", ks, "--store-password-file", pw}
	run(t, nil, args...).MustExit(t, 0, "msg=wrote keystore="+ks)
	run(t, nil, args...).MustExit(t, 0, "msg=unchanged keystore="+ks)
	os.Chmod(ks, 0o644)
	run(t, nil, args...).MustExit(t, 0, "msg=wrote keystore="+ks)
	if fi, _ := os.Stat(ks); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the keystore is %v", fi.Mode().Perm())
	}
}

// Two runs on one --out at once, 20 times over: one issues, the other
// waits and finds the pair right; never a dangling ..data, and the key
// always matches the certificate.
func TestCertConcurrentRuns(t *testing.T) {
	bin := testenv.Binary(t)
	for round := 0; round < 20; round++ {
		out := filepath.Join(t.TempDir(), "out")
		var wg sync.WaitGroup
		outs := make([][]byte, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = exec.Command(bin, "cert", "--out", out, "--dns", "a.example", "--termination-log", "").CombinedOutput()
			}()
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("round %d, run %d: %v\n%s", round, i, errs[i], outs[i])
			}
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(out, "tls.crt"), filepath.Join(out, "tls.key")); err != nil {
			t.Fatalf("round %d: the pair: %v", round, err)
		}
		if both := string(outs[0]) + string(outs[1]); strings.Count(both, "msg=issued") != 1 || strings.Count(both, "msg=unchanged") != 1 {
			t.Fatalf("round %d: want one issued and one unchanged:\n%s", round, both)
		}
	}
}
