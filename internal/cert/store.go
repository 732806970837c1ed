package cert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/oserr"
)

// The stores are PKCS#12 through go-pkcs12's Modern encoder (PBES2 with
// PBKDF2-HMAC-SHA-256 and AES-256-CBC, an HMAC-SHA-256 MAC): what OpenSSL 3
// writes by default, read by Java 12 and later and OpenSSL 1.1.1 and later.
// Their salts differ at every write, so "already right" is judged on what a
// store holds, decoded with the password, never on its bytes.

func (c *command) writeTruststore(ctx context.Context, env *cli.Env) (string, error) {
	if old, err := readStore(c.truststore); err == nil {
		if certs, err := pkcs12.DecodeTrustStore(old, c.password); err == nil && sameCerts(certs, c.trustCAs) && c.ownerOK(c.truststore, 0o644) {
			env.Log.Info("unchanged", "truststore", c.truststore, "certificates", len(certs))
			return fmt.Sprintf("unchanged: %s (%d certificates)", c.truststore, len(certs)), nil
		}
	}
	entries := make([]pkcs12.TrustStoreEntry, len(c.trustCAs))
	for i, ca := range c.trustCAs {
		entries[i] = pkcs12.TrustStoreEntry{Cert: ca, FriendlyName: alias(ca)}
	}
	b, err := pkcs12.Modern.EncodeTrustStoreEntries(entries, c.password)
	if err != nil {
		return "", fmt.Errorf("encoding the truststore: %v", err)
	}
	if err := c.writeFile(ctx, c.truststore, b, 0o644); err != nil {
		return "", err
	}
	env.Log.Info("wrote", "truststore", c.truststore, "certificates", len(c.trustCAs))
	return fmt.Sprintf("wrote %s (%d certificates)", c.truststore, len(c.trustCAs)), nil
}

func (c *command) writeKeystore(ctx context.Context, env *cli.Env, p *pair) (string, error) {
	var chain []*x509.Certificate
	if len(c.caCerts) > 0 {
		chain = dedup(append(slices.Clone(p.chain), p.cas...))
	}
	if old, err := readStore(c.keystore); err == nil {
		if key, leaf, cas, err := pkcs12.DecodeChain(old, c.password); err == nil && c.ownerOK(c.keystore, 0o600) &&
			publicKeyEqual(p.key.Public(), publicOf(key)) && bytes.Equal(leaf.Raw, p.leaf.Raw) && sameCerts(cas, chain) {
			env.Log.Info("unchanged", "keystore", c.keystore)
			return "unchanged: " + c.keystore, nil
		}
	}
	b, err := pkcs12.Modern.Encode(p.key, p.leaf, chain, c.password)
	if err != nil {
		return "", fmt.Errorf("encoding the keystore: %v", err)
	}
	if err := c.writeFile(ctx, c.keystore, b, 0o600); err != nil {
		return "", err
	}
	env.Log.Info("wrote", "keystore", c.keystore)
	return "wrote " + c.keystore, nil
}

func (c *command) writeBundle(ctx context.Context, env *cli.Env) (string, error) {
	b := certsPEM(c.trustCAs)
	if old, err := readStore(c.bundle); err == nil && bytes.Equal(old, b) && c.ownerOK(c.bundle, 0o644) {
		env.Log.Info("unchanged", "bundle", c.bundle, "certificates", len(c.trustCAs))
		return fmt.Sprintf("unchanged: %s (%d certificates)", c.bundle, len(c.trustCAs)), nil
	}
	if err := c.writeFile(ctx, c.bundle, b, 0o644); err != nil {
		return "", err
	}
	env.Log.Info("wrote", "bundle", c.bundle, "certificates", len(c.trustCAs))
	return fmt.Sprintf("wrote %s (%d certificates)", c.bundle, len(c.trustCAs)), nil
}

// writeFile replaces path whole (a temporary file renamed over it: never
// written through a link there), owned as --uid/--gid ask.
func (c *command) writeFile(ctx context.Context, path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", path, oserr.Reason(err))
	}
	if err := atomicfile.WriteOwned(ctx, path, bytes.NewReader(b), mode, c.uid, c.gid); err != nil {
		return fmt.Errorf("writing %s: %w", path, oserr.Reason(err))
	}
	return nil
}

// readStore reads an existing store without following a link at its
// name: a link is not "already right".
func readStore(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

// ownerOK: path has the mode it is written with, and the owner asked for:
// a keystore whose mode was widened is not "unchanged".
func (c *command) ownerOK(path string, mode os.FileMode) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != mode {
		return false
	}
	uid, gid := owner(fi)
	return (c.uid < 0 || c.uid == uid) && (c.gid < 0 || c.gid == gid)
}

func owner(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

func publicOf(key any) crypto.PublicKey {
	if k, ok := key.(crypto.Signer); ok {
		return k.Public()
	}
	return nil
}

// sameCerts: the same certificates, in any order.
func sameCerts(a, b []*x509.Certificate) bool {
	raw := func(cs []*x509.Certificate) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = string(c.Raw)
		}
		slices.Sort(out)
		return out
	}
	return len(a) == len(b) && slices.Equal(raw(a), raw(b))
}

// alias is a truststore entry's name: the subject, and a fingerprint so
// that two CAs of one subject (a renewed root) stay two entries for Java.
func alias(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	name := c.Subject.CommonName
	if name == "" {
		name = c.Subject.String()
	}
	return fmt.Sprintf("%s [%x]", strings.ToLower(name), h[:4])
}
