package e2e

import (
	"github.com/initbox/initbox/internal/image"

	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
)

// pod runs containers of the image under Debian's runc the way the kubelet
// would for a pod: the "restricted" profile (uid 65532, read-only root, no
// capabilities, no new privileges), a shared emptyDir at /shared, the pod's
// resolv.conf, and a termination-log file per container. The network is
// the host's, so the containers reach the test's loopback servers.
type pod struct {
	t          testing.TB
	bundle     string
	base       map[string]any
	entrypoint []string
	runcRoot   string
	shared     string
	resolvConf string
	dns        *dnstest.Server
	n          int
}

func newPod(t testing.TB) *pod {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "running containers with runc needs root")
	}
	for _, tool := range []string{"runc", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, tool+" is not installed (apt-get install runc umoci)")
		}
	}
	spec := image.TestSpec(t)
	img, err := spec.Image("amd64")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "oci"), image.EmptyIndex())
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "amd64"})); err != nil {
		t.Fatal(err)
	}
	p := &pod{t: t, bundle: filepath.Join(dir, "bundle"), runcRoot: filepath.Join(dir, "runc"), shared: filepath.Join(dir, "shared")}
	if out, err := exec.Command("umoci", "unpack", "--image", filepath.Join(dir, "oci")+":amd64", p.bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(p.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &p.base); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	p.entrypoint = cf.Config.Entrypoint
	// An emptyDir is world-writable; the kubelet makes the mount points.
	if err := os.Mkdir(p.shared, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p.shared, 0o777)
	os.WriteFile(filepath.Join(p.bundle, "rootfs", "etc", "resolv.conf"), nil, 0o644)
	// The runtime's own mount points too, so that the rootfs digest sees
	// only what a container writes.
	for _, d := range []string{"shared", "dev", "proc", "sys", "templates", "etc/podinfo", "ca", "pw"} {
		os.Mkdir(filepath.Join(p.bundle, "rootfs", d), 0o755)
	}
	p.dns = dnstest.Start(t)
	if !p.dns.Port53 {
		t.Fatal("the test DNS server could not listen on port 53")
	}
	p.resolvConf, _ = p.dns.ResolvConf(t, "ndots:5")
	return p
}

// container is what a pod spec says of one container.
type container struct {
	name    string
	command []string // replaces the image's ENTRYPOINT
	args    []string // replaces its CMD
	env     []string
	ro      map[string]string // read-only volumes: mount point → host directory
}

type exit struct {
	code           int
	stdout, stderr string
	termination    string
	elapsed        time.Duration
}

// config is the runc configuration for c.
func (p *pod) config(c container, termLog string) []byte {
	var cfg map[string]any
	b, _ := json.Marshal(p.base)
	json.Unmarshal(b, &cfg)
	argv := append(append([]string(nil), c.command...), c.args...)
	if c.command == nil {
		argv = append(append([]string(nil), p.entrypoint...), c.args...)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = argv
	proc["env"] = append([]string{"PATH=/bin"}, c.env...) // no HOME, as the tests demand
	proc["user"] = map[string]any{"uid": image.NonRoot, "gid": image.NonRoot}
	proc["noNewPrivileges"] = true
	caps := map[string]any{}
	for _, k := range []string{"bounding", "effective", "inheritable", "permitted", "ambient"} {
		caps[k] = []string{}
	}
	proc["capabilities"] = caps
	cfg["root"] = map[string]any{"path": "rootfs", "readonly": true}
	linux := cfg["linux"].(map[string]any)
	var ns []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			ns = append(ns, n)
		}
	}
	linux["namespaces"] = ns
	mounts := cfg["mounts"].([]any)
	mounts = append(mounts,
		map[string]any{"destination": "/shared", "type": "bind", "source": p.shared, "options": []string{"rbind", "rw"}},
		map[string]any{"destination": "/etc/resolv.conf", "type": "bind", "source": p.resolvConf, "options": []string{"rbind", "ro"}},
		map[string]any{"destination": "/dev/termination-log", "type": "bind", "source": termLog, "options": []string{"rbind", "rw"}},
	)
	for dest, src := range c.ro {
		mounts = append(mounts, map[string]any{"destination": dest, "type": "bind", "source": src, "options": []string{"rbind", "ro"}})
	}
	cfg["mounts"] = mounts
	out, _ := json.MarshalIndent(cfg, "", " ")
	return out
}

// start starts c; wait collects it.
func (p *pod) start(c container) (*exec.Cmd, string, string, *bytes.Buffer, *bytes.Buffer) {
	p.t.Helper()
	p.n++
	id := fmt.Sprintf("%s-%d-%d", c.name, os.Getpid(), p.n)
	termLog := filepath.Join(p.t.TempDir(), "termination-log")
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		p.t.Fatal(err)
	}
	os.Chmod(termLog, 0o666)
	if err := os.WriteFile(filepath.Join(p.bundle, "config.json"), p.config(c, termLog), 0o644); err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command("runc", "--root", p.runcRoot, "run", "--bundle", p.bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	return cmd, id, termLog, &stdout, &stderr
}

func (p *pod) run(c container) exit {
	p.t.Helper()
	began := time.Now()
	cmd, id, termLog, stdout, stderr := p.start(c)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		exec.Command("runc", "--root", p.runcRoot, "kill", id, "KILL").Run()
		p.t.Fatalf("%s: still running after 2 minutes", c.name)
	}
	return p.collect(c, err, began, termLog, stdout, stderr)
}

func (p *pod) collect(c container, err error, began time.Time, termLog string, stdout, stderr *bytes.Buffer) exit {
	p.t.Helper()
	e := exit{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(began)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		e.code = ee.ExitCode()
	default:
		p.t.Fatalf("%s: runc: %v", c.name, err)
	}
	tm, _ := os.ReadFile(termLog)
	e.termination = string(tm)
	p.t.Logf("container %s (%q %q) → exit %d in %s\n%s%s", c.name, c.command, c.args, e.code, e.elapsed.Round(time.Millisecond), e.stdout, e.stderr)
	return e
}

func (e exit) must(t testing.TB, code int) {
	t.Helper()
	if e.code != code {
		t.Fatalf("exit %d, want %d\n%s", e.code, code, e.stderr)
	}
}

// rootfsDigest sums every path, mode and content under the unpacked root,
// to show that no container wrote outside the shared directory.
func rootfsDigest(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", p, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err == nil {
				io.Copy(h, f)
				f.Close()
			}
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// The pod-like sequence of the seed scenarios, in order, then an "app"
// that uses the results.
func TestPodSequenceUnderRunc(t *testing.T) {
	testenv.RealServer(t, "runc")
	p := newPod(t)
	before := rootfsDigest(t, filepath.Join(p.bundle, "rootfs"))

	// 1. waitfor dns myservice, in the args: form, while the Service's
	// record is created a moment later.
	go func() {
		time.Sleep(1500 * time.Millisecond)
		p.dns.Add(t, "myservice.default.svc.cluster.local. 5 IN A 127.0.0.1")
	}()
	e := p.run(container{name: "init-myservice", args: []string{"waitfor", "dns", "myservice", "--timeout", "60s"}})
	e.must(t, 0)
	if e.elapsed < 1500*time.Millisecond || !strings.HasPrefix(e.termination, "waitfor: ready: dns myservice") {
		t.Fatalf("ready after %s with termination message %q", e.elapsed, e.termination)
	}
	// The command: form (the applet by its link's name) agrees.
	p.run(container{name: "init-myservice-command", command: []string{"waitfor", "dns", "myservice"}, args: []string{"--timeout", "10s"}}).must(t, 0)

	// 2. fetch an archive from a loopback server into the shared volume,
	// verified by its checksum, in the args: form; a re-run is a no-op.
	site := siteArchive(t)
	srv := serve(t, map[string][]byte{"/site.tar.gz": site})
	fetchArgs := []string{"fetch", srv.URL + "/site.tar.gz", "/shared/html", "--checksum", sha256Hex(site)}
	e = p.run(container{name: "init-fetch", args: fetchArgs})
	e.must(t, 0)
	if !strings.HasPrefix(e.termination, "fetch: fetched ") {
		t.Fatalf("termination message %q", e.termination)
	}
	e = p.run(container{name: "init-fetch-again", args: fetchArgs})
	e.must(t, 0)
	if !strings.HasPrefix(e.termination, "fetch: up to date") || srv.gets() != 1 {
		t.Fatalf("second fetch: %q after %d GETs", e.termination, srv.gets())
	}
	if b, err := os.ReadFile(filepath.Join(p.shared, "html", "index.html")); err != nil || string(b) != "<h1>hello from initbox</h1>" {
		t.Fatalf("fetched page: %q %v", b, err)
	}

	// 3. render a config from a ConfigMap-like template and the downward
	// API (env and a downwardAPI volume, laid out as the kubelet does); a
	// re-run leaves the file alone.
	templates := t.TempDir()
	os.WriteFile(filepath.Join(templates, "app.conf.tmpl"), []byte(
		"name={{ .Pod.Name }}\nip={{ .Pod.IP }}\ntier={{ .Pod.Labels.tier }}\nport={{ .Values.port }}\n"), 0o644)
	podinfo := testenv.Podinfo(t, map[string]string{"labels": testenv.KubeletMap(map[string]string{"tier": "web ✓"})})
	// The kubelet makes volume files readable by the pod's user.
	filepath.Walk(podinfo, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, fi.Mode()|0o055)
		}
		return nil
	})
	podEnv := []string{"POD_NAME=web-0", "POD_IP=10.1.2.3", "POD_UID=uid-0"}
	renderC := container{name: "init-render", env: podEnv, ro: map[string]string{"/templates": templates, "/etc/podinfo": podinfo},
		args: []string{"render", "/templates/app.conf.tmpl", "--podinfo", "/etc/podinfo", "--set", "port=8080", "--out", "/shared/config/app.conf"}}
	e = p.run(renderC)
	e.must(t, 0)
	if b, err := os.ReadFile(filepath.Join(p.shared, "config", "app.conf")); err != nil || string(b) != "name=web-0\nip=10.1.2.3\ntier=web ✓\nport=8080\n" {
		t.Fatalf("rendered config: %q %v", b, err)
	}
	renderC.name = "init-render-again"
	if e = p.run(renderC); e.code != 0 || !strings.HasSuffix(strings.TrimSpace(e.termination), "unchanged") {
		t.Fatalf("second render: exit %d, %q", e.code, e.termination)
	}

	// 4. register with a management service on loopback; its answer, an
	// instance ID, is kept for the app.
	var registered atomic.Value
	mgmt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		registered.Store(r.Method + " " + r.URL.Path + " " + string(b) + " key=" + r.Header.Get("Idempotency-Key"))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "instance-42")
	}))
	defer mgmt.Close()
	p.run(container{name: "init-register", env: podEnv, args: []string{"register", "http", mgmt.URL + "/register",
		"--data", "instance={{ .Pod.Name }}&ip={{ .Pod.IP }}", "--output", "/shared/instance-id", "--timeout", "30s"}}).must(t, 0)
	if got, _ := registered.Load().(string); !strings.HasPrefix(got, "POST /register instance=web-0&ip=10.1.2.3 key=") || len(got) < len("POST /register instance=web-0&ip=10.1.2.3 key=")+32 {
		t.Fatalf("the management service saw %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(p.shared, "instance-id")); err != nil || string(b) != "instance-42" {
		t.Fatalf("instance ID: %q %v", b, err)
	}

	// run: several steps in one container, a parallel stage first.
	e = p.run(container{name: "init-run", args: []string{"run", "waitfor dns myservice --timeout 10s & sleep 0.1", "prepare --dir /shared/prepared:0750"}})
	e.must(t, 0)
	if fi, err := os.Stat(filepath.Join(p.shared, "prepared")); err != nil || fi.Mode().Perm() != 0o750 || !strings.HasPrefix(e.termination, "run: 3 steps done") {
		t.Fatalf("run: %v %v, termination message %q", fi, err, e.termination)
	}

	// 5. install /shared/bin, twice: the second run changes nothing.
	p.run(container{name: "install", command: []string{"install", "/shared/bin"}}).must(t, 0)
	e = p.run(container{name: "install-again", args: []string{"install", "/shared/bin"}})
	e.must(t, 0)
	if !strings.HasPrefix(e.termination, "install: up to date") {
		t.Fatalf("second install: %q", e.termination)
	}
	fi, err := os.Stat(filepath.Join(p.shared, "bin", "initbox"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != image.NonRoot || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", fi, err)
	}

	// The app: runs the installed copy from the shared volume (a preStop
	// hook would), against a server on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p.run(container{name: "app", command: []string{"/shared/bin/waitfor", "tcp", ln.Addr().String(), "--timeout", "10s"}}).must(t, 0)

	if after := rootfsDigest(t, filepath.Join(p.bundle, "rootfs")); after != before {
		t.Fatal("a container wrote outside the shared directory")
	}
	var names []string
	ents, _ := os.ReadDir(p.shared)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bin config html instance-id prepared" {
		t.Fatalf("the shared directory holds %v", names)
	}
}

// siteArchive is a small tar.gz holding index.html.
func siteArchive(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := "<h1>hello from initbox</h1>"
	tw.WriteHeader(&tar.Header{Name: "index.html", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	io.WriteString(tw, body)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("sha256:%x", s)
}

type fileServer struct {
	*httptest.Server
	n atomic.Int32
}

func (f *fileServer) gets() int { return int(f.n.Load()) }

func serve(t testing.TB, files map[string][]byte) *fileServer {
	t.Helper()
	f := &fileServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		f.n.Add(1)
		w.Write(b)
	}))
	t.Cleanup(f.Close)
	return f
}

// A failing init container stops the sequence with exit 1, and the reason
// reaches the termination message, as `kubectl describe pod` shows it.
func TestFailingInitContainerUnderRunc(t *testing.T) {
	testenv.RealServer(t, "runc")
	p := newPod(t)
	// A bad checksum: nothing reaches the shared volume.
	site := siteArchive(t)
	srv := serve(t, map[string][]byte{"/site.tar.gz": site})
	bad := sha256Hex([]byte("not the site"))
	e := p.run(container{name: "init-fetch-bad", args: []string{"fetch", srv.URL + "/site.tar.gz", "/shared/html", "--checksum", bad}})
	e.must(t, 1)
	if !strings.HasPrefix(e.termination, "fetch: fetching "+srv.URL+"/site.tar.gz: checksum mismatch: want "+bad) {
		t.Fatalf("termination message %q", e.termination)
	}
	if ents, _ := os.ReadDir(p.shared); len(ents) != 0 {
		t.Fatalf("the shared volume holds %v after a failed fetch", ents)
	}
	e = p.run(container{name: "init-nosuch", command: []string{"waitfor"}, args: []string{"dns", "nosuch", "--timeout", "1s"}})
	e.must(t, 1)
	want := "waitfor: timed out after 1s: dns nosuch: NXDOMAIN for nosuch.default.svc.cluster.local., nosuch.svc.cluster.local., nosuch.cluster.local., nosuch."
	if !strings.HasPrefix(e.termination, want) {
		t.Fatalf("termination message %q, want %q", e.termination, want)
	}
	// Bad usage is exit 2, and says so there too.
	e = p.run(container{name: "init-bad", args: []string{"waitfor", "tcp", "--timeout", "banana", "x:1"}})
	e.must(t, 2)
	if !strings.HasPrefix(e.termination, `waitfor: bad usage: invalid value "banana" for --timeout`) {
		t.Fatalf("termination message %q", e.termination)
	}
}

// cert under the restricted profile (uid 65532, a read-only root, no
// capabilities): a per-pod pair from a CA in a read-only "Secret" and a
// truststore of the image's own CA bundle plus that CA, into the emptyDir;
// a second run keeps them.
func TestCertUnderRunc(t *testing.T) {
	testenv.RealServer(t, "runc")
	p := newPod(t)
	before := rootfsDigest(t, filepath.Join(p.bundle, "rootfs"))
	caDir, pwDir := t.TempDir(), t.TempDir()
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(caDir, "tls.key"),
		"-out", filepath.Join(caDir, "tls.crt"), "-subj", "/CN=shop CA", "-days", "30",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign").CombinedOutput()
	if err != nil {
		testenv.Skip(t, fmt.Sprintf("openssl made no CA: %v\n%s", err, out))
	}
	os.WriteFile(filepath.Join(pwDir, "password"), []byte("changeit-store\n"), 0o644)
	for _, d := range []string{caDir, pwDir} {
		os.Chmod(d, 0o755)
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			os.Chmod(filepath.Join(d, e.Name()), 0o644) // a Secret volume's files, readable by the pod's user
		}
	}
	c := container{name: "init-cert",
		args: []string{"cert", "--out", "/shared/certs", "--pod-sans", "--service", "web", "--ca-cert", "/ca/tls.crt", "--ca-key", "/ca/tls.key",
			"--truststore", "/shared/stores/trust.p12", "--trust", "/ca/tls.crt", "--store-password-file", "/pw/password"},
		env: []string{"POD_NAME=web-0", "POD_NAMESPACE=shop", "POD_IP=10.1.2.3"},
		ro:  map[string]string{"/ca": caDir, "/pw": pwDir}}
	e := p.run(c)
	e.must(t, 0)
	if !strings.HasPrefix(e.termination, "cert: issued /shared/certs (web-0.web,") {
		t.Fatalf("termination message %q", e.termination)
	}
	key := filepath.Join(p.shared, "certs", "tls.key")
	fi, err := os.Stat(key)
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != image.NonRoot || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tls.key: %v %v", fi, err)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(p.shared, "certs", "ca.crt"), filepath.Join(p.shared, "certs", "tls.crt")).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// The truststore holds the image's bundle plus the CA.
	bundle := strings.Count(string(mustReadFile(t, "/etc/ssl/certs/ca-certificates.crt")), "BEGIN CERTIFICATE")
	if out, err := exec.Command("openssl", "pkcs12", "-in", filepath.Join(p.shared, "stores", "trust.p12"), "-passin", "pass:changeit-store", "-nokeys").CombinedOutput(); err != nil ||
		strings.Count(string(out), "BEGIN CERTIFICATE") < bundle || !strings.Contains(string(out), "shop CA") {
		t.Fatalf("the truststore (%d system CAs on this machine): %v\n%.300s", bundle, err, out)
	}
	c.name = "init-cert-again"
	e = p.run(c)
	e.must(t, 0)
	if !strings.HasPrefix(e.termination, "cert: unchanged: /shared/certs") || !strings.Contains(e.termination, "unchanged: /shared/stores/trust.p12") {
		t.Fatalf("second run: %q", e.termination)
	}
	if after := rootfsDigest(t, filepath.Join(p.bundle, "rootfs")); after != before {
		t.Fatal("cert wrote outside the shared volume")
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// As PID 1 of its container, initbox stops on SIGTERM within a second with 143.
func TestSIGTERMAsPID1UnderRunc(t *testing.T) {
	testenv.RealServer(t, "runc")
	p := newPod(t)
	began := time.Now()
	cmd, id, termLog, stdout, stderr := p.start(container{name: "sigterm", args: []string{"waitfor", "dns", "never"}})
	time.Sleep(1500 * time.Millisecond)
	sent := time.Now()
	if out, err := exec.Command("runc", "--root", p.runcRoot, "kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v %s", err, out)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	e := p.collect(container{name: "sigterm"}, err, began, termLog, stdout, stderr)
	e.must(t, 143)
	if took > time.Second {
		t.Errorf("exited %s after SIGTERM", took)
	}
	if !strings.HasPrefix(e.termination, "waitfor: terminated by SIGTERM: dns never: NXDOMAIN") {
		t.Fatalf("termination message %q", e.termination)
	}

	// waitfor … -- CMD: once ready, CMD is PID 1 (here the image's sleep
	// applet, through its link): the SIGTERM reaches it, not waitfor.
	began = time.Now()
	c := container{name: "exec-app", args: []string{"waitfor", "file", "/etc/passwd", "--", "sleep", "1h"}}
	cmd, id, termLog, stdout, stderr = p.start(c)
	time.Sleep(1500 * time.Millisecond)
	if out, err := exec.Command("runc", "--root", p.runcRoot, "kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v %s", err, out)
	}
	e = p.collect(c, cmd.Wait(), began, termLog, stdout, stderr)
	e.must(t, 143)
	if !strings.HasPrefix(e.termination, "sleep: terminated by SIGTERM") || !strings.Contains(e.stderr, "msg=exec command=sleep") {
		t.Fatalf("termination message %q, stderr %s", e.termination, e.stderr)
	}
}

// BenchmarkSeedPattern: the seed pattern as four init containers against
// one run container, same steps, same dependencies (present from the
// start), under runc: the time from the first container's start to the
// app's exit (the app does nothing). The two forms alternate, and the
// medians are reported (make bench).
func BenchmarkSeedPattern(b *testing.B) {
	p := newPod(b)
	p.dns.Add(b, "myservice.default.svc.cluster.local. 5 IN A 127.0.0.1")
	p.dns.Add(b, "mydb.default.svc.cluster.local. 5 IN A 127.0.0.1")
	site := siteArchive(b)
	srv := serve(b, map[string][]byte{"/site.tar.gz": site})
	templates := b.TempDir()
	os.WriteFile(filepath.Join(templates, "app.conf.tmpl"), []byte("name={{ .Pod.Name }}\n"), 0o644)
	env := []string{"POD_NAME=web-0"}
	ro := map[string]string{"/templates": templates}
	fetchStep := []string{"fetch", srv.URL + "/site.tar.gz", "/shared/html", "--checksum", sha256Hex(site)}
	renderStep := []string{"render", "/templates/app.conf.tmpl", "--out", "/shared/app.conf"}
	forms := map[string][]container{
		"four init containers": {
			{name: "init-myservice", args: []string{"waitfor", "dns", "myservice"}},
			{name: "init-mydb", args: []string{"waitfor", "dns", "mydb"}},
			{name: "init-fetch", args: fetchStep},
			{name: "init-render", args: renderStep, env: env, ro: ro},
		},
		"one run container": {
			{name: "init-run", env: env, ro: ro, args: []string{"run", "waitfor dns myservice & waitfor dns mydb",
				strings.Join(fetchStep, " "), strings.Join(renderStep, " ")}},
		},
	}
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"four init containers", "one run container"} {
			os.RemoveAll(filepath.Join(p.shared, "html"))
			os.Remove(filepath.Join(p.shared, "app.conf"))
			start := time.Now()
			for _, c := range forms[name] {
				if e := p.run(c); e.code != 0 {
					b.Fatalf("%s: %s: exit %d\n%s", name, c.name, e.code, e.stderr)
				}
			}
			p.run(container{name: "app", args: []string{"sleep", "0"}}).must(b, 0)
			times[name] = append(times[name], time.Since(start))
		}
	}
	b.StopTimer()
	for name, ds := range times {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "ms-median-"+strings.ReplaceAll(name, " ", "-"))
	}
}
