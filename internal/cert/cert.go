// Package cert is the cert applet: a pod's TLS key and certificate, signed
// by a CA from a mounted Secret or self-signed, and Java/PEM truststores —
// what charts do with openssl or keytool in a shell image, done without
// either, idempotently (an existing pair that is still right is kept,
// byte for byte) and atomically (a new pair appears as a pair).
package cert

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/keep"
	"github.com/initbox/initbox/internal/oserr"
)

// Applet is cert's entry in the applet table.
var Applet = cli.Applet{
	Name:     "cert",
	Summary:  "make a pod's TLS key and certificate, and truststores: idempotent, atomic, verified",
	Synopsis: "[flags] --out DIR | --truststore FILE | --bundle FILE",
	Help: `Writes DIR/tls.key (PKCS#8 PEM, mode 0600), DIR/tls.crt and DIR/ca.crt, the
names of a kubernetes.io/tls Secret. The leaf is signed by --ca-cert/--ca-key
(a CA from a mounted Secret; ca.crt is that CA) or, without them, self-signed
(ca.crt is the leaf itself).

An existing pair is kept, nothing written, when its key matches its
certificate, the certificate chains to the CA given, has exactly the names,
key type and usage asked for and stays valid for --renew-before. Otherwise a
new pair replaces it as a pair: the files live in a timestamped directory
that DIR/..data points to, and DIR/tls.key, tls.crt and ca.crt are links
through ..data — the layout of a Secret volume (the kubelet's atomic writer),
so one rename swaps all three, and a reader that opens DIR/..data once reads
a key and the certificate that goes with it. Key material is never printed.

NAMES
  --cn, --dns NAME and --ip IP (repeatable). --pod-sans adds the pod's own
  names from the downward API environment: POD_IP or POD_IPS, POD_NAME, and
  with --service SVC (which needs POD_NAMESPACE) the StatefulSet forms
  POD.SVC, POD.SVC.NS, POD.SVC.NS.svc, POD.SVC.NS.svc.DOMAIN and the
  service's own SVC, SVC.NS, SVC.NS.svc, SVC.NS.svc.DOMAIN (--cluster-domain).

TRUSTSTORES
  --truststore FILE writes a PKCS#12 truststore (Java 9+ reads it natively:
  -Djavax.net.ssl.trustStoreType=PKCS12) of the system CAs (--system-cas,
  "" for none) and every --trust FILE; --keystore FILE a PKCS#12 of the key
  and its chain (needs --out); --bundle FILE a PEM bundle of the same CAs as
  the truststore. Stores are encrypted with the password in
  --store-password-file (PBES2, AES-256, HMAC-SHA-256: Java 12+, OpenSSL
  1.1.1+). A store that already holds exactly these entries is not
  rewritten.

WATCH
  --watch keeps it all true for the pod's life (a native sidecar): the pair
  is issued again when it enters --renew-before, and when the CA of
  --ca-cert/--ca-key (a rotated CA Secret's volume) or a --trust file
  changes; the three files change together through ..data, so a reader
  never finds a key and a certificate that do not match. Then each
  --on-change runs (signal:HUP:NAME, signal:HUP:@PIDFILE, or a URL), as for
  render --watch; --ready-file, --listen and SIGTERM as there.

EXAMPLES
  cert --out /certs --pod-sans --service web --ca-cert /ca/tls.crt --ca-key /ca/tls.key
  cert --out /certs --dns localhost --ip 127.0.0.1 --key-type rsa-2048 --validity 30d
  cert --out /certs --pod-sans --ca-cert /ca/tls.crt --ca-key /ca/tls.key --watch --on-change signal:HUP:@/run/app.pid
  cert --truststore /stores/trust.p12 --trust /corp/ca.crt --store-password-file /pw/password`,
	ExitStatus: `  0    done, or already right ("unchanged")
  1    failed: a file could not be written
  2    bad usage or bad input (an unparsable PEM, a CA key that does not match
       its certificate, an IP that is not one): nothing written
  130  interrupted (SIGINT)
  143  terminated (SIGTERM)`,
	New: func() cli.Command { return &command{uid: -1, gid: -1} },
}

type command struct {
	out           string
	keyTypeFlag   string
	cn            string
	dns, ips      []string
	podSANs       bool
	service       string
	clusterDomain string
	caCertFile    string
	caKeyFile     string
	validityFlag  string
	renewFlag     string
	usageFlag     string
	uid, gid      int
	truststore    string
	keystore      string
	bundle        string
	passwordFile  string
	systemCAs     string
	trust         []string
	watch         bool
	keep          keep.Options

	// Prepared.
	engine   *keep.Engine
	req      request
	password string
	trustCAs []*x509.Certificate
	caCerts  []*x509.Certificate // the issuer first, as --ca-cert holds them
	caKey    crypto.Signer
	validity time.Duration
	renew    time.Duration
}

func (c *command) Flags(fs *cli.FlagSet) {
	defer func() {
		fs.Bool(&c.watch, "watch", "keep the pair true: re-issue when it enters --renew-before, or when --ca-cert/--ca-key or a --trust file changes (a native sidecar)")
		c.keep.Flags(fs)
	}()
	fs.String(&c.out, "out", "", "write tls.key, tls.crt and ca.crt into `DIR`")
	fs.String(&c.keyTypeFlag, "key-type", "ecdsa-p256", "the key's `TYPE`: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072 or rsa-4096")
	fs.String(&c.cn, "cn", "", "the subject's common `NAME` (default: the first DNS name)")
	fs.Strings(&c.dns, "dns", "a DNS `NAME` the certificate is for (repeatable; *.name for a wildcard)")
	fs.Strings(&c.ips, "ip", "an `IP` address the certificate is for (repeatable)")
	fs.Bool(&c.podSANs, "pod-sans", "add the pod's names and IPs from POD_NAME, POD_NAMESPACE, POD_IP(S)")
	fs.String(&c.service, "service", "", "with --pod-sans: the headless `SVC` of the StatefulSet, for POD.SVC.NS.svc… names")
	fs.String(&c.clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS `DOMAIN`")
	fs.String(&c.caCertFile, "ca-cert", "", "sign with the CA certificate in `FILE` (PEM; default: self-signed)")
	fs.String(&c.caKeyFile, "ca-key", "", "the CA's private key in `FILE` (PEM: PKCS#8, PKCS#1 or SEC1)")
	fs.String(&c.validityFlag, "validity", "90d", "how long the certificate is valid: a `DURATION` such as 90d or 2160h")
	fs.String(&c.renewFlag, "renew-before", "", "replace a pair valid for less than `DURATION` (default: a third of --validity)")
	fs.String(&c.usageFlag, "usage", "server", "the extended key `USAGE`: server, client or both")
	fs.Int(&c.uid, "uid", -1, "owner `UID` of what is written (needs CAP_CHOWN)")
	fs.Int(&c.gid, "gid", -1, "group `GID` of what is written")
	fs.String(&c.truststore, "truststore", "", "write a PKCS#12 truststore of the system CAs and every --trust to `FILE`")
	fs.String(&c.keystore, "keystore", "", "write a PKCS#12 keystore of the key and its chain to `FILE` (needs --out)")
	fs.String(&c.bundle, "bundle", "", "write a PEM bundle of the system CAs and every --trust to `FILE`")
	fs.String(&c.passwordFile, "store-password-file", "", "the stores' password is in `FILE` (read once, never logged)")
	fs.String(&c.systemCAs, "system-cas", "/etc/ssl/certs/ca-certificates.crt", "the system CAs for --truststore and --bundle: a PEM `FILE` (\"\" for none)")
	fs.Strings(&c.trust, "trust", "a CA certificate (PEM `FILE`, may hold several) to add to --truststore and --bundle")
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("unexpected argument %q: cert takes flags only", args[0])
	}
	if c.out == "" && c.truststore == "" && c.bundle == "" {
		return nil, errors.New("nothing to write: give --out DIR, --truststore FILE or --bundle FILE")
	}
	if c.uid < -1 || c.gid < -1 {
		return nil, errors.New("--uid and --gid must be numeric ids (0 and above)")
	}
	if c.out != "" {
		if fi, err := os.Lstat(c.out); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			// As fetch and prepare refuse one: where the pair goes would
			// be the link's to decide.
			return nil, fmt.Errorf("--out %s is a symbolic link: give the directory itself", c.out)
		}
		if err := c.prepareLeaf(env); err != nil {
			return nil, err
		}
	} else {
		for _, f := range []struct {
			set  bool
			name string
		}{{c.keystore != "", "--keystore"}, {c.caCertFile != "" || c.caKeyFile != "", "--ca-cert/--ca-key"},
			{len(c.dns) > 0 || len(c.ips) > 0 || c.podSANs || c.cn != "", "--cn, --dns, --ip and --pod-sans"}} {
			if f.set {
				return nil, fmt.Errorf("%s need --out: they describe the pair written there", f.name)
			}
		}
	}
	if c.truststore != "" || c.keystore != "" {
		if c.passwordFile == "" {
			return nil, errors.New("--truststore and --keystore need --store-password-file")
		}
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--store-password-file: %w", oserr.Reason(err))
		}
		c.password = strings.TrimRight(string(b), "\r\n")
		if c.password == "" {
			return nil, fmt.Errorf("--store-password-file %s is empty", c.passwordFile)
		}
		env.Secrets.Add(c.password)
	} else if c.passwordFile != "" {
		return nil, errors.New("--store-password-file is for --truststore and --keystore")
	}
	if c.truststore != "" || c.bundle != "" {
		if err := c.loadTrust(); err != nil {
			return nil, err
		}
	} else if len(c.trust) > 0 {
		return nil, errors.New("--trust adds to --truststore or --bundle; give one")
	}
	if c.watch {
		c.engine = &keep.Engine{Log: env.Log, Secrets: env.Secrets, Opts: &c.keep, Pass: c.pass(env)}
		if err := c.engine.Check(); err != nil {
			return nil, err
		}
	} else if c.keep.Used() {
		return nil, errors.New("--on-change, --ready-file and --listen go with --watch")
	}
	return nil, nil
}

// loadTrust reads the CA certificates of --system-cas and --trust.
func (c *command) loadTrust() error {
	c.trustCAs = nil
	if c.systemCAs != "" {
		cas, err := readCerts(c.systemCAs, "--system-cas")
		if err != nil {
			return err
		}
		c.trustCAs = append(c.trustCAs, cas...)
	}
	for _, f := range c.trust {
		cas, err := readCerts(f, "--trust")
		if err != nil {
			return err
		}
		c.trustCAs = append(c.trustCAs, cas...)
	}
	c.trustCAs = dedup(c.trustCAs)
	if len(c.trustCAs) == 0 {
		return errors.New("the truststore would be empty: give --trust FILE or --system-cas FILE")
	}
	return nil
}

// prepareLeaf reads and checks everything the pair needs: names, key
// type, validity, usage and the CA.
func (c *command) prepareLeaf(env *cli.Env) error {
	var err error
	r := &c.req
	if r.keyType, err = parseKeyType(c.keyTypeFlag); err != nil {
		return err
	}
	switch c.usageFlag {
	case "server":
		r.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case "client":
		r.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case "both":
		r.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	default:
		return fmt.Errorf("invalid --usage %q: want server, client or both", c.usageFlag)
	}
	if c.validity, err = cli.ParseDuration(c.validityFlag); err != nil || c.validity < time.Hour {
		why := "want a duration of an hour or more, such as 90d or 2160h"
		if err != nil {
			why = err.Error()
		}
		return fmt.Errorf("invalid --validity %q: %s", c.validityFlag, why)
	}
	c.renew = c.validity / 3
	if c.renewFlag != "" {
		if c.renew, err = cli.ParseDuration(c.renewFlag); err != nil {
			return fmt.Errorf("invalid --renew-before %q: %v", c.renewFlag, err)
		}
		if c.renew >= c.validity {
			return fmt.Errorf("--renew-before %s is not shorter than --validity %s: every run would replace the pair", c.renewFlag, c.validityFlag)
		}
	}
	for _, d := range c.dns {
		if err := checkDNSName(d); err != nil {
			return fmt.Errorf("invalid --dns %q: %v", d, err)
		}
		r.addDNS(d)
	}
	for _, s := range c.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("invalid --ip %q: not an IP address", s)
		}
		r.addIP(ip)
	}
	if c.service != "" && !c.podSANs {
		return errors.New("--service names the pod's StatefulSet service: it goes with --pod-sans")
	}
	if c.podSANs {
		if err := c.addPodSANs(env); err != nil {
			return err
		}
	}
	if len(r.dns) == 0 && len(r.ips) == 0 {
		return errors.New("the certificate would name nothing: give --dns, --ip or --pod-sans")
	}
	// The common name is the first DNS name (or IP address) when it fits
	// X.509's 64 characters (RFC 5280, ub-common-name); a longer one is
	// left out: the SANs carry the names, and cert-manager refuses a CN
	// over 64 too.
	if len(c.cn) > maxCN {
		return fmt.Errorf("invalid --cn: %d characters, more than X.509's %d", len(c.cn), maxCN)
	}
	r.cn = c.cn
	for _, n := range r.dns {
		if r.cn == "" && len(n) <= maxCN {
			r.cn = n
		}
	}
	if r.cn == "" && len(r.dns) == 0 && len(r.ips) > 0 {
		r.cn = r.ips[0].String()
	}
	switch {
	case (c.caCertFile == "") != (c.caKeyFile == ""):
		return errors.New("--ca-cert and --ca-key go together")
	case c.caCertFile != "":
		if c.caCerts, c.caKey, err = readCA(c.caCertFile, c.caKeyFile); err != nil {
			return err
		}
	}
	if (c.keystore != "") && c.out == "" {
		return errors.New("--keystore holds the pair: it needs --out")
	}
	return nil
}

// addPodSANs adds the pod's names from the downward API environment.
func (c *command) addPodSANs(env *cli.Env) error {
	r := &c.req
	get := func(k string) string { v, _ := env.LookupEnv(k); return strings.TrimSpace(v) }
	ips := get("POD_IPS")
	if ips == "" {
		ips = get("POD_IP")
	}
	if ips == "" {
		return errors.New("--pod-sans: POD_IP is not set (env: valueFrom: fieldRef: fieldPath: status.podIP)")
	}
	for _, s := range strings.Split(ips, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("--pod-sans: POD_IP(S) holds %q, not an IP address", s)
		}
		r.addIP(ip)
	}
	pod := get("POD_NAME")
	if pod == "" {
		return errors.New("--pod-sans: POD_NAME is not set (env: valueFrom: fieldRef: fieldPath: metadata.name)")
	}
	// What comes from the environment names a host, never a wildcard,
	// and every name composed from it must fit a DNS name too.
	if err := checkHostName(pod); err != nil {
		return fmt.Errorf("--pod-sans: POD_NAME %q: %v", pod, err)
	}
	if c.service == "" {
		r.addDNS(pod)
		return nil
	}
	ns := get("POD_NAMESPACE")
	if ns == "" {
		return errors.New("--pod-sans --service: POD_NAMESPACE is not set (env: valueFrom: fieldRef: fieldPath: metadata.namespace)")
	}
	for _, v := range []struct{ what, n string }{{"--service", c.service}, {"POD_NAMESPACE", ns}, {"--cluster-domain", c.clusterDomain}} {
		if err := checkHostName(v.n); err != nil {
			return fmt.Errorf("--pod-sans: %s %q: %v", v.what, v.n, err)
		}
	}
	svc := c.service
	for _, base := range []string{pod + "." + svc, svc} {
		for _, n := range []string{base, base + "." + ns, base + "." + ns + ".svc", base + "." + ns + ".svc." + c.clusterDomain} {
			if err := checkHostName(n); err != nil {
				return fmt.Errorf("--pod-sans: the name %q made from POD_NAME, --service, POD_NAMESPACE and --cluster-domain: %v", n, err)
			}
			r.addDNS(n)
		}
	}
	r.addDNS(pod)
	return nil
}

// checkHostName is checkDNSName without the wildcard.
func checkHostName(n string) error {
	if strings.HasPrefix(n, "*") {
		return errors.New("a wildcard is not a host's name")
	}
	return checkDNSName(n)
}

// checkDNSName accepts what a certificate's dNSName may hold: LDH labels of
// at most 63 characters, 253 in all, and a leading "*." wildcard.
func checkDNSName(n string) error {
	n = strings.TrimPrefix(n, "*.")
	if n == "" || len(n) > 253 {
		return errors.New("not a DNS name")
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q is not a DNS label", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("label %q is not a DNS label (letters, digits and -)", l)
			}
		}
	}
	return nil
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	if c.engine != nil {
		return c.engine.Run(ctx)
	}
	s, _, _, err := c.once(ctx, env)
	return s, err
}

// pass is --watch's: the CA and the trusted certificates read again (the
// first pass uses what Prepare read), then everything written as a run
// without --watch would; the next pass is due when the pair enters its
// renewal window.
func (c *command) pass(env *cli.Env) keep.Pass {
	first := true
	return func(ctx context.Context) (keep.Result, error) {
		res := keep.Result{Dirs: c.watched()}
		if !first {
			if c.caCertFile != "" {
				var err error
				if c.caCerts, c.caKey, err = readCA(c.caCertFile, c.caKeyFile); err != nil {
					return res, err
				}
			}
			if c.truststore != "" || c.bundle != "" {
				if err := c.loadTrust(); err != nil {
					return res, err
				}
			}
		}
		first = false
		summary, p, changed, err := c.once(ctx, env)
		if err != nil {
			return res, err
		}
		res.Summary, res.Changed = summary, changed
		if p != nil {
			res.Next = max(time.Until(p.leaf.NotAfter.Add(-c.renew)), time.Second)
		}
		return res, nil
	}
}

// watched are the directories of the files cert reads.
func (c *command) watched() []keep.Dir {
	var dirs []keep.Dir
	for _, f := range append([]string{c.caCertFile, c.caKeyFile, c.systemCAs}, c.trust...) {
		if f != "" {
			dirs = append(dirs, keep.Dir{Path: filepath.Dir(f)})
		}
	}
	return dirs
}

// once writes everything asked: the pair, the stores, the bundle. changed
// is whether any of them was written.
func (c *command) once(ctx context.Context, env *cli.Env) (string, *pair, bool, error) {
	var done []string
	var p *pair
	changed := false
	note := func(s string) {
		done = append(done, s)
		changed = changed || !strings.HasPrefix(s, "unchanged")
	}
	if c.out != "" {
		var summary string
		var err error
		p, summary, err = c.runPair(ctx, env)
		if err != nil {
			return "", nil, false, err
		}
		note(summary)
	}
	if c.keystore != "" {
		s, err := c.writeKeystore(ctx, env, p)
		if err != nil {
			return "", nil, false, err
		}
		note(s)
	}
	if c.truststore != "" {
		s, err := c.writeTruststore(ctx, env)
		if err != nil {
			return "", nil, false, err
		}
		note(s)
	}
	if c.bundle != "" {
		s, err := c.writeBundle(ctx, env)
		if err != nil {
			return "", nil, false, err
		}
		note(s)
	}
	return strings.Join(done, "; "), p, changed, nil
}
