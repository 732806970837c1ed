package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/testenv"
)

func run(t *testing.T, env map[string]string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, env, args...)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// server serves files by path and counts the GETs of each.
type server struct {
	*httptest.Server
	files map[string][]byte
	gets  map[string]*atomic.Int32
	// hook, when set, may answer a request itself (return true).
	hook func(w http.ResponseWriter, r *http.Request, n int32) bool
}

func newServer(t *testing.T, files map[string][]byte) *server {
	s := &server{files: files, gets: map[string]*atomic.Int32{}}
	for p := range files {
		s.gets[p] = &atomic.Int32{}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.gets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		n := c.Add(1)
		if s.hook != nil && s.hook(w, r, n) {
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(s.files[r.URL.Path])))
		w.Write(s.files[r.URL.Path])
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count(p string) int { return int(s.gets[p].Load()) }

// noTemp fails if a temporary file or directory is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestFetchReplacesALongerFileWhole(t *testing.T) {
	s := newServer(t, map[string][]byte{"/a.txt": []byte("new")})
	dir := t.TempDir()
	dest := filepath.Join(dir, "a.txt")
	os.WriteFile(dest, []byte("a much longer old content"), 0o600)
	run(t, nil, s.URL+"/a.txt", dest).MustExit(t, 0, "msg=fetched")
	if got := testenv.ReadFile(t, dest); got != "new" {
		t.Fatalf("DEST holds %q: go-getter's missing O_TRUNC reached the user", got)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	noTemp(t, dir)
}

func TestChecksumMismatchLeavesDestUntouched(t *testing.T) {
	body := []byte("the real content")
	s := newServer(t, map[string][]byte{"/a.bin": body})
	dir := t.TempDir()
	dest := filepath.Join(dir, "a.bin")
	os.WriteFile(dest, []byte("old"), 0o644)
	bad := sha([]byte("something else"))
	r := run(t, nil, s.URL+"/a.bin", dest, "--checksum", bad)
	r.MustExit(t, 1, "checksum mismatch: want "+bad+", got "+sha(body))
	if s.count("/a.bin") != 2 {
		t.Errorf("%d GETs: a mismatch is retried exactly once", s.count("/a.bin"))
	}
	if testenv.ReadFile(t, dest) != "old" {
		t.Fatal("DEST changed")
	}
	noTemp(t, dir)
	// The right checksum, in go-getter's URL form, is accepted.
	run(t, nil, s.URL+"/a.bin?checksum="+sha(body), dest).MustExit(t, 0)
	if testenv.ReadFile(t, dest) != string(body) {
		t.Fatal("not replaced")
	}
}

func TestIdempotentWithChecksum(t *testing.T) {
	body := []byte("payload")
	s := newServer(t, map[string][]byte{"/p": body})
	dest := filepath.Join(t.TempDir(), "sub", "dir", "p") // parents are created
	run(t, nil, s.URL+"/p", dest, "--checksum", sha(body)).MustExit(t, 0, "msg=fetched")
	fi1, _ := os.Stat(dest)
	r := run(t, nil, s.URL+"/p", dest, "--checksum", sha(body))
	r.MustExit(t, 0, `msg="up to date"`)
	fi2, _ := os.Stat(dest)
	if s.count("/p") != 1 || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("%d GETs; mtime %v then %v", s.count("/p"), fi1.ModTime(), fi2.ModTime())
	}
	// Without a checksum: --if-missing skips, otherwise DEST is replaced.
	run(t, nil, s.URL+"/p", dest, "--if-missing").MustExit(t, 0, `msg="up to date"`)
	run(t, nil, s.URL+"/p", dest).MustExit(t, 0, "msg=fetched")
	if s.count("/p") != 2 {
		t.Fatalf("%d GETs", s.count("/p"))
	}
}

func TestRetries(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10_000)
	s := newServer(t, map[string][]byte{"/drop": body, "/busy": body, "/limit": body, "/gone": body})
	s.hook = func(w http.ResponseWriter, r *http.Request, n int32) bool {
		switch {
		case r.URL.Path == "/drop" && n == 1:
			// Promise everything, send a part, drop the connection.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(200)
			w.Write(body[:1000])
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return true
		case r.URL.Path == "/busy" && n <= 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		case r.URL.Path == "/limit" && n == 1:
			w.Header().Set("Retry-After", "2")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		case r.URL.Path == "/gone":
			http.Error(w, "forbidden", http.StatusForbidden)
			return true
		}
		return false
	}
	dir := t.TempDir()
	run(t, nil, s.URL+"/drop", filepath.Join(dir, "drop"), "--checksum", sha(body), "--timeout", "30s").MustExit(t, 0, "attempt failed")
	run(t, nil, s.URL+"/busy", filepath.Join(dir, "busy"), "--timeout", "30s").MustExit(t, 0, "503 Service Unavailable")
	r := run(t, nil, s.URL+"/limit", filepath.Join(dir, "limit"), "--timeout", "30s")
	r.MustExit(t, 0, "429 Too Many Requests", "retry_in=2s")
	if r.Elapsed < 2*time.Second {
		t.Errorf("retried after %s, before Retry-After's 2 s", r.Elapsed)
	}
	// 4xx other than 408/429: no retry, exit 1 at once.
	r = run(t, nil, s.URL+"/gone", filepath.Join(dir, "gone"), "--timeout", "30s")
	r.MustExit(t, 1, "403 Forbidden")
	if s.count("/gone") != 1 || r.Elapsed > 5*time.Second {
		t.Errorf("%d GETs in %s", s.count("/gone"), r.Elapsed)
	}
	r = run(t, nil, s.URL+"/nothing-here", filepath.Join(dir, "404"), "--timeout", "30s")
	r.MustExit(t, 1, "404 Not Found")
	for _, d := range []string{"drop", "busy", "limit"} {
		if testenv.ReadFile(t, filepath.Join(dir, d)) != string(body) {
			t.Errorf("%s: wrong content", d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); err == nil {
		t.Error("a failed fetch left DEST")
	}
	noTemp(t, dir)
}

// Without a Content-Length, --max-size still holds: fail, never truncate.
func TestMaxSizeWithoutContentLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // chunked: no Content-Length
		for i := 0; i < 100; i++ {
			w.Write(make([]byte, 1024))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	r := run(t, nil, srv.URL+"/big", filepath.Join(dir, "big"), "--max-size", "10KiB", "--timeout", "30s")
	r.MustExit(t, 1, "the download is larger than --max-size 10KiB")
	if _, err := os.Stat(filepath.Join(dir, "big")); err == nil {
		t.Fatal("a truncated file reached DEST")
	}
	noTemp(t, dir)
	// With a Content-Length above the limit, it fails before reading.
	s := newServer(t, map[string][]byte{"/cl": make([]byte, 20_000)})
	run(t, nil, s.URL+"/cl", filepath.Join(dir, "cl"), "--max-size", "10KB").MustExit(t, 1, "larger than --max-size")
}

func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	plain := newServer(t, map[string][]byte{"/x": []byte("x")})
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/x", http.StatusFound)
	}))
	defer tls.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pemCert(tls.Certificate().Raw), 0o644)
	run(t, nil, tls.URL+"/x", filepath.Join(t.TempDir(), "x"), "--ca-file", ca).MustExit(t, 1, "refused a redirect from https to plain http")
	if plain.count("/x") != 0 {
		t.Fatal("followed the redirect")
	}
}

func TestHeaderFromFileNeverLogged(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("Bearer s3cr3t-T0ken-value\n"), 0o600)
	s := newServer(t, map[string][]byte{"/private": []byte("ok")})
	s.hook = func(w http.ResponseWriter, r *http.Request, n int32) bool {
		if r.Header.Get("Authorization") != "Bearer s3cr3t-T0ken-value" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return true
		}
		return false
	}
	r := run(t, nil, s.URL+"/private", filepath.Join(t.TempDir(), "p"), "--header", "Authorization: @"+tokenFile, "-v")
	r.MustExit(t, 0)
	if strings.Contains(r.Stderr, "s3cr3t") {
		t.Fatal("the token leaked")
	}
}

func TestChecksumURL(t *testing.T) {
	body := []byte("release")
	sums := fmt.Sprintf("%s  other.tgz\n%s *tool-1.0.tar\n", strings.Repeat("ab", 32), strings.TrimPrefix(sha(body), "sha256:"))
	s := newServer(t, map[string][]byte{"/dl/tool-1.0.tar": body, "/dl/SHA256SUMS": []byte(sums), "/dl/bad": body})
	dir := t.TempDir()
	run(t, nil, s.URL+"/dl/tool-1.0.tar", filepath.Join(dir, "t.tar"), "--archive", "none", "--checksum-url", s.URL+"/dl/SHA256SUMS").MustExit(t, 0)
	run(t, nil, s.URL+"/dl/tool-1.0.tar", filepath.Join(dir, "t.tar"), "--archive", "none", "--checksum-url", s.URL+"/dl/SHA256SUMS").MustExit(t, 0, `msg="up to date"`)
	if s.count("/dl/tool-1.0.tar") != 1 {
		t.Fatalf("%d GETs", s.count("/dl/tool-1.0.tar"))
	}
	run(t, nil, s.URL+"/dl/bad", filepath.Join(dir, "b"), "--checksum-url", s.URL+"/dl/SHA256SUMS").MustExit(t, 1, `no entry for "bad"`)
}

type tarEntry struct {
	name, body, link string
	typ              byte
	size             int64
}

func tgz(t *testing.T, es ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, Size: int64(len(e.body)) + e.size}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		tw.WriteHeader(h)
		if e.typ == tar.TypeReg {
			io.WriteString(tw, e.body)
			io.CopyN(tw, zeroReader{}, e.size)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func listTree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if rel != markerName {
				rel += "=" + string(b)
			}
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestArchiveSwappedWhole(t *testing.T) {
	v1 := tgz(t, tarEntry{name: "site/", typ: tar.TypeDir}, tarEntry{name: "site/index.html", typ: tar.TypeReg, body: "v1"}, tarEntry{name: "site/old.html", typ: tar.TypeReg, body: "old"})
	v2 := tgz(t, tarEntry{name: "site/", typ: tar.TypeDir}, tarEntry{name: "site/index.html", typ: tar.TypeReg, body: "v2"}, tarEntry{name: "site/link", typ: tar.TypeSymlink, link: "index.html"})
	s := newServer(t, map[string][]byte{"/v1.tar.gz": v1, "/v2.tgz": v2})
	dir := t.TempDir()
	dest := filepath.Join(dir, "html")
	run(t, nil, s.URL+"/v1.tar.gz", dest, "--checksum", sha(v1)).MustExit(t, 0, "entries=3")
	if got := listTree(t, dest); got != ".initbox-fetch site site/index.html=v1 site/old.html=old" {
		t.Fatal(got)
	}
	run(t, nil, s.URL+"/v1.tar.gz", dest, "--checksum", sha(v1)).MustExit(t, 0, `msg="up to date"`)
	if s.count("/v1.tar.gz") != 1 {
		t.Fatal("downloaded again")
	}
	// Any checksum algorithm makes a re-run a no-op, not only sha256.
	s512 := sha512.Sum512(v1)
	other := filepath.Join(dir, "html512")
	run(t, nil, s.URL+"/v1.tar.gz", other, "--checksum", "sha512:"+hex.EncodeToString(s512[:])).MustExit(t, 0, "msg=fetched")
	run(t, nil, s.URL+"/v1.tar.gz", other, "--checksum", "sha512:"+hex.EncodeToString(s512[:])).MustExit(t, 0, `msg="up to date"`)
	if s.count("/v1.tar.gz") != 2 {
		t.Fatalf("%d GETs", s.count("/v1.tar.gz"))
	}
	// A new version replaces the whole tree: old.html is gone.
	run(t, nil, s.URL+"/v2.tgz", dest).MustExit(t, 0)
	if got := listTree(t, dest); got != ".initbox-fetch site site/index.html=v2 site/link" {
		t.Fatal(got)
	}
	// //subdir unpacks one directory of the archive.
	run(t, nil, s.URL+"/v2.tgz//site", filepath.Join(dir, "only-site")).MustExit(t, 0)
	if got := listTree(t, filepath.Join(dir, "only-site")); got != ".initbox-fetch index.html=v2 link" {
		t.Fatal(got)
	}
	run(t, nil, s.URL+"/v2.tgz//nope", filepath.Join(dir, "nope")).MustExit(t, 1, "the archive has no directory nope")
	noTemp(t, dir)
}

// Hostile archives built here: each refused naming the entry, DEST (an
// existing tree) untouched, nothing left behind.
func TestHostileArchives(t *testing.T) {
	var many []tarEntry
	for i := 0; i < 30; i++ {
		many = append(many, tarEntry{name: fmt.Sprintf("f%d", i), typ: tar.TypeReg, body: "x"})
	}
	cases := map[string]struct {
		data  []byte
		flags []string
		want  string
	}{
		"zip-slip":      {tgz(t, tarEntry{name: "../../evil", typ: tar.TypeReg, body: "x"}), nil, `"../../evil": a path with .. lands outside`},
		"absolute":      {tgz(t, tarEntry{name: "/etc/evil", typ: tar.TypeReg, body: "x"}), nil, `"/etc/evil": an absolute path`},
		"symlink out":   {tgz(t, tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"}), nil, `a symlink to "/etc" points outside`},
		"hard link out": {tgz(t, tarEntry{name: "pw", typ: tar.TypeLink, link: "../../../etc/passwd"}), nil, `a hard link to "../../../etc/passwd" points outside`},
		"gzip bomb":     {tgz(t, tarEntry{name: "zeros", typ: tar.TypeReg, size: 50 << 20}), []string{"--max-unpacked", "1MiB"}, "more than 1048576 bytes unpacked"},
		"too many":      {tgz(t, many...), []string{"--max-files", "10"}, "more than 10 entries"},
		// A chain of links, each inside as text, that the tree resolves
		// out: refused once (never retried), nothing followed.
		"link chain": {tgz(t, tarEntry{name: "d/", typ: tar.TypeDir}, tarEntry{name: "d/p", typ: tar.TypeSymlink, link: "q/../.."},
			tarEntry{name: "d/q", typ: tar.TypeSymlink, link: "."}), nil, `"d/p": a symlink that resolves outside the destination`},
		"marker through a parent link": {tgz(t, tarEntry{name: "etc", typ: tar.TypeSymlink, link: "."},
			tarEntry{name: "etc/.initbox-fetch", typ: tar.TypeReg, body: "x"}), nil, `its parent "etc" is a symlink`},
		"subdir through a link": {tgz(t, tarEntry{name: "real/", typ: tar.TypeDir}, tarEntry{name: "real/f", typ: tar.TypeReg, body: "x"},
			tarEntry{name: "sub", typ: tar.TypeSymlink, link: "real"}), []string{"--archive", "tgz"}, "//sub: sub in the archive is a symlink"},
	}
	files := map[string][]byte{}
	for name, c := range cases {
		files["/"+strings.ReplaceAll(name, " ", "-")+".tar.gz"] = c.data
	}
	s := newServer(t, files)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "out")
			os.MkdirAll(filepath.Join(dest, "keep"), 0o755)
			os.WriteFile(filepath.Join(dest, "keep", "me"), []byte("old"), 0o644)
			src := s.URL + "/" + strings.ReplaceAll(name, " ", "-") + ".tar.gz"
			if name == "subdir through a link" {
				src += "//sub"
			}
			r := run(t, nil, append([]string{src, dest}, c.flags...)...)
			r.MustExit(t, 1, c.want)
			if n := s.count("/" + strings.ReplaceAll(name, " ", "-") + ".tar.gz"); n != 1 {
				t.Fatalf("a hostile archive was fetched %d times: it must fail at once", n)
			}
			if got := listTree(t, dest); got != "keep keep/me=old" {
				t.Fatalf("DEST changed: %s", got)
			}
			noTemp(t, dir)
			if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("wrote outside DEST")
			}
		})
	}
}

// The archive's own .initbox-fetch is replaced by fetch's marker, never
// written through: here it is a link to a file of the same archive.
func TestArchiveMarkerEntryIsReplaced(t *testing.T) {
	data := tgz(t, tarEntry{name: "data", typ: tar.TypeReg, body: "keep"}, tarEntry{name: ".initbox-fetch", typ: tar.TypeSymlink, link: "data"})
	s := newServer(t, map[string][]byte{"/a.tgz": data})
	dest := filepath.Join(t.TempDir(), "out")
	run(t, nil, s.URL+"/a.tgz", dest, "--checksum", sha(data)).MustExit(t, 0, "msg=fetched")
	if b, _ := os.ReadFile(filepath.Join(dest, "data")); string(b) != "keep" {
		t.Fatalf("data = %q: the marker was written through the archive's link", b)
	}
	fi, err := os.Lstat(filepath.Join(dest, markerName))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("marker %v %v: want fetch's own regular file", fi, err)
	}
	run(t, nil, s.URL+"/a.tgz", dest, "--checksum", sha(data)).MustExit(t, 0, `msg="up to date"`)
}

// A DEST that is a symlink to a matching file elsewhere is judged as the
// link it is: not "up to date", the target neither chmod'ed nor written,
// and the link replaced by the file.
func TestPlantedDestLinkIsNotFollowed(t *testing.T) {
	body := []byte("content")
	s := newServer(t, map[string][]byte{"/f": body})
	dir := t.TempDir()
	elsewhere := filepath.Join(dir, "elsewhere")
	os.WriteFile(elsewhere, body, 0o600)
	dest := filepath.Join(dir, "vol", "f")
	os.MkdirAll(filepath.Dir(dest), 0o755)
	os.Symlink(elsewhere, dest)
	run(t, nil, s.URL+"/f", dest, "--checksum", sha(body), "--mode", "0644").MustExit(t, 0, "msg=fetched")
	if fi, _ := os.Stat(elsewhere); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the link's target was chmod'ed to %v", fi.Mode().Perm())
	}
	if fi, _ := os.Lstat(dest); !fi.Mode().IsRegular() {
		t.Fatalf("DEST is %v, want the fetched file in place of the link", fi.Mode())
	}
	// A tree DEST that is a link is refused before anything is fetched.
	tree := filepath.Join(dir, "vol", "tree")
	os.Symlink(dir, tree)
	run(t, nil, s.URL+"/f", tree, "--archive", "tgz").MustExit(t, 2, "exists and is not a directory")
}

// http → https → http: the https → http rule holds at every hop.
func TestRedirectChainDowngradeIsRefused(t *testing.T) {
	final := newServer(t, map[string][]byte{"/x": []byte("x")})
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/x", http.StatusFound)
	}))
	defer secure.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, secure.URL+"/x", http.StatusFound)
	}))
	defer first.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pemCert(secure.Certificate().Raw), 0o644)
	run(t, nil, first.URL+"/x", filepath.Join(t.TempDir(), "x"), "--ca-file", ca).MustExit(t, 1, "refused a redirect from https to plain http")
	if final.count("/x") != 0 {
		t.Fatal("followed the downgrade")
	}
}

func TestLocalSources(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.json")
	os.WriteFile(src, []byte(`{"a":1}`), 0o600)
	dest := filepath.Join(dir, "out", "settings.json")
	run(t, nil, src, dest, "--mode", "0640").MustExit(t, 0)
	if fi, _ := os.Stat(dest); testenv.ReadFile(t, dest) != `{"a":1}` || fi.Mode().Perm() != 0o640 {
		t.Fatalf("%q %v", testenv.ReadFile(t, dest), fi.Mode())
	}
	run(t, nil, "file://"+src, filepath.Join(dir, "out", "again.json"), "--checksum", sha([]byte(`{"a":1}`))).MustExit(t, 0)
	// A ConfigMap volume: keys are symlinks into ..data, which the kubelet
	// swaps; the copy holds the keys as files and none of the kubelet's
	// own entries.
	cm := filepath.Join(dir, "configmap")
	os.MkdirAll(filepath.Join(cm, "..2026_11_21_12_00_00.1"), 0o755)
	os.WriteFile(filepath.Join(cm, "..2026_11_21_12_00_00.1", "app.conf"), []byte("listen 80"), 0o644)
	os.Symlink("..2026_11_21_12_00_00.1", filepath.Join(cm, "..data"))
	os.Symlink("..data/app.conf", filepath.Join(cm, "app.conf"))
	out := filepath.Join(dir, "conf")
	run(t, nil, cm, out).MustExit(t, 0)
	if got := listTree(t, out); got != "app.conf=listen 80" {
		t.Fatal(got)
	}
	os.Symlink("/etc/passwd", filepath.Join(cm, "escape"))
	run(t, nil, cm, out).MustExit(t, 1, "points outside")
	if got := listTree(t, out); got != "app.conf=listen 80" {
		t.Fatal("DEST changed:", got)
	}
	noTemp(t, dir)
}

func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"http://x/a"}, "want two arguments: SRC DEST"},
		{[]string{"s3::https://x/b", dir + "/r"}, "s3:: sources are not supported"},
		{[]string{"ftp://x/a", dir + "/r"}, "ftp:// sources are not supported"},
		{[]string{"http://x/a", dir + "/r", "--checksum", "sha256:zz"}, "invalid checksum"},
		{[]string{"http://x/a", dir + "/r", "--checksum", "sha256:abcd"}, "a sha256 digest has 64 hex digits"},
		{[]string{"http://x/a", dir + "/r", "--archive", "rar"}, `unknown archive format "rar"`},
		{[]string{"http://x/a", dir + "/r", "--mode", "999"}, `invalid value "999" for --mode`},
		{[]string{"http://x/a", dir + "/r", "--max-size", "lots"}, `invalid value "lots" for --max-size`},
		{[]string{"http://x/a", dir + "/adir"}, "is a directory: give the path of the file"},
		{[]string{"http://x/a.tgz", dir + "/afile"}, "exists and is not a directory"},
		{[]string{"http://x/a.txt//sub", dir + "/r"}, "selects a directory inside an archive"},
		{[]string{"http://x/a", dir + "/afile/x"}, "is not a directory"},
		{[]string{dir + "/missing", dir + "/r"}, "no such file or directory"},
		{[]string{"https://u:Pa55w0rd@x/a", dir + "/r", "--checksum", "nope"}, "invalid checksum"},
		{[]string{"http://x/a", dir + "/r", "--checksum", "sha256:" + strings.Repeat("0", 64), "--if-missing"}, "--if-missing is for downloads without a checksum"},
	} {
		r := run(t, nil, tc.args...)
		r.MustExit(t, 2, tc.want)
		if strings.Contains(r.Stderr, "Pa55w0rd") {
			t.Errorf("%v: the password leaked", tc.args)
		}
	}
}

// A transfer that lasts more than ~2 s reports progress: bytes, rate, and
// an ETA when the size is known.
func TestProgressLines(t *testing.T) {
	const size = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for i := 0; i < 32; i++ {
			w.Write(make([]byte, size/32))
			w.(http.Flusher).Flush()
			time.Sleep(80 * time.Millisecond)
		}
	}))
	defer srv.Close()
	r := run(t, nil, srv.URL+"/slow.bin", filepath.Join(t.TempDir(), "slow.bin"))
	r.MustExit(t, 0, "msg=downloading", "rate=", "of=\"64.0 KiB\"", "eta=", "msg=fetched", "size=65536", "sha256=")
}

// Bodies on either side of the buffer sizes arrive whole and verified:
// with a Content-Length (buffers sized to fit), without one (full chunks),
// and from a local file.
func TestBodiesOfEverySizeArriveWhole(t *testing.T) {
	files := map[string][]byte{}
	for _, n := range []int{0, 1, 4<<10 - 1, 4 << 10, 4<<10 + 1, chunk - 1, chunk, chunk + 1, 2*chunk + 3} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i>>12)
		}
		files[fmt.Sprintf("/%d.bin", n)] = b
	}
	s := newServer(t, files)
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length
		w.Write(files[r.URL.Path])
	}))
	defer chunked.Close()
	dir := t.TempDir()
	for p, want := range files {
		for _, src := range []string{s.URL + p, chunked.URL + p} {
			dest := filepath.Join(dir, "out.bin")
			run(t, nil, src, dest, "--checksum", sha(want)).MustExit(t, 0)
			if got := testenv.ReadFile(t, dest); got != string(want) {
				t.Fatalf("%s: %d bytes arrived as %d", src, len(want), len(got))
			}
			os.Remove(dest)
		}
		local := filepath.Join(dir, "local.bin")
		os.WriteFile(local, want, 0o600)
		tree := filepath.Join(dir, "tree")
		os.Mkdir(tree, 0o755)
		os.WriteFile(filepath.Join(tree, "f"), want, 0o600)
		run(t, nil, local, filepath.Join(dir, "copy.bin"), "--checksum", sha(want)).MustExit(t, 0)
		run(t, nil, tree, filepath.Join(dir, "treecopy")).MustExit(t, 0)
		for _, got := range []string{testenv.ReadFile(t, filepath.Join(dir, "copy.bin")), testenv.ReadFile(t, filepath.Join(dir, "treecopy", "f"))} {
			if got != string(want) {
				t.Fatalf("local %s: %d bytes copied as %d", p, len(want), len(got))
			}
		}
		os.RemoveAll(tree)
		os.RemoveAll(filepath.Join(dir, "treecopy"))
		os.Remove(filepath.Join(dir, "copy.bin"))
	}
	noTemp(t, dir)
}
