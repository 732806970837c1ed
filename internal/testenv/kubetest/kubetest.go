// Package kubetest runs a real kube-apiserver (with a real etcd) for a
// test: both built from the Go module proxy through the tools module
// test/kube, once, into the Go build cache's directory; certificates made
// here; RBAC on; no controllers, so tests set objects' status themselves.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// AdminToken authenticates as a member of system:masters.
const AdminToken = "initbox-test-admin-token"

var (
	buildMu sync.Mutex
	built   [2]string
)

// Binaries returns kube-apiserver and etcd, building them on first use
// (minutes, cold) into GOCACHE/initbox-kube/VERSIONS, where later runs
// find them.
func Binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[0] == "" {
		dir := testenv.BuildTools(t, "kube", []string{"kubernetes=k8s.io/kubernetes", "etcd=go.etcd.io/etcd/server/v3"}, "",
			testenv.Tool{Name: "kube-apiserver", Pkg: "k8s.io/kubernetes/cmd/kube-apiserver"}, testenv.Tool{Name: "etcd", Pkg: "./etcd"})
		built = [2]string{filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")}
	}
	return built[0], built[1]
}

// Server is a running kube-apiserver and its etcd.
type Server struct {
	URL    string // https://127.0.0.1:PORT
	Host   string // 127.0.0.1
	Port   string
	CA     []byte // PEM of the CA that signed the server's certificate
	dir    string
	t      testing.TB
	client *http.Client
	api    *exec.Cmd
	args   []string
	bin    string

	command func(string, ...string) *exec.Cmd
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts etcd and kube-apiserver, ready to serve, and stops them
// when the test ends. extra are more kube-apiserver flags.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartWith(t, Options{Extra: extra})
}

// Options say where and how the servers run; the zero value is loopback
// on free ports, with no controllers behind the API server.
type Options struct {
	// Command makes the command that runs a program (nil: exec.Command);
	// the node harness runs the servers inside its network namespace.
	Command func(name string, args ...string) *exec.Cmd
	// Dial connects to the API server (nil: the test's own network).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Address is the IP the API server listens on and advertises, with
	// fixed ports (etcd 2379/2380, the API 6443) in a network of its own;
	// empty is 127.0.0.1 on free ports.
	Address string
	// Cluster serves pods: the ServiceAccount admission plugin that mounts
	// their tokens, and the endpoint reconciler that points the
	// "kubernetes" Service at Address.
	Cluster bool
	// SANs are more IP addresses for the serving certificate (Service IPs).
	SANs  []net.IP
	Extra []string
}

// StartWith starts etcd and kube-apiserver as o says.
func StartWith(t testing.TB, o Options) *Server {
	testenv.RealServer(t, "kube-apiserver and etcd")
	t.Helper()
	apiBin, etcdBin := Binaries(t)
	dir := t.TempDir()
	command := o.Command
	if command == nil {
		command = exec.Command
	}
	host := o.Address
	port := freePort
	if host == "" {
		host = "127.0.0.1"
	} else {
		fixed := map[int]int{0: 2379, 1: 2380, 2: 6443}
		n := 0
		port = func(testing.TB) int { n++; return fixed[n-1] }
	}
	s := &Server{dir: dir, t: t, Host: host, bin: apiBin, command: command}

	// etcd
	cp, pp := port(t), port(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	etcd := command(etcdBin, "--data-dir", filepath.Join(dir, "etcd"), "--name", "default",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer, "--log-level", "error", "--logger", "zap")
	etcd.Stdout, etcd.Stderr = logFile(t, dir, "etcd.log"), logFile(t, dir, "etcd.log")
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Process.Kill(); etcd.Wait() })

	// certificates and keys
	ca, caKey := newCA(t)
	s.CA = pemCert(ca)
	s.caCert, s.caKey = ca, caKey
	ips := append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(host)}, o.SANs...)
	cert, key := newServerCert(t, ca, caKey, ips)
	write(t, dir, "ca.crt", s.CA)
	write(t, dir, "server.crt", cert)
	write(t, dir, "server.key", key)
	_, saKey := newCA(t)
	saDER, _ := x509.MarshalECPrivateKey(saKey)
	write(t, dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}))
	pub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	write(t, dir, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	write(t, dir, "tokens.csv", []byte(AdminToken+",admin,admin,system:masters\n"))

	s.Port = strconv.Itoa(port(t))
	s.URL = "https://" + net.JoinHostPort(host, s.Port)
	s.args = []string{
		"--etcd-servers", client,
		"--bind-address", host, "--advertise-address", host, "--secure-port", s.Port,
		"--tls-cert-file", filepath.Join(dir, "server.crt"), "--tls-private-key-file", filepath.Join(dir, "server.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--cert-dir", filepath.Join(dir, "certs"),
		"--enable-priority-and-fairness=false",
	}
	if !o.Cluster {
		s.args = append(s.args, "--disable-admission-plugins", "ServiceAccount", "--endpoint-reconciler-type", "none")
	}
	s.args = append(s.args, o.Extra...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CA)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: o.Dial}
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// Dir is the directory of the servers' files: ca.crt, sa.key, the logs.
func (s *Server) Dir() string { return s.dir }

// Client is an HTTP client that reaches the API server (admin requests
// need the AdminToken header, which Do adds).
func (s *Server) Client() *http.Client { return s.client }

// IssueCert makes a serving certificate for ips signed by the cluster's
// CA, as PEM certificate and key.
func (s *Server) IssueCert(t testing.TB, ips ...net.IP) (cert, key []byte) {
	t.Helper()
	return newServerCert(t, s.caCert, s.caKey, ips)
}

func (s *Server) start() {
	s.t.Helper()
	s.api = s.command(s.bin, s.args...)
	f := logFile(s.t, s.dir, "kube-apiserver.log")
	s.api.Stdout, s.api.Stderr = f, f
	if err := s.api.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := s.Do(s.t, "GET", "/readyz", nil)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "kube-apiserver.log"))
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			s.t.Fatalf("kube-apiserver not ready after 90 s (%d %s):\n%s", code, body, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) stop() {
	testenv.Stop(s.api, 10*time.Second)
}

// Restart stops the API server and starts it again: every watch breaks.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func logFile(t testing.TB, dir, name string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func write(t testing.TB, dir, name string, b []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "initbox-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func newServerCert(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ips []net.IP) ([]byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: ips, DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Do sends a request as the admin; body is JSON-encoded unless it is
// []byte. A PATCH is a JSON merge patch.
func (s *Server) Do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Must is Do that fails the test unless the answer is a success.
func (s *Server) Must(t testing.TB, method, path string, body any) map[string]any {
	t.Helper()
	code, out := s.Do(t, method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	var m map[string]any
	json.Unmarshal(out, &m)
	return m
}

// Namespace creates namespace ns.
func (s *Server) Namespace(t testing.TB, ns string) {
	t.Helper()
	s.Must(t, "POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}})
}

// ServiceAccount creates the service account ns/name with rules (a Role
// and its RoleBinding, when rules is not empty), and lays out its mount
// as the kubelet would: a token from the TokenRequest API, ca.crt and
// namespace. It returns the directory and the environment the pod would
// see.
func (s *Server) ServiceAccount(t testing.TB, ns, name string, rules ...map[string]any) (string, map[string]string) {
	t.Helper()
	s.Must(t, "POST", "/api/v1/namespaces/"+ns+"/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": name}})
	if len(rules) > 0 {
		s.Must(t, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/roles", map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": map[string]any{"name": name}, "rules": rules})
		s.Must(t, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings", map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": map[string]any{"name": name},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": name, "namespace": ns}}})
	}
	dir := t.TempDir()
	s.WriteToken(t, dir, ns, name)
	write(t, dir, "ca.crt", s.CA)
	write(t, dir, "namespace", []byte(ns))
	return dir, map[string]string{"KUBERNETES_SERVICE_HOST": s.Host, "KUBERNETES_SERVICE_PORT": s.Port}
}

// WriteToken mints a new token for ns/name and replaces dir/token with
// it, as the kubelet rotates a projected token: a new file renamed in.
func (s *Server) WriteToken(t testing.TB, dir, ns, name string) {
	t.Helper()
	tr := s.Must(t, "POST", "/api/v1/namespaces/"+ns+"/serviceaccounts/"+name+"/token", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"expirationSeconds": 3600}})
	tok, _ := tr["status"].(map[string]any)["token"].(string)
	if tok == "" {
		t.Fatalf("no token: %v", tr)
	}
	write(t, dir, "token.new", []byte(tok))
	if err := os.Rename(filepath.Join(dir, "token.new"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
}

// Kubeconfig writes a kubeconfig for the admin and returns its path.
func (s *Server) Kubeconfig(t testing.TB, namespace string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	write(t, filepath.Dir(p), "ca.crt", s.CA)
	write(t, filepath.Dir(p), "kubeconfig", []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: ca.crt
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: %s
`, s.URL, AdminToken, namespace)))
	return p
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
