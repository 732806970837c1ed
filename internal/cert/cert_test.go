package cert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

func run(t *testing.T, env map[string]string, args ...string) testenv.Result {
	t.Helper()
	r := testenv.Run(t, context.Background(), Applet, env, args...)
	if strings.Contains(r.Stderr, "PRIVATE KEY") || strings.Contains(r.Stderr, "s3cr3t-store-pw") {
		t.Fatalf("key material or the store password in the output:\n%s", r.Stderr)
	}
	return r
}

func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		testenv.Skip(t, "Debian's openssl is needed: "+err.Error())
	}
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeCA makes a CA with openssl itself (an RSA one: a CA's key type need
// not be the leaf's) and returns its cert and key files.
func makeCA(t *testing.T, name string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN="+name,
		"-days", "365", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return crt, key
}

// sans is what openssl x509 -ext subjectAltName shows, as a sorted list
// in the forms "DNS:name" and "IP Address:ip".
func sans(t *testing.T, crt string) []string {
	t.Helper()
	out := openssl(t, "x509", "-noout", "-ext", "subjectAltName", "-in", crt)
	_, list, ok := strings.Cut(out, "\n")
	if !ok {
		t.Fatalf("no subjectAltName: %s", out)
	}
	var got []string
	for _, s := range strings.Split(strings.TrimSpace(list), ",") {
		got = append(got, strings.TrimSpace(s))
	}
	sort.Strings(got)
	return got
}

// sServer runs openssl s_server with the pair on a free port until the
// test ends; extra are more s_server flags.
func sServer(t *testing.T, dir string, extra ...string) string {
	testenv.RealServer(t, "openssl s_server")
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"s_server", "-accept", addr, "-cert", filepath.Join(dir, "tls.crt"), "-key", filepath.Join(dir, "tls.key"), "-quiet"}, extra...)
	cmd := exec.Command("openssl", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if i > 100 {
			t.Fatalf("openssl s_server did not listen: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

// Every key type, self-signed and signed by a CA openssl made: openssl
// verify accepts the leaf against ca.crt, openssl shows exactly the SANs
// asked for, and a real handshake — openssl s_server serving the pair, Go's
// client verifying it against ca.crt — succeeds for each name.
func TestCertAgainstOpenSSL(t *testing.T) {
	needOpenSSL(t)
	caCrt, caKey := makeCA(t, "initbox test CA")
	for _, kt := range keyTypes {
		for _, signed := range []bool{false, true} {
			name := kt.name + "/self-signed"
			if signed {
				name = kt.name + "/ca-signed"
			}
			t.Run(name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "certs")
				args := []string{"--out", dir, "--key-type", kt.name, "--dns", "db.example.test", "--dns", "*.db.example.test", "--ip", "127.0.0.1", "--ip", "::1"}
				if signed {
					args = append(args, "--ca-cert", caCrt, "--ca-key", caKey)
				}
				run(t, nil, args...).MustExit(t, 0, "msg=issued")
				crt, ca := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "ca.crt")
				if out := openssl(t, "verify", "-CAfile", ca, crt); !strings.Contains(out, ": OK") {
					t.Fatalf("openssl verify: %s", out)
				}
				if signed {
					if b1, b2 := mustRead(t, ca), mustRead(t, caCrt); !bytes.Equal(bytes.TrimSpace(b1), bytes.TrimSpace(b2)) {
						t.Fatal("ca.crt is not the CA given")
					}
				}
				want := []string{"DNS:*.db.example.test", "DNS:db.example.test", "IP Address:0:0:0:0:0:0:0:1", "IP Address:127.0.0.1"}
				if got := sans(t, crt); !slices.Equal(got, want) {
					t.Fatalf("SANs %q, want %q", got, want)
				}
				key := filepath.Join(dir, "tls.key")
				if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
					t.Fatalf("tls.key mode %v", fi.Mode())
				}
				if !bytes.HasPrefix(mustRead(t, key), []byte("-----BEGIN PRIVATE KEY-----")) {
					t.Fatal("tls.key is not PKCS#8 PEM")
				}
				openssl(t, "pkey", "-in", key, "-noout") // openssl reads the key
				addr := sServer(t, dir)
				roots := pool(t, ca)
				for _, sn := range []string{"db.example.test", "x.db.example.test", "127.0.0.1", "::1"} {
					c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: sn})
					if err != nil {
						t.Fatalf("handshake as %s: %v", sn, err)
					}
					c.Close()
				}
				if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "other.example.test"}); err == nil {
					c.Close()
					t.Fatal("a name not asked for verified")
				}
			})
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// --usage client: a server that requires a client certificate signed by
// the CA (openssl s_server -Verify, -verify_return_error) accepts the
// pair; without one, or with a server-usage pair, it refuses.
func TestCertClientAuth(t *testing.T) {
	needOpenSSL(t)
	caCrt, caKey := makeCA(t, "initbox client CA")
	srvDir, cliDir, wrongDir := filepath.Join(t.TempDir(), "s"), filepath.Join(t.TempDir(), "c"), filepath.Join(t.TempDir(), "w")
	run(t, nil, "--out", srvDir, "--dns", "server.test", "--ca-cert", caCrt, "--ca-key", caKey).MustExit(t, 0)
	run(t, nil, "--out", cliDir, "--cn", "app", "--dns", "app.test", "--usage", "client", "--ca-cert", caCrt, "--ca-key", caKey).MustExit(t, 0)
	run(t, nil, "--out", wrongDir, "--dns", "app.test", "--usage", "server", "--ca-cert", caCrt, "--ca-key", caKey).MustExit(t, 0)
	addr := sServer(t, srvDir, "-Verify", "1", "-verify_return_error", "-CAfile", caCrt, "-www")
	get := func(dir string) error {
		cfg := &tls.Config{RootCAs: pool(t, caCrt), ServerName: "server.test"}
		if dir != "" {
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.0 200")) {
			return fmt.Errorf("answered %q", buf[:n])
		}
		return nil
	}
	if err := get(cliDir); err != nil {
		t.Fatalf("the client certificate was refused: %v", err)
	}
	if err := get(""); err == nil {
		t.Fatal("the server took a client without a certificate: the test proves nothing")
	}
	if err := get(wrongDir); err == nil {
		t.Fatal("a server-usage certificate was accepted as a client's")
	}
}

// --pod-sans builds the StatefulSet names from the downward API.
func TestCertPodSANs(t *testing.T) {
	needOpenSSL(t)
	dir := filepath.Join(t.TempDir(), "certs")
	env := map[string]string{"POD_NAME": "web-0", "POD_NAMESPACE": "shop", "POD_IPS": "10.1.2.3,fd00::3", "POD_IP": "10.1.2.3"}
	run(t, env, "--out", dir, "--pod-sans", "--service", "web", "--cluster-domain", "k8s.example").MustExit(t, 0)
	want := []string{"DNS:web", "DNS:web-0", "DNS:web-0.web", "DNS:web-0.web.shop", "DNS:web-0.web.shop.svc", "DNS:web-0.web.shop.svc.k8s.example",
		"DNS:web.shop", "DNS:web.shop.svc", "DNS:web.shop.svc.k8s.example", "IP Address:10.1.2.3", "IP Address:FD00:0:0:0:0:0:0:3"}
	if got := sans(t, filepath.Join(dir, "tls.crt")); !slices.Equal(got, want) {
		t.Fatalf("SANs %q,\nwant %q", got, want)
	}
	if out := openssl(t, "x509", "-noout", "-subject", "-in", filepath.Join(dir, "tls.crt")); !strings.Contains(out, "CN = web-0.web") {
		t.Fatalf("subject %s", out)
	}
	run(t, map[string]string{"POD_NAME": "web-0", "POD_IP": "10.1.2.3", "POD_NAMESPACE": ""}, "--out", dir, "--pod-sans", "--service", "web").MustExit(t, 2, "POD_NAMESPACE is not set")
	run(t, map[string]string{"POD_NAME": "web-0", "POD_IP": "", "POD_IPS": ""}, "--out", dir, "--pod-sans").MustExit(t, 2, "POD_IP is not set")
}

// The stores against the real readers: keytool lists the truststore's
// system CAs plus the added one; openssl pkcs12 and keytool read the
// keystore's key and chain with the password.
func TestCertStoresAgainstKeytoolAndOpenSSL(t *testing.T) {
	needOpenSSL(t)
	if _, err := exec.LookPath("keytool"); err != nil {
		testenv.Skip(t, "Debian's openjdk-17-jre-headless (keytool) is needed: "+err.Error())
	}
	system := "/etc/ssl/certs/ca-certificates.crt"
	sys, err := readCerts(system, "system")
	if err != nil {
		testenv.Skip(t, "the system CA bundle (ca-certificates) is needed: "+err.Error())
	}
	nsys := len(dedup(sys))
	corpCrt, _ := makeCA(t, "Corp Root CA")
	caCrt, caKey := makeCA(t, "Issuing CA")
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cr3t-store-pw\n"), 0o600)
	ts, ks, bundle := filepath.Join(dir, "trust.p12"), filepath.Join(dir, "key.p12"), filepath.Join(dir, "bundle.pem")
	out := filepath.Join(dir, "certs")
	args := []string{"--out", out, "--dns", "app.test", "--ca-cert", caCrt, "--ca-key", caKey,
		"--truststore", ts, "--trust", corpCrt, "--keystore", ks, "--bundle", bundle, "--store-password-file", pw}
	run(t, nil, args...).MustExit(t, 0, "msg=wrote truststore=")
	list := keytool(t, "-list", "-keystore", ts, "-storetype", "PKCS12", "-storepass", "s3cr3t-store-pw")
	if want := fmt.Sprintf("Your keystore contains %d entries", nsys+1); !strings.Contains(list, want) {
		t.Fatalf("keytool: want %q:\n%.600s", want, list)
	}
	if n := strings.Count(list, "trustedCertEntry"); n != nsys+1 {
		t.Fatalf("keytool lists %d trusted certificates, want %d", n, nsys+1)
	}
	if v := keytool(t, "-list", "-v", "-keystore", ts, "-storetype", "PKCS12", "-storepass", "s3cr3t-store-pw"); !strings.Contains(v, "Owner: CN=Corp Root CA") {
		t.Fatal("keytool does not list the added CA")
	}
	if n := strings.Count(string(mustRead(t, bundle)), "BEGIN CERTIFICATE"); n != nsys+1 {
		t.Fatalf("the bundle holds %d certificates, want %d", n, nsys+1)
	}
	info := openssl(t, "pkcs12", "-info", "-in", ks, "-passin", "file:"+pw, "-nodes")
	for _, want := range []string{"BEGIN PRIVATE KEY", "subject=CN = app.test", "subject=CN = Issuing CA"} {
		if !strings.Contains(info, want) {
			t.Fatalf("openssl pkcs12 -info lacks %q:\n%s", want, info)
		}
	}
	if k := keytool(t, "-list", "-keystore", ks, "-storetype", "PKCS12", "-storepass", "s3cr3t-store-pw"); !strings.Contains(k, "PrivateKeyEntry") {
		t.Fatalf("keytool finds no key in the keystore:\n%s", k)
	}
	if fi, _ := os.Stat(ks); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the keystore's mode is %v", fi.Mode())
	}
	// Idempotent: the same call writes nothing (salts differ at every
	// write, so an unchanged store proves it was compared by content).
	before := mtimes(t, ts, ks, bundle, filepath.Join(out, "..data", "tls.key"))
	time.Sleep(20 * time.Millisecond)
	r := run(t, nil, args...)
	r.MustExit(t, 0, "msg=unchanged truststore="+ts, "msg=unchanged keystore="+ks, "msg=unchanged bundle="+bundle)
	if after := mtimes(t, ts, ks, bundle, filepath.Join(out, "..data", "tls.key")); !slices.Equal(before, after) {
		t.Fatal("an unchanged run rewrote a store")
	}
	// One more CA: the truststore and bundle are rewritten, the keystore not.
	other, _ := makeCA(t, "Other CA")
	run(t, nil, append(args, "--trust", other)...).MustExit(t, 0, "msg=wrote truststore="+ts, "msg=unchanged keystore="+ks, "msg=wrote bundle="+bundle)
	// A store-only call needs no --out; the wrong password is "not right".
	os.WriteFile(pw, []byte("another-pw"), 0o600)
	run(t, nil, "--truststore", ts, "--trust", corpCrt, "--system-cas", "", "--store-password-file", pw).MustExit(t, 0, "msg=wrote truststore="+ts+" certificates=1")
	if l := keytool(t, "-list", "-keystore", ts, "-storetype", "PKCS12", "-storepass", "another-pw"); !strings.Contains(l, "contains 1 entry") {
		t.Fatalf("keytool:\n%s", l)
	}
}

func keytool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("keytool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keytool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mtimes(t *testing.T, files ...string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fi.ModTime())
	}
	return out
}

// A kept pair is kept byte for byte; a changed name, another CA, a key type
// or a certificate inside the renewal window replace it whole.
func TestCertIdempotentAndReplacedWhole(t *testing.T) {
	needOpenSSL(t)
	caA, keyA := makeCA(t, "CA A")
	caB, keyB := makeCA(t, "CA B")
	dir := filepath.Join(t.TempDir(), "certs")
	base := []string{"--out", dir, "--dns", "a.test", "--ca-cert", caA, "--ca-key", keyA}
	run(t, nil, base...).MustExit(t, 0, "msg=issued")
	state := func() (string, []byte) {
		target, err := os.Readlink(filepath.Join(dir, "..data"))
		if err != nil {
			t.Fatal(err)
		}
		return target, mustRead(t, filepath.Join(dir, "tls.key"))
	}
	t0, k0 := state()
	run(t, nil, base...).MustExit(t, 0, "msg=unchanged")
	if t1, k1 := state(); t1 != t0 || !bytes.Equal(k1, k0) {
		t.Fatal("an unchanged run replaced the pair")
	}
	for _, c := range []struct {
		name string
		args []string
		why  string
	}{
		{"a name", []string{"--out", dir, "--dns", "b.test", "--ca-cert", caA, "--ca-key", keyA}, "the DNS names differ"},
		{"the CA", []string{"--out", dir, "--dns", "b.test", "--ca-cert", caB, "--ca-key", keyB}, "not signed by --ca-cert"},
		{"the key type", []string{"--out", dir, "--dns", "b.test", "--ca-cert", caB, "--ca-key", keyB, "--key-type", "ed25519"}, "not a ed25519 key"},
		{"the validity", []string{"--out", dir, "--dns", "b.test", "--ca-cert", caB, "--ca-key", keyB, "--key-type", "ed25519", "--validity", "2h"}, "the validity differs"},
		{"the renewal window", []string{"--out", dir, "--dns", "b.test", "--ca-cert", caB, "--ca-key", keyB, "--key-type", "ed25519", "--validity", "2h", "--renew-before", "1h59m59s"}, "within --renew-before"},
		{"self-signed", []string{"--out", dir, "--dns", "b.test", "--key-type", "ed25519", "--validity", "2h"}, "the certificate is not self-signed"},
	} {
		before, oldKey := state()
		if c.name == "the renewal window" {
			time.Sleep(1100 * time.Millisecond) // past the last second of --renew-before
		}
		r := run(t, nil, c.args...)
		r.MustExit(t, 0, "msg=issued", c.why)
		after, newKey := state()
		if after == before || bytes.Equal(newKey, oldKey) {
			t.Fatalf("%s: the pair was not replaced", c.name)
		}
		if _, err := os.Stat(filepath.Join(dir, before)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: the old directory %s is still there", c.name, before)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	// --uid/--gid: the app's user owns the pair; once it does, unchanged.
	if os.Geteuid() == 0 {
		own := []string{"--out", dir, "--dns", "b.test", "--key-type", "ed25519", "--validity", "2h", "--uid", "4321", "--gid", "4322"}
		run(t, nil, own...).MustExit(t, 0, "msg=issued", "owner or mode differ")
		for _, f := range append(slices.Clone(pairFiles), "..data", "") {
			fi, err := os.Lstat(filepath.Join(dir, f))
			if f == "" {
				target, _ := os.Readlink(filepath.Join(dir, "..data"))
				fi, err = os.Lstat(filepath.Join(dir, target))
			}
			if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4321 || fi.Sys().(*syscall.Stat_t).Gid != 4322 {
				t.Fatalf("%q is not owned by 4321:4322: %v", f, err)
			}
		}
		run(t, nil, own...).MustExit(t, 0, "msg=unchanged")
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 5 { // ..TIMESTAMP ..data ca.crt tls.crt tls.key
		t.Fatalf("DIR holds %q", names)
	}
}

// A reader that opens DIR/..data once and reads both files from it never
// sees a key with another pair's certificate, over 100 rotations.
func TestCertRotationsNeverMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	run(t, nil, "--out", dir, "--dns", "n0.test").MustExit(t, 0)
	var stop atomic.Bool
	var reads, mismatches atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			root, err := os.OpenRoot(filepath.Join(dir, "..data"))
			if err != nil {
				continue // between a swap and the next read
			}
			k, err1 := root.ReadFile("tls.key")
			c, err2 := root.ReadFile("tls.crt")
			root.Close()
			if err1 != nil || err2 != nil {
				continue // the directory was removed after it was opened
			}
			reads.Add(1)
			if _, err := tls.X509KeyPair(c, k); err != nil {
				mismatches.Add(1)
			}
		}
	}()
	for i := 1; i <= 100; i++ {
		r := testenv.Run(t, context.Background(), Applet, nil, "--out", dir, "--dns", fmt.Sprintf("n%d.test", i), "-q")
		if r.Code != 0 {
			t.Fatalf("rotation %d: exit %d\n%s", i, r.Code, r.Stderr)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() < 100 || mismatches.Load() != 0 {
		t.Fatalf("%d reads, %d of a key with another certificate", reads.Load(), mismatches.Load())
	}
	t.Logf("%d consistent reads over 100 rotations", reads.Load())
}

// SIGTERM while a new pair is being made (an RSA-4096 key takes a while):
// exit 143, and the old pair is as it was, nothing left beside it.
func TestCertSIGTERMKeepsTheOldPair(t *testing.T) {
	bin := testenv.Binary(t)
	dir := filepath.Join(t.TempDir(), "certs")
	run(t, nil, "--out", dir, "--dns", "old.test").MustExit(t, 0)
	target, _ := os.Readlink(filepath.Join(dir, "..data"))
	key := mustRead(t, filepath.Join(dir, "tls.key"))
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(bin, "cert", "--out", dir, "--dns", "new.test", "--key-type", "rsa-4096", "--termination-log", "")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if err == nil {
			// The key came before the signal: put the old pair back, again.
			if attempt > 10 {
				t.Fatal("never caught cert mid-way in 10 tries")
			}
			os.RemoveAll(dir)
			run(t, nil, "--out", dir, "--dns", "old.test").MustExit(t, 0)
			target, _ = os.Readlink(filepath.Join(dir, "..data"))
			key = mustRead(t, filepath.Join(dir, "tls.key"))
			continue
		}
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Fatalf("exit %v, want 143\n%s", err, stderr.String())
		}
		break
	}
	if now, _ := os.Readlink(filepath.Join(dir, "..data")); now != target || !bytes.Equal(mustRead(t, filepath.Join(dir, "tls.key")), key) {
		t.Fatal("SIGTERM left another pair")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 5 {
		t.Fatalf("SIGTERM left %d entries in DIR", len(ents))
	}
}

// Bad input is exit 2, naming the file and what is wrong, with nothing
// written.
func TestCertBadInput(t *testing.T) {
	needOpenSSL(t)
	caA, keyA := makeCA(t, "CA A")
	_, keyB := makeCA(t, "CA B")
	tmp := t.TempDir()
	garbage := filepath.Join(tmp, "garbage.pem")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"), 0o644)
	leafDir := filepath.Join(tmp, "leaf")
	run(t, nil, "--out", leafDir, "--dns", "leaf.test").MustExit(t, 0)
	leaf, leafKey := filepath.Join(leafDir, "tls.crt"), filepath.Join(leafDir, "tls.key")
	empty := filepath.Join(tmp, "empty")
	os.WriteFile(empty, nil, 0o600)
	out := filepath.Join(tmp, "out")
	for _, c := range []struct {
		args []string
		why  string
	}{
		{[]string{"--dns", "a.test", "--ca-cert", caA, "--ca-key", keyB}, "--ca-key " + keyB + " does not match --ca-cert " + caA},
		{[]string{"--dns", "a.test", "--ca-cert", garbage, "--ca-key", keyA}, "--ca-cert " + garbage + ": certificate 1 is unparsable"},
		{[]string{"--dns", "a.test", "--ca-cert", leaf, "--ca-key", leafKey}, "is not a CA certificate"},
		{[]string{"--dns", "a.test", "--ca-cert", caA}, "--ca-cert and --ca-key go together"},
		{[]string{"--ip", "10.0.0.300"}, `invalid --ip "10.0.0.300": not an IP address`},
		{[]string{"--dns", "bad_name.test"}, `invalid --dns "bad_name.test"`},
		{[]string{"--dns", "a.test", "--key-type", "dsa"}, `invalid --key-type "dsa"`},
		{[]string{"--dns", "a.test", "--usage", "email"}, `invalid --usage "email"`},
		{[]string{"--dns", "a.test", "--validity", "10m"}, `invalid --validity "10m"`},
		{[]string{"--dns", "a.test", "--validity", "-90d"}, `invalid --validity "-90d": negative duration`},
		{[]string{"--dns", "a.test", "--validity=-2160h"}, `invalid --validity "-2160h": negative duration`},
		{[]string{"--dns", "a.test", "--renew-before", "-1d"}, `invalid --renew-before "-1d": negative duration`},
		{[]string{"--dns", "a.test", "--validity", "30d", "--renew-before", "30d"}, "is not shorter than --validity"},
		{[]string{}, "the certificate would name nothing"},
		{[]string{"--dns", "a.test", "--truststore", filepath.Join(tmp, "t.p12")}, "need --store-password-file"},
		{[]string{"--dns", "a.test", "--truststore", filepath.Join(tmp, "t.p12"), "--store-password-file", empty}, "is empty"},
		{[]string{"--dns", "a.test", "--bundle", filepath.Join(tmp, "b.pem"), "--trust", garbage}, "--trust " + garbage},
		{[]string{"--dns", "a.test", "--service", "web"}, "goes with --pod-sans"},
	} {
		run(t, nil, append([]string{"--out", out}, c.args...)...).MustExit(t, 2, c.why)
		if _, err := os.Lstat(out); err == nil {
			t.Fatalf("%q: DIR was made", c.args)
		}
	}
	run(t, nil, "--keystore", filepath.Join(tmp, "k.p12")).MustExit(t, 2, "nothing to write")
	run(t, nil, "--truststore", filepath.Join(tmp, "t.p12"), "--keystore", filepath.Join(tmp, "k.p12"), "--store-password-file", keyA).MustExit(t, 2, "--keystore need --out")
	run(t, nil, "--bundle", filepath.Join(tmp, "b.pem"), "--dns", "a.test").MustExit(t, 2, "need --out")
	if ents, _ := os.ReadDir(tmp); len(ents) != 3 { // garbage.pem, leaf, empty
		t.Fatalf("bad input wrote something: %d entries", len(ents))
	}
}
