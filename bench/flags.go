package main

import (
	"bufio"
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// flagsBench builds initbox with and without each group of build.flags
// and measures, side by side, what users could feel: the binary and its
// gzip -9 size (the layer's compression), an immediate waitfor tcp
// success (startup), a waitfor http over TLS (startup plus a handshake and
// one request) and a fetch of 256 MiB with a sha256 checksum (throughput).
func flagsBench(c config, w io.Writer) error {
	all, err := readBuildFlags("build.flags")
	if err != nil {
		return err
	}
	stdlib := func(f string) bool {
		p := strings.TrimPrefix(f, "-gcflags=")
		return strings.HasPrefix(f, "-gcflags=") && strings.HasSuffix(f, "=-l") && !strings.Contains(strings.SplitN(p, "/", 2)[0], ".")
	}
	thirdParty := func(f string) bool {
		return strings.HasPrefix(f, "-gcflags=") && strings.HasSuffix(f, "=-l") && !stdlib(f)
	}
	without := func(drop func(string) bool) []string {
		var out []string
		for _, f := range all {
			if !drop(f) {
				out = append(out, f)
			}
		}
		return out
	}
	variants := []struct {
		name  string
		flags []string
	}{
		{"build.flags as shipped", all},
		{"without -tags=nethttpomithttp2 (HTTP/2 in net/http)", without(func(f string) bool { return f == "-tags=nethttpomithttp2" })},
		{"without -l for third-party packages", without(thirdParty)},
		{"without -l for standard-library packages", without(stdlib)},
		{"no build.flags at all", nil},
	}
	bins := make([]string, len(variants))
	for i, v := range variants {
		bins[i] = filepath.Join(c.work, fmt.Sprintf("initbox-flags-%d", i))
		args := append([]string{"build", "-trimpath"}, v.flags...)
		args = append(args, "-ldflags=-s -w", "-o", bins[i], ".")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", v.name, err, out)
		}
		// A fresh copy, as startup measures (see there).
		if err := copyFile(bins[i], bins[i]+".copy"); err != nil {
			return err
		}
		bins[i] += ".copy"
	}

	// The servers: an open port, an HTTPS health endpoint, a 256 MiB blob.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go acceptAndClose(ln)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer tlsSrv.Close()
	ca := filepath.Join(c.work, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		return err
	}
	const size = 256 << 20
	block, sum := blob(size, 5)
	blobSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for i := 0; i < size/len(block); i++ {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	}))
	defer blobSrv.Close()
	dir, err := tmpfsDir(c, "initbox-bench-flags-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dest := filepath.Join(dir, "blob.bin")
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()

	tcpArgs := []string{"waitfor", "tcp", ln.Addr().String(), "-q", "--termination-log", ""}
	tlsArgs := []string{"waitfor", "http", tlsSrv.URL + "/healthz", "--ca-file", ca, "-q", "--termination-log", ""}
	fetchArgs := []string{"fetch", blobSrv.URL + "/blob.bin", dest, "--checksum", sum, "-q", "--termination-log", ""}
	starts, fetches := c.starts, max(3, c.fetchRuns/2)
	tcp := make([][]time.Duration, len(bins))
	tls := make([][]time.Duration, len(bins))
	fetch := make([][]time.Duration, len(bins))
	timed := func(argv []string) (time.Duration, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = devnull
		start := time.Now()
		err := cmd.Run()
		return time.Since(start), err
	}
	order := rand.Perm(len(bins))
	for i := 0; i < starts; i++ {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			d, err := timed(append([]string{bins[j]}, tcpArgs...))
			if err != nil {
				return fmt.Errorf("%s: waitfor tcp: %v", variants[j].name, err)
			}
			tcp[j] = append(tcp[j], d)
			if d, err = timed(append([]string{bins[j]}, tlsArgs...)); err != nil {
				return fmt.Errorf("%s: waitfor http (TLS): %v", variants[j].name, err)
			}
			tls[j] = append(tls[j], d)
			if i < fetches {
				os.Remove(dest)
				if d, err = timed(append([]string{bins[j]}, fetchArgs...)); err != nil {
					return fmt.Errorf("%s: fetch: %v", variants[j].name, err)
				}
				fetch[j] = append(fetch[j], d)
			}
		}
	}
	fmt.Fprintf(w, "## build.flags: what each group saves, and what it costs (%d starts and %d fetches of 256 MiB each, shuffled; medians)\n\n", starts, fetches)
	fmt.Fprintf(w, "| build | binary | gzip -9 | waitfor tcp | waitfor http over TLS | TLS minus tcp | fetch 256 MiB + sha256 |\n|---|---|---|---|---|---|---|\n")
	for j, v := range variants {
		fi, err := os.Stat(bins[j])
		if err != nil {
			return err
		}
		gz, err := gzipSize(bins[j])
		if err != nil {
			return err
		}
		t, s := quantile(tcp[j], 0.5), quantile(tls[j], 0.5)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.0f MB/s |\n", v.name, commas(fi.Size()), commas(gz), ms(t), ms(s), ms(s-t),
			float64(size)/quantile(fetch[j], 0.5).Seconds()/1e6)
	}
	fmt.Fprintln(w)
	return nil
}

// readBuildFlags reads build.flags as the Makefile does: one flag a line,
// # comments.
func readBuildFlags(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%v (run the benchmark from the repository's root)", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func gzipSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n countWriter
	zw, _ := gzip.NewWriterLevel(&n, gzip.BestCompression)
	if _, err := io.Copy(zw, f); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// commas writes n with thousands separators, as BENCHMARKS.md does.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
