package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// fetchBench downloads 1 GiB over loopback with a sha256 checksum: initbox
// fetch against curl -o alone and curl -o followed by sha256sum, with CPU
// time and peak RSS. The server runs here and streams the same bytes every
// time: as fast as loopback goes, then paced like a fast network link.
func fetchBench(c config, w io.Writer) error {
	const size = 1 << 30
	block, sum := blob(size, 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// /paced.bin is sent at c.fetchRate bytes/s, a block at a time.
	perBlock := time.Duration(float64(len(block)) / float64(c.fetchRate) * float64(time.Second))
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", strconv.Itoa(size))
		start := time.Now()
		for i := 0; i < size/len(block); i++ {
			if r.URL.Path == "/paced.bin" {
				time.Sleep(time.Until(start.Add(time.Duration(i) * perBlock)))
			}
			if _, err := rw.Write(block); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	dir, err := tmpfsDir(c, "initbox-bench-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dest := filepath.Join(dir, "blob.bin")
	tools := func(url string, withSum bool) []fetchTool {
		t := []fetchTool{
			{"initbox fetch --checksum sha256:…", []string{c.initbox, "fetch", url, dest, "--checksum", sum, "--max-size", "2GiB", "-q", "--termination-log", ""}},
			{"curl -o", []string{"curl", "-sS", "-o", dest, url}},
		}
		if withSum {
			t = append(t, fetchTool{"curl -o && sha256sum", []string{"sh", "-c", "curl -sS -o " + dest + " " + url + " && sha256sum " + dest + " >/dev/null"}})
		}
		return t
	}
	fmt.Fprintf(w, "## fetch: 1 GiB over loopback into tmpfs (%d runs each, interleaved)\n\n", c.fetchRuns)
	if err := fetchTable(w, dest, size, c.fetchRuns, tools(base+"/blob.bin", true)); err != nil {
		return err
	}
	fmt.Fprintf(w, "### The same, the server paced at %.1f Gbit/s (a fast cluster network: the link, not the CPU, sets the pace)\n\n", float64(c.fetchRate)*8/1e9)
	if err := fetchTable(w, dest, size, c.fetchRuns, tools(base+"/paced.bin", false)); err != nil {
		return err
	}
	fmt.Fprintf(w, "(\"vs curl -o\" is throughput relative to curl alone: above 1 is faster. CPU is user +\n"+
		"system time: the client's from GNU time, the server's from this process's rusage.)\n\n")
	return nil
}

// blob is the 1 MiB block of random bytes a served file of size bytes
// repeats, and that file's "sha256:…" checksum.
func blob(size int, seed uint64) ([]byte, string) {
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range block {
		block[i] = byte(rng.UintN(256))
	}
	h := sha256.New()
	for i := 0; i < size/len(block); i++ {
		h.Write(block)
	}
	return block, fmt.Sprintf("sha256:%x", h.Sum(nil))
}

type fetchTool struct {
	name string
	argv []string
}

// fetchTable runs each tool runs times, interleaved, and writes a table
// of wall time, CPU and peak RSS; the second tool is the baseline.
func fetchTable(w io.Writer, dest string, size int64, runs int, tools []fetchTool) error {
	walls := make([][]time.Duration, len(tools))
	rss := make([][]time.Duration, len(tools)) // KiB, kept as Duration to reuse quantile
	cpu := make([][]time.Duration, len(tools))
	srvCPU := make([][]time.Duration, len(tools))
	// One uncounted run of the baseline first: without it the first
	// download of a table took 2.6-3.7 s where the others took ~1 s.
	if _, err := timeRun(tools[1].argv, nil); err != nil {
		return fmt.Errorf("%s: %w", tools[1].name, err)
	}
	for i := 0; i < runs; i++ {
		for j, tool := range tools {
			os.Remove(dest)
			before := selfCPU()
			start := time.Now()
			u, err := timeRun(tool.argv, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", tool.name, err)
			}
			walls[j] = append(walls[j], time.Since(start))
			srvCPU[j] = append(srvCPU[j], selfCPU()-before)
			rss[j] = append(rss[j], time.Duration(u.kib))
			cpu[j] = append(cpu[j], u.cpu)
			if fi, err := os.Stat(dest); err != nil || fi.Size() != size {
				return fmt.Errorf("%s: wrote %v, %v", tool.name, fi, err)
			}
		}
	}
	fmt.Fprintf(w, "| tool | wall median | wall min-max | throughput | vs curl -o | CPU median (client) | CPU median (server) | peak RSS (max) |\n|---|---|---|---|---|---|---|---|\n")
	curl := quantile(walls[1], 0.5)
	for j, tool := range tools {
		med := quantile(walls[j], 0.5)
		fmt.Fprintf(w, "| %s | %s | %s-%s | %.0f MB/s | %.2f× | %s | %s | %.1f MB |\n", tool.name, ms(med),
			ms(quantile(walls[j], 0)), ms(quantile(walls[j], 1)), float64(size)/med.Seconds()/1e6,
			curl.Seconds()/med.Seconds(), ms(quantile(cpu[j], 0.5)), ms(quantile(srvCPU[j], 0.5)),
			float64(quantile(rss[j], 1))/1024)
	}
	fmt.Fprintln(w)
	return nil
}

// selfCPU is this process's CPU time so far: the benchmark's own server.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
