package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/initbox/initbox/internal/oserr"
)

// keyType is what --key-type names.
type keyType struct {
	name  string
	alg   x509.PublicKeyAlgorithm
	curve elliptic.Curve // ECDSA
	bits  int            // RSA
}

var keyTypes = []keyType{
	{name: "ecdsa-p256", alg: x509.ECDSA, curve: elliptic.P256()},
	{name: "ecdsa-p384", alg: x509.ECDSA, curve: elliptic.P384()},
	{name: "ed25519", alg: x509.Ed25519},
	{name: "rsa-2048", alg: x509.RSA, bits: 2048},
	{name: "rsa-3072", alg: x509.RSA, bits: 3072},
	{name: "rsa-4096", alg: x509.RSA, bits: 4096},
}

func parseKeyType(s string) (keyType, error) {
	for _, k := range keyTypes {
		if k.name == s {
			return k, nil
		}
	}
	names := make([]string, len(keyTypes))
	for i, k := range keyTypes {
		names[i] = k.name
	}
	return keyType{}, fmt.Errorf("invalid --key-type %q: want one of %s", s, strings.Join(names, ", "))
}

// of reports whether pub is a key of this type.
func (k keyType) of(pub crypto.PublicKey) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return k.alg == x509.ECDSA && p.Curve == k.curve
	case *rsa.PublicKey:
		return k.alg == x509.RSA && p.N.BitLen() == k.bits
	case ed25519.PublicKey:
		return k.alg == x509.Ed25519
	}
	return false
}

func (k keyType) generate() (crypto.Signer, error) {
	switch k.alg {
	case x509.ECDSA:
		return ecdsa.GenerateKey(k.curve, rand.Reader)
	case x509.RSA:
		return rsa.GenerateKey(rand.Reader, k.bits)
	default:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
}

// request is the certificate asked for.
type request struct {
	keyType keyType
	cn      string
	dns     []string
	ips     []net.IP
	usage   []x509.ExtKeyUsage
}

func (r *request) addDNS(n string) {
	n = strings.ToLower(n)
	if !slices.Contains(r.dns, n) {
		r.dns = append(r.dns, n)
	}
}

func (r *request) addIP(ip net.IP) {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	for _, have := range r.ips {
		if have.Equal(ip) {
			return
		}
	}
	r.ips = append(r.ips, ip)
}

// pair is a key and its certificate, with the CA certificates ca.crt holds.
type pair struct {
	key   crypto.Signer
	leaf  *x509.Certificate
	cas   []*x509.Certificate
	chain []*x509.Certificate // the intermediates tls.crt holds after the leaf
	// The PEM files as written (or as found, when kept).
	keyPEM, certPEM, caPEM []byte
}

// maxCN is X.509's upper bound on a common name (ub-common-name).
const maxCN = 64

// backdate is how long before now a certificate starts: clocks in a
// cluster differ a little.
const backdate = 5 * time.Minute

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// issue makes a new key and a certificate for it, signed by the CA
// (caCerts[0], caKey) or by itself.
func issue(r *request, caCerts []*x509.Certificate, caKey crypto.Signer, validity time.Duration, now time.Time) (*pair, error) {
	key, err := r.keyType.generate()
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(spki)
	usage := x509.KeyUsageDigitalSignature
	if r.keyType.alg == x509.RSA {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange (TLS 1.2)
	}
	subject := pkix.Name{CommonName: r.cn}
	if r.cn == "" {
		// Never an empty DN: a self-signed certificate's issuer is its
		// subject, and RFC 5280 §4.1.2.4 wants a non-empty issuer (Java
		// cannot parse one without, and keytool -list fails on the store).
		subject.Organization = []string{"initbox"}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              usage,
		ExtKeyUsage:           r.usage,
		BasicConstraintsValid: true,
		DNSNames:              r.dns,
		IPAddresses:           r.ips,
		SubjectKeyId:          ski[:20],
	}
	parent, signer := tmpl, crypto.Signer(key)
	if len(caCerts) > 0 {
		parent, signer = caCerts[0], caKey
		if err := validNow(parent, now); err != nil {
			return nil, err
		}
		if tmpl.NotAfter.After(parent.NotAfter) {
			tmpl.NotAfter = parent.NotAfter // a leaf outliving its CA would fail at the CA's end anyway
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	chain, roots := splitCA(caCerts)
	if len(caCerts) == 0 {
		roots = []*x509.Certificate{leaf}
	}
	p := &pair{key: key, leaf: leaf, cas: roots, chain: chain,
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		certPEM: certsPEM(append([]*x509.Certificate{leaf}, chain...)),
		caPEM:   certsPEM(roots),
	}
	return p, nil
}

// splitCA divides --ca-cert as cert-manager lays a pair out: tls.crt holds
// the leaf and every intermediate (what is not self-signed), so a client
// that trusts only the root can build the path; ca.crt the roots — or, when
// the file holds no root, its last certificate, the top it knows.
func splitCA(caCerts []*x509.Certificate) (chain, roots []*x509.Certificate) {
	for _, c := range caCerts {
		if selfSigned(c) {
			roots = append(roots, c)
		} else {
			chain = append(chain, c)
		}
	}
	if len(roots) == 0 && len(caCerts) > 0 {
		roots = caCerts[len(caCerts)-1:]
	}
	return chain, roots
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// validNow refuses a CA that is not valid at now: a leaf it signed would
// never be.
func validNow(ca *x509.Certificate, now time.Time) error {
	switch {
	case now.After(ca.NotAfter):
		return fmt.Errorf("--ca-cert %q expired at %s: a certificate it signs would never be valid", ca.Subject.String(), ca.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(ca.NotBefore):
		return fmt.Errorf("--ca-cert %q is not valid until %s: a certificate it signs would not be valid now", ca.Subject.String(), ca.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func certsPEM(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// parsePair reads a pair from its three PEM files; any flaw is an error.
func parsePair(keyPEM, certPEM, caPEM []byte) (*pair, error) {
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %v", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %v", err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("ca.crt: %v", err)
	}
	return &pair{key: key, leaf: certs[0], chain: certs[1:], cas: cas, keyPEM: keyPEM, certPEM: certPEM, caPEM: caPEM}, nil
}

// stale says why an existing pair is not the one asked for, or "" when it
// is: its key matches, it chains to the CA given (or is self-signed when
// none is), it has exactly the names, key type and usage asked for and
// stays valid for renew.
func stale(p *pair, r *request, caCerts []*x509.Certificate, validity, renew time.Duration, now time.Time) string {
	leaf := p.leaf
	// A leaf that ends with its CA was cut short to it, and a new one
	// would be too.
	capped := len(caCerts) > 0 && !leaf.NotAfter.Before(caCerts[0].NotAfter)
	switch {
	case !publicKeyEqual(p.key.Public(), leaf.PublicKey):
		return "the key does not match the certificate"
	case !r.keyType.of(leaf.PublicKey):
		return "the key is not a " + r.keyType.name + " key"
	case !sameStrings(leaf.DNSNames, r.dns):
		return "the DNS names differ"
	case !sameIPs(leaf.IPAddresses, r.ips):
		return "the IP addresses differ"
	case leaf.Subject.CommonName != r.cn:
		return "the common name differs"
	case !slices.Equal(leaf.ExtKeyUsage, r.usage):
		return "the usage differs"
	case !capped && absDuration(leaf.NotAfter.Sub(leaf.NotBefore)-backdate-validity) > time.Minute:
		return "the validity differs"
	case now.Before(leaf.NotBefore):
		return "the certificate is not valid yet"
	case leaf.NotAfter.Sub(now) < renew && !capped:
		return fmt.Sprintf("the certificate expires at %s, within --renew-before", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	chain, want := splitCA(caCerts)
	if !sameChain(p.chain, chain) {
		return "tls.crt does not hold the intermediates of --ca-cert"
	}
	if len(want) == 0 {
		want = []*x509.Certificate{leaf}
		// Its own key signed it (CheckSignatureFrom would want a CA).
		if leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil {
			return "the certificate is not self-signed"
		}
	} else if err := leaf.CheckSignatureFrom(caCerts[0]); err != nil {
		return "the certificate is not signed by --ca-cert"
	}
	if !bytes.Equal(p.caPEM, certsPEM(want)) {
		return "ca.crt is not the CA"
	}
	return ""
}

func sameChain(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func sameStrings(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	for i := range x {
		x[i] = strings.ToLower(x[i])
	}
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for _, ip := range a {
		if !slices.ContainsFunc(b, ip.Equal) {
			return false
		}
	}
	return true
}

// parseKey reads a private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM.
func parseKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key in it")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: give it unencrypted, as a Secret holds it")
		default:
			continue // EC PARAMETERS, a certificate in the same file, …
		}
		if err != nil {
			return nil, fmt.Errorf("the %s is unparsable: %v", strings.ToLower(blk.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T key cannot sign", k)
		}
		return s, nil
	}
}

// parseCerts reads every CERTIFICATE of a PEM file; there must be one.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d is unparsable: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return out, nil
}

// readCerts reads a PEM file of certificates for flag.
func readCerts(path, flag string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, oserr.Reason(err))
	}
	certs, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", flag, path, err)
	}
	return certs, nil
}

// readCA reads a CA certificate (with any chain after it) and its key,
// and checks that they go together and that the certificate may sign.
func readCA(certFile, keyFile string) ([]*x509.Certificate, crypto.Signer, error) {
	certs, err := readCerts(certFile, "--ca-cert")
	if err != nil {
		return nil, nil, err
	}
	ca := certs[0]
	if !ca.IsCA || (ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, nil, fmt.Errorf("--ca-cert %s is not a CA certificate (it may not sign certificates)", certFile)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca-key %s: %w", keyFile, oserr.Reason(err))
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca-key %s: %v", keyFile, err)
	}
	if !publicKeyEqual(key.Public(), ca.PublicKey) {
		return nil, nil, fmt.Errorf("--ca-key %s does not match --ca-cert %s", keyFile, certFile)
	}
	return certs, key, nil
}

// dedup drops repeated certificates, keeping the first of each.
func dedup(certs []*x509.Certificate) []*x509.Certificate {
	seen := map[string]bool{}
	var out []*x509.Certificate
	for _, c := range certs {
		if !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			out = append(out, c)
		}
	}
	return out
}
