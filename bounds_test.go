package main

import (
	"fmt"
	"io"
	"net/http"
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
)

// peakRSS runs the binary and returns its exit status and peak resident
// memory in MB (from the kernel's rusage of the child).
func peakRSS(t *testing.T, args ...string) (int, float64, string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append(args, "-q", "--termination-log", "")...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return code, float64(ru.Maxrss) / 1024, string(out)
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
