package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// peakRSS runs the binary and returns its exit status and peak resident
// memory in MB (from the kernel's rusage of the child), and what it
// printed.
//
// The child is started by a small helper process (this test binary, as
// peakRSSHelper), not by the test itself: a process started from the test
// is vforked from it, and the kernel carries the test process's own
// high-water mark into the child's ru_maxrss at its exec — after the tests
// that ran before, tens of MB that are not the child's.
func peakRSS(t *testing.T, args ...string) (int, float64, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(t.TempDir(), peakRSSHelper)
	if err := os.Symlink(self, helper); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, append([]string{testenv.Binary(t)}, append(args, "--termination-log", "")...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	text, kb, ok := strings.Cut(string(out), "\n"+peakRSSHelper+" ")
	n, perr := strconv.Atoi(strings.TrimSpace(kb))
	if !ok || perr != nil {
		t.Fatalf("no peak from the helper:\n%s", out)
	}
	return code, float64(n) / 1024, text
}

const peakRSSHelper = "initbox-peakrss"

// peakRSSMain runs os.Args[1:] and prints its peak RSS in KiB last, then
// exits as it did.
func peakRSSMain() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(125)
	}
	fmt.Fprintf(os.Stderr, "\n%s %d\n", peakRSSHelper, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	os.Exit(code)
}

// Memory stays bounded, whatever the size of the input: a download streams,
// a huge DNS answer is refused, a large template value costs a small
// multiple of itself. The peaks are logged (go test -v) for the record.
func TestResourceBounds(t *testing.T) {
	scratch := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "initbox-bounds-"); err == nil {
			scratch = d
			defer os.RemoveAll(d)
		}
	}

	t.Run("1 GiB download", func(t *testing.T) {
		block := make([]byte, 1<<20)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			for i := 0; i < 1024; i++ {
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		}))
		defer srv.Close()
		dest := filepath.Join(scratch, "blob")
		code, mb, out := peakRSS(t, "fetch", srv.URL+"/blob", dest, "--max-size", "2GiB", "--timeout", "5m")
		defer os.Remove(dest)
		t.Logf("fetch of 1 GiB: peak RSS %.1f MB", mb)
		if fi, err := os.Stat(dest); code != 0 || err != nil || fi.Size() != 1<<30 {
			t.Fatalf("exit %d, %v %v\n%s", code, fi, err, out)
		}
		if mb > 64 {
			t.Errorf("peak RSS %.1f MB for a streamed download", mb)
		}
	})

	t.Run("100,000-record DNS answer", func(t *testing.T) {
		s := dnstest.Start(t)
		rrs := make([]string, 100_000)
		for i := range rrs {
			rrs[i] = fmt.Sprintf("many.test. 5 IN A 10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		}
		s.Add(t, rrs...)
		code, mb, out := peakRSS(t, "waitfor", "dns", "many.test", "--server", s.Addr, "--resolv-conf", "/dev/null", "--hosts-file", "", "--min-records", "100000", "--timeout", "3s")
		t.Logf("a 100,000-record answer: exit %d, peak RSS %.1f MB: %s", code, mb, strings.TrimSpace(out))
		if code != 1 {
			t.Fatalf("exit %d: 100,000 records cannot fit a DNS message\n%s", code, out)
		}
		if mb > 64 {
			t.Errorf("peak RSS %.1f MB", mb)
		}
	})

	t.Run("100 MB template value", func(t *testing.T) {
		const size = 100_000_000
		big := filepath.Join(scratch, "big.txt")
		f, err := os.Create(big)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(f, zeroes{'y'}, size)
		f.Close()
		values := filepath.Join(scratch, "values.json")
		f, _ = os.Create(values)
		io.WriteString(f, `{"big": "`)
		io.CopyN(f, zeroes{'x'}, size)
		io.WriteString(f, `"}`)
		f.Close()
		defer os.Remove(big)
		defer os.Remove(values)
		for _, c := range []struct {
			name, tmpl string
			args       []string
			limit      float64 // MB
		}{
			{"from a file", `{{ file "` + big + `" }}`, nil, 3 * size / 1e6},
			{"from a JSON values file", `{{ .Values.big }}`, []string{"--values", values}, 6 * size / 1e6},
		} {
			tpl := filepath.Join(t.TempDir(), "t.tmpl")
			os.WriteFile(tpl, []byte(c.tmpl), 0o644)
			out := filepath.Join(scratch, "out")
			code, mb, msg := peakRSS(t, append([]string{"render", tpl, "--out", out}, c.args...)...)
			fi, err := os.Stat(out)
			os.Remove(out)
			t.Logf("100 MB value %s: peak RSS %.1f MB", c.name, mb)
			if code != 0 || err != nil || fi.Size() != size {
				t.Fatalf("%s: exit %d, %v %v\n%s", c.name, code, fi, err, msg)
			}
			if mb > c.limit {
				t.Errorf("%s: peak RSS %.1f MB, over %.0f MB", c.name, mb, c.limit)
			}
		}
	})
}

// zeroes reads as an endless run of one byte.
type zeroes [1]byte

func (z zeroes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = z[0]
	}
	return len(p), nil
}

// A git server holds no more of initbox's memory than its limits allow:
// an error body and a ref listing that never end, and a pack of a few MB
// holding a blob of hundreds of MB of zeros (streamed into the checkout
// when it fits, refused from its header when it does not).
func TestGitResourceBounds(t *testing.T) {
	testenv.RealServer(t, "git http-backend")
	for _, p := range []string{"git", "/usr/lib/git-core/git-http-backend"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "Debian's git is needed: "+err.Error())
		}
	}
	endless := func(status int, ctype string, prefix string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(status)
			io.WriteString(w, prefix)
			block := make([]byte, 64<<10)
			for i := range block {
				block[i] = 'x'
			}
			if prefix != "" { // one endless pkt-line stream of refs
				line := fmt.Sprintf("%04x%s refs/heads/%s\n", 4+41+11+16+1, strings.Repeat("a", 40), strings.Repeat("b", 16))
				block = []byte(strings.Repeat(line, len(block)/len(line)))
			}
			for n := 0; n < 16<<10 && r.Context().Err() == nil; n++ { // at most 1 GiB
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		}))
	}
	for _, c := range []struct {
		name string
		srv  *httptest.Server
		want string
	}{
		{"endless error body", endless(500, "text/plain", ""), "500"},
		{"endless ref listing", endless(200, "application/x-git-upload-pack-advertisement",
			"001e# service=git-upload-pack\n0000"+fmt.Sprintf("%04x%s HEAD\x00shallow\n", 4+41+5+8, strings.Repeat("a", 40))), "the ref listing is larger than 64 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer c.srv.Close()
			failsBounded(t, 128, c.want, "fetch", "git::"+c.srv.URL+"/r.git", filepath.Join(t.TempDir(), "d"), "--timeout", "5s")
		})
	}

	t.Run("256 MiB blob of zeros", func(t *testing.T) {
		root := t.TempDir()
		work := filepath.Join(root, "work")
		git := func(dir string, args ...string) {
			t.Helper()
			cmd := exec.Command("git", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
				"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+root)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		os.MkdirAll(work, 0o755)
		git(work, "init", "-q", "-b", "main")
		f, _ := os.Create(filepath.Join(work, "zeros"))
		f.Truncate(256 << 20)
		f.Close()
		git(work, "add", "zeros")
		git(work, "commit", "-q", "-m", "zeros")
		git(root, "clone", "-q", "--bare", work, "r.git")
		h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/",
			Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
		srv := httptest.NewServer(h)
		defer srv.Close()
		dest := filepath.Join(t.TempDir(), "d")
		failsBounded(t, 64, "the pack declares an object of 268435456 bytes, more than --max-unpacked 67108864",
			"fetch", "git::"+srv.URL+"/r.git", dest, "--max-unpacked", "64MiB", "--timeout", "60s")
		code, mb, out := peakRSS(t, "fetch", "git::"+srv.URL+"/r.git", dest, "--timeout", "60s")
		t.Logf("within the limits: exit %d, peak RSS %.1f MB", code, mb)
		if fi, err := os.Stat(filepath.Join(dest, "zeros")); code != 0 || err != nil || fi.Size() != 256<<20 {
			t.Fatalf("exit %d, %v %v\n%s", code, fi, err, out)
		}
		// The pack is indexed as it streams (go-git's own index builder held
		// each object whole: 271 MB here).
		if mb > 64 {
			t.Errorf("peak RSS %.1f MB checking out a 256 MiB blob", mb)
		}
	})
}

// failsBounded runs args, which must exit 1 naming want, within limit MB
// of peak RSS.
func failsBounded(t *testing.T, limit float64, want string, args ...string) {
	t.Helper()
	code, mb, out := peakRSS(t, args...)
	t.Logf("%s: exit %d, peak RSS %.1f MB", t.Name(), code, mb)
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 1 with %q:\n%s", code, want, out)
	}
	if mb > limit {
		t.Errorf("peak RSS %.1f MB, over %.0f MB", mb, limit)
	}
}

// serveForever answers every connection with greeting, then body for ever
// (at most 2 GiB, so a broken probe cannot fill the machine).
func serveForever(t *testing.T, greeting, body []byte) string {
	t.Helper()
	return testenv.Serve(t, func(c net.Conn) {
		defer c.Close()
		go io.Copy(io.Discard, c)
		c.Write(greeting)
		for sent := 0; sent < 2<<30; sent += len(body) {
			if _, err := c.Write(body); err != nil {
				return
			}
		}
	})
}

// A probe reads what its answer needs and no more, whatever a server
// sends: nested RESP arrays of 1 MiB bulk strings, a MySQL greeting of
// endless 16 MiB continuation packets, a PostgreSQL query whose result has
// ten million rows.
func TestProbeResourceBounds(t *testing.T) {
	bulk := append([]byte("$1048576\r\n"), append(bytes.Repeat([]byte{'x'}, 1<<20), "\r\n"...)...)
	redisAddr := serveForever(t, []byte(strings.Repeat("*1024\r\n", 7)), bulk)
	packet := append([]byte{0xff, 0xff, 0xff, 0}, bytes.Repeat([]byte{'y'}, 0xffffff)...)
	mysqlAddr := serveForever(t, nil, packet)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"redis", []string{"redis", "redis://" + redisAddr}, "more than 4 MiB on one connection"},
		{"mysql", []string{"mysql", "mysql://u:p@" + mysqlAddr + "/db"}, "more than 4 MiB on one connection"},
	} {
		t.Run(c.name, func(t *testing.T) {
			failsBounded(t, 64, c.want, append(append([]string{"waitfor"}, c.args...), "--timeout", "20s")...)
		})

	}
	t.Run("postgres --query", func(t *testing.T) {
		if _, err := pgtest.BinDir(); err != nil {
			testenv.Skip(t, "PostgreSQL's server is not installed: "+err.Error())
		}
		srv := pgtest.Start(t)
		code, mb, out := peakRSS(t, "waitfor", "postgres", srv.URL("postgres", pgtest.Password, "postgres"),
			"--query", "SELECT repeat('x', 1000) FROM generate_series(1, 10000000)", "--timeout", "60s")
		t.Logf("postgres --query with 10 GB of rows: exit %d, peak RSS %.1f MB", code, mb)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if mb > 64 {
			t.Errorf("peak RSS %.1f MB", mb)
		}
	})
}
