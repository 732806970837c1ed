package fetch

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// pkt is one pkt-line of git's protocol.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// advertise is a smart-HTTP ref listing: refs in order (the first also
// carries the capabilities).
func advertise(caps string, refs ...[2]string) string {
	var b strings.Builder
	b.WriteString(pkt("# service=git-upload-pack\n") + "0000")
	for i, r := range refs {
		line := r[0] + " " + r[1]
		if i == 0 {
			line += "\x00" + caps
		}
		b.WriteString(pkt(line + "\n"))
	}
	b.WriteString("0000")
	return b.String()
}

// hostileGit is a git smart-HTTP server of the test's own: it answers the
// listing with refs it makes up and passes the pack request to Debian's git
// http-backend serving the repositories under root (or answers it itself).
type hostileGit struct {
	*httptest.Server
	refs  func(w http.ResponseWriter, r *http.Request) bool // true: answered
	pack  func(w http.ResponseWriter, r *http.Request) bool
	auths atomic.Int32 // requests that carried an Authorization header
}

func serveHostileGit(t *testing.T, root string) *hostileGit {
	t.Helper()
	backend := serveGit(t, root, "", "")
	h := &hostileGit{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			h.auths.Add(1)
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs") && h.refs != nil && h.refs(w, r):
			return
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack") && h.pack != nil && h.pack(w, r):
			return
		}
		backend.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

// hostileRepo serves makeRepo's repository r.git through a hostileGit and
// returns the server and the commit at its HEAD.
func hostileRepo(t *testing.T) (*hostileGit, string) {
	t.Helper()
	needGit(t)
	root := t.TempDir()
	work := makeRepo(t, root, "r", false)
	return serveHostileGit(t, root), gitCmd(t, work, "rev-parse", "HEAD")
}

// A ref name from the server is data: a HEAD that names
// refs/heads/../../../../victim (listed too) is refused before anything is
// written, and no file outside DEST changes.
func TestGitHostileRefNames(t *testing.T) {
	srv, head := hostileRepo(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o644)
	for name, ref := range map[string]string{
		"dotdot":  "refs/heads/../../../../../../../../.." + victim,
		"control": "refs/heads/a\x01b",
		"lock":    "refs/heads/x.lock",
	} {
		t.Run(name, func(t *testing.T) {
			srv.refs = func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
				fmt.Fprint(w, advertise("symref=HEAD:"+ref+" ofs-delta shallow no-progress", [2]string{head, "HEAD"}, [2]string{head, ref}))
				return true
			}
			dest := filepath.Join(dir, name, "dest")
			r := run(t, nil, "git::"+srv.URL+"/r.git", dest, "--git-dir", "--timeout", "60s")
			r.MustExit(t, 1, "invalid ref name")
			if r.Elapsed > 10*time.Second {
				t.Fatalf("a bad ref name was retried: %s", r.Elapsed)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Fatalf("a file outside DEST was written: %q", b)
			}
			if _, err := os.Lstat(dest); err == nil {
				t.Fatal("DEST made from a listing with a bad ref name")
			}
			noTemp(t, filepath.Dir(dest))
		})
	}
}

// --git-token-file goes only to the host the user named: a listing
// redirected to another host is followed anonymously there, for the listing
// and for the pack's POST alike.
func TestGitTokenStaysOnItsHost(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	makeRepo(t, root, "r", false)
	other := serveHostileGit(t, root) // the redirect's host: counts credentials
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer first.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("deploy:s3cret\n"), 0o600)
	dest := filepath.Join(t.TempDir(), "d")
	run(t, nil, "git::"+first.URL+"/r.git", dest, "--git-token-file", tok, "--timeout", "60s").MustExit(t, 0, "msg=fetched")
	if n := other.auths.Load(); n != 0 {
		t.Fatalf("the token reached the redirect's host in %d requests", n)
	}
	if _, err := os.Stat(filepath.Join(dest, "README.md")); err != nil {
		t.Fatal(err)
	}
}

// What the server will say again is not asked again: a HEAD naming a
// branch it does not have, a redirect away from /info/refs, an https →
// http redirect; and a URL with a query git cannot carry is bad usage.
func TestGitPermanentFailures(t *testing.T) {
	srv, head := hostileRepo(t)
	srv.refs = func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.Contains(r.URL.Path, "/gone.git/"):
			fmt.Fprint(w, advertise("symref=HEAD:refs/heads/gone shallow", [2]string{head, "refs/heads/main"}))
		case strings.Contains(r.URL.Path, "/elsewhere.git/"):
			http.Redirect(w, r, "/login", http.StatusFound)
		default:
			return false
		}
		return true
	}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pemCert(tlsSrv.Certificate().Raw), 0o644)
	for src, want := range map[string]string{
		"git::" + srv.URL + "/gone.git":      "the remote's HEAD names refs/heads/gone, which it does not have",
		"git::" + srv.URL + "/elsewhere.git": "does not end with /info/refs",
		"git::" + tlsSrv.URL + "/r.git":      `changes scheme from "https" to "http"`,
	} {
		r := run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--timeout", "60s", "--ca-file", ca)
		r.MustExit(t, 1, want)
		if r.Elapsed > 10*time.Second || strings.Contains(r.Stderr, "attempt failed") {
			t.Fatalf("%s was retried (%s):\n%s", src, r.Elapsed, r.Stderr)
		}
	}
	run(t, nil, "git::"+srv.URL+"/r.git?x=1", filepath.Join(t.TempDir(), "d")).MustExit(t, 2, `unknown query parameter "x"`)
}

// packObject is one object of a pack: its header (type, inflated size),
// an OFS_DELTA's distance back to its base, and its zlib-compressed data.
func packObject(typ int, size int64, ofs int64, data []byte) []byte {
	var b bytes.Buffer
	c := byte(typ<<4) | byte(size&0x0f)
	size >>= 4
	for size > 0 {
		b.WriteByte(c | 0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	b.WriteByte(c)
	if typ == 6 {
		enc := []byte{byte(ofs & 0x7f)}
		for ofs >>= 7; ofs > 0; ofs >>= 7 {
			ofs--
			enc = append([]byte{0x80 | byte(ofs&0x7f)}, enc...)
		}
		b.Write(enc)
	}
	zw := zlib.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// deltaBomb is a pack of a 64 KiB blob and an OFS_DELTA on it that
// declares a 1 TiB result, built by 16 Mi copies of the whole base: about
// 16 KB on the wire.
func deltaBomb() []byte {
	const base, target = 64 << 10, 1 << 40
	varint := func(n int64) []byte {
		var out []byte
		for {
			b := byte(n & 0x7f)
			if n >>= 7; n > 0 {
				out = append(out, b|0x80)
				continue
			}
			return append(out, b)
		}
	}
	delta := append(varint(base), varint(target)...)
	delta = append(delta, bytes.Repeat([]byte{0x80}, target/base)...) // copy offset 0, size 0x10000
	var p bytes.Buffer
	p.WriteString("PACK\x00\x00\x00\x02\x00\x00\x00\x02")
	first := p.Len()
	p.Write(packObject(3, base, 0, make([]byte, base)))
	second := p.Len()
	p.Write(packObject(6, int64(len(delta)), int64(second-first), delta))
	sum := sha1.Sum(p.Bytes())
	p.Write(sum[:])
	return p.Bytes()
}

// A 16 KB pack whose delta declares 1 TiB is refused from its header, at
// once — never resolved — and nothing is left staged.
func TestGitDeltaBomb(t *testing.T) {
	srv, head := hostileRepo(t)
	bomb := deltaBomb()
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	srv.refs = func(w http.ResponseWriter, r *http.Request) bool {
		fmt.Fprint(w, advertise("symref=HEAD:refs/heads/main ofs-delta", [2]string{head, "HEAD"}, [2]string{head, "refs/heads/main"}))
		return true
	}
	srv.pack = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		fmt.Fprint(w, pkt("NAK\n"))
		w.Write(bomb)
		return true
	}
	dir := t.TempDir()
	r := run(t, nil, "git::"+srv.URL+"/r.git?depth=0", filepath.Join(dir, "d"), "--timeout", "60s")
	r.MustExit(t, 1, "a delta building an object of 1099511627776 bytes, more than --max-unpacked")
	if r.Elapsed > 10*time.Second {
		t.Fatalf("the bomb took %s to refuse", r.Elapsed)
	}
	noTemp(t, dir)
}

// Trees nest as deep as git's core.maxTreeDepth (4096) allows, each entry
// costing the same however deep it is (through a directory descriptor per
// level, not a path walked again: paths here are 8 KB, past PATH_MAX); one
// level more is refused, naming the limit.
func TestGitDeepTree(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	deepRepo(t, root, 4097, 4096)
	srv := serveGit(t, root, "", "")
	dest := filepath.Join(t.TempDir(), "d")
	run(t, nil, "git::"+srv.URL+"/deep4097.git?ref=d4096", dest, "--timeout", "120s").MustExit(t, 0, "msg=fetched", "entries=4096")
	d, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 4096; i++ {
		next, err := os.OpenFile("/proc/self/fd/"+fmt.Sprint(d.Fd())+"/d", os.O_RDONLY, 0)
		d.Close()
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		d = next
	}
	b, err := os.ReadFile("/proc/self/fd/" + fmt.Sprint(d.Fd()) + "/f")
	d.Close()
	if string(b) != "bottom\n" {
		t.Fatalf("the file at the bottom: %q, %v", b, err)
	}
	run(t, nil, "git::"+srv.URL+"/deep4097.git", filepath.Join(t.TempDir(), "d"), "--timeout", "120s").MustExit(t, 1, "trees nest more than 4096 deep (git's core.maxTreeDepth)")
}

// deepRepo writes, into a new bare repository under root, a commit whose
// tree nests depth directories as main (and one for each of also, as
// refs/heads/dN), and returns the repository's path.
func deepRepo(tb testing.TB, root string, depth int, also ...int) string {
	tb.Helper()
	bare := filepath.Join(root, fmt.Sprintf("deep%d.git", depth))
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", bare).CombinedOutput(); err != nil {
		tb.Fatalf("git init: %v %s", err, out)
	}
	raw := func(h string) []byte { b, _ := hex.DecodeString(h); return b }
	put := func(typ string, content []byte) string { return writeLoose(tb, bare, typ, content) }
	tree := put("tree", append([]byte("100644 f\x00"), raw(put("blob", []byte("bottom\n")))...))
	ref := func(name, tree string) {
		c := put("commit", []byte("tree "+tree+"\nauthor t <t@example.com> 0 +0000\ncommitter t <t@example.com> 0 +0000\n\ndeep\n"))
		if out, err := exec.Command("git", "-C", bare, "update-ref", name, c).CombinedOutput(); err != nil {
			tb.Fatalf("update-ref: %v %s", err, out)
		}
	}
	for d := 2; d <= depth; d++ {
		tree = put("tree", append([]byte("40000 d\x00"), raw(tree)...))
		if slices.Contains(also, d) {
			ref(fmt.Sprintf("refs/heads/d%d", d), tree)
		}
	}
	ref("refs/heads/main", tree)
	return bare
}

// writeLoose stores an object in a bare repository as git does (zlib of
// "TYPE SIZE\x00" and the content), without a process per object.
func writeLoose(tb testing.TB, bare, typ string, content []byte) string {
	tb.Helper()
	raw := append([]byte(fmt.Sprintf("%s %d\x00", typ, len(content))), content...)
	sum := sha1.Sum(raw)
	h := fmt.Sprintf("%x", sum)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	p := filepath.Join(bare, "objects", h[:2], h[2:])
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, z.Bytes(), 0o444); err != nil && !os.IsExist(err) {
		tb.Fatal(err)
	}
	return h
}

// How a checkout's time grows with the depth of its tree (make bench's
// git section reports it; linear means each doubling doubles the time).
func BenchmarkGitDeepTree(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is needed")
	}
	root := b.TempDir()
	for _, depth := range []int{1000, 2000, 4000} {
		bare := deepRepo(b, root, depth)
		b.Run(fmt.Sprint(depth), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dest := filepath.Join(b.TempDir(), "d")
				r := testenv.Run(b, context.Background(), Applet, nil, "git::file://"+bare, dest, "-q")
				if r.Code != 0 {
					b.Fatalf("exit %d: %s", r.Code, r.Stderr)
				}
			}
		})
	}
}
