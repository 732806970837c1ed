package cert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
)

// leafOf reads the pair in dir through its links, and fails the test when
// the key and the certificate do not match: a reader must never see that.
func leafOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("the pair as a reader sees it: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func rotateCA(t *testing.T, dir string, ca *testenv.CA) {
	t.Helper()
	for name, body := range map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.KeyPEM()} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// cert --watch re-issues the pair when it enters --renew-before and when
// the CA it signs with is rotated, tells the app each time, and a reader
// never finds a key and a certificate that do not match.
func TestCertWatchRenewsAndFollowsTheCA(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	os.Mkdir(caDir, 0o755)
	a, b := testenv.NewCA(t, "CA A"), testenv.NewCA(t, "CA B")
	rotateCA(t, caDir, a)
	out := filepath.Join(dir, "tls")
	_, hups, pid := testenv.HUPCounter(t, dir, "c")
	pidFile := filepath.Join(dir, "app.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o644)
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		// Valid for an hour, renewed in its last 59m57s: the first pair is
		// due for renewal about 3 s after it is made.
		done <- testenv.Run(t, ctx, Applet, nil, "--out", out, "--dns", "app.test", "--key-type", "ed25519",
			"--ca-cert", filepath.Join(caDir, "ca.crt"), "--ca-key", filepath.Join(caDir, "ca.key"),
			"--validity", "1h", "--renew-before", "59m57s", "--watch", "--on-change", "signal:HUP:@"+pidFile,
			"--ready-file", ready, "--termination-log", "")
	}()
	wait := func(what string, ok func() bool) { t.Helper(); testenv.Eventually(t, 15*time.Second, what, ok) }
	wait("the first pair", func() bool { _, err := os.Stat(ready); return err == nil })
	first := leafOf(t, out)
	if first.Issuer.CommonName != "CA A" {
		t.Fatalf("issued by %s", first.Issuer)
	}
	// The renewal window: a new pair, and the app told.
	wait("the renewal", func() bool { return leafOf(t, out).SerialNumber.Cmp(first.SerialNumber) != 0 })
	wait("the SIGHUP for the renewal", func() bool { return testenv.Lines(hups) >= 1 })
	// The CA rotated: a pair signed by the new one, ca.crt with it.
	told := testenv.Lines(hups)
	rotateCA(t, caDir, b)
	wait("a pair from the rotated CA", func() bool { return leafOf(t, out).Issuer.CommonName == "CA B" })
	wait("the SIGHUP for the rotation", func() bool { return testenv.Lines(hups) > told })
	ca, _ := os.ReadFile(filepath.Join(out, "ca.crt"))
	if blk, _ := pem.Decode(ca); blk == nil || string(blk.Bytes) != string(b.Cert.Raw) {
		t.Fatal("ca.crt is not the rotated CA")
	}
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, "msg=notified")
}
