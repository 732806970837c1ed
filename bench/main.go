// Command bench compares initbox with the tools it replaces, side by side in
// one run on this machine, and prints a Markdown report (also written to
// -out). It never asserts: speed is measured here, never in timed tests.
//
//	go run ./bench [-trials 40] [-parallel 20] [-starts 200] [-out bench/results]
//
// It needs bin/initbox (make) and Debian's busybox-static; run it as root so
// the test DNS server can listen on port 53 of a loopback address, where
// BusyBox's nslookup can reach it.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

type config struct {
	initbox, busybox string
	before           string // another initbox build to compare at startup
	trials, parallel int
	starts           int
	fetchRuns        int
	fetchRate        int64
	minAppear        time.Duration
	maxAppear        time.Duration
	work             string
}

func main() {
	var c config
	out := flag.String("out", "bench/results", "directory for the report")
	flag.StringVar(&c.initbox, "initbox", "bin/initbox", "the initbox binary")
	flag.StringVar(&c.before, "initbox-before", "", "startup: also measure these initbox builds (comma-separated paths), in the same run")
	flag.StringVar(&c.busybox, "busybox", "", "the busybox binary (default: busybox on PATH)")
	flag.IntVar(&c.trials, "trials", 40, "latency trials per tool and kind")
	flag.IntVar(&c.parallel, "parallel", 20, "latency trials running at once")
	flag.IntVar(&c.starts, "starts", 200, "process starts per tool for startup time and RSS")
	flag.IntVar(&c.fetchRuns, "fetch-runs", 11, "1 GiB downloads per tool")
	flag.Int64Var(&c.fetchRate, "fetch-rate", 625_000_000, "bytes/s of the paced fetch server (5 Gbit/s)")
	flag.DurationVar(&c.minAppear, "min-appear", time.Second, "earliest time a dependency appears")
	flag.DurationVar(&c.maxAppear, "max-appear", 30*time.Second, "latest time a dependency appears")
	only := flag.String("only", "startup,tcp,dns,servers,gentle,correctness,fetch,render,git,flags,watch", "sections to run")
	flag.Parse()
	if err := run(c, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config, out, only string) error {
	var err error
	if c.initbox, err = filepath.Abs(c.initbox); err != nil {
		return err
	}
	if _, err := os.Stat(c.initbox); err != nil {
		return fmt.Errorf("%s: %w (run make first)", c.initbox, err)
	}
	if c.busybox == "" {
		if c.busybox, err = exec.LookPath("busybox"); err != nil {
			return fmt.Errorf("busybox not found (apt-get install busybox-static)")
		}
	}
	if c.work, err = os.MkdirTemp("", "initbox-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	fmt.Fprintf(w, "Run %s on %d CPUs, %s; initbox %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), version(c.initbox))
	for _, section := range strings.Split(only, ",") {
		var err error
		switch section {
		case "startup":
			err = startup(c, w)
		case "tcp":
			err = latency(c, w, "tcp")
		case "dns":
			err = latency(c, w, "dns")
		case "fetch":
			err = fetchBench(c, w)
		case "render":
			err = renderBench(c, w)
		case "gentle":
			err = gentle(c, w)
		case "correctness":
			err = correctness(c, w)
		case "git":
			err = gitBench(c, w)
		case "flags":
			err = flagsBench(c, w)
		case "servers":
			err = serverLatency(c, w)
		case "watch":
			err = watchBench(c, w)
		default:
			err = fmt.Errorf("unknown section %q", section)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", section, err)
		}
	}
	return os.WriteFile(filepath.Join(out, "latest.md"), []byte(report.String()), 0o644)
}

func version(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// quantile is the nearest-rank quantile of ds: the ⌈q·n⌉-th smallest.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// tb satisfies dnstest.TB outside go test.
type tb struct{ cleanups []func() }

func (t *tb) Helper()                      {}
func (t *tb) Logf(f string, args ...any)   { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (t *tb) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (t *tb) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (t *tb) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "initbox-bench-dns-")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
