package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startup measures the wall time and peak RSS of an immediate success:
// initbox waitfor tcp against an open port (and the same with the binary of
// -initbox-before, to compare two builds in one run), BusyBox nc against the
// same port, and a static Go hello-world, in a new random order every round
// so noise hits all alike. It then reads GODEBUG=inittrace=1 of each initbox:
// how long the package initializers run before main, and which cost most.
func startup(c config, w io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go acceptAndClose(ln)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	hello, err := buildHello(c.work)
	if err != nil {
		return err
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	type tool struct {
		name string
		argv []string
	}
	// Every binary measured is a fresh copy (written with write(2), as a
	// container runtime unpacks a layer): how a file came into the page
	// cache changes its start measurably here — the linker's output (written
	// through mmap) started ~20 % slower than a cp of the same bytes
	// (inittrace 4.15 ms vs 3.44 ms, 60 runs each).
	var copyErr error
	copies := 0
	fresh := func(p string) string {
		copies++
		q := filepath.Join(c.work, "startup-"+strconv.Itoa(copies)+"-"+filepath.Base(p))
		if err := copyFile(p, q); err != nil {
			copyErr = err
		}
		return q
	}
	waitfor := func(bin string) []string {
		return []string{bin, "waitfor", "tcp", "127.0.0.1:" + port, "-q", "--termination-log", ""}
	}
	self := fresh(c.initbox)
	// Every applet's own binary (cmd/*) that make built, copied once: what
	// the same call costs without the other applets' packages, and which
	// applets' dependencies the multi-call binary's initializers come from.
	singles := map[string]string{}
	for _, name := range []string{"waitfor", "fetch", "render", "register"} {
		if p := filepath.Join(filepath.Dir(c.initbox), name); fileExists(p) {
			singles[name] = fresh(p)
		}
	}
	tools := []tool{
		{"initbox waitfor tcp (connect)", waitfor(self)},
		{"busybox nc -w 1 (connect)", []string{c.busybox, "nc", "-w", "1", "127.0.0.1", port}},
		{"Go hello-world (static)", []string{hello}},
		{"busybox true", []string{c.busybox, "true"}},
	}
	// The waitfor-only binary (cmd/waitfor), when make built it: what the
	// same wait costs without the other applets' packages.
	if single, ok := singles["waitfor"]; ok {
		tools = append(tools, tool{"waitfor alone (cmd/waitfor)", append([]string{single}, waitfor("")[2:]...)})
	}
	initboxes := []tool{{"initbox", []string{self, "sleep", "0"}}}
	for _, b := range strings.Split(c.before, ",") {
		if b == "" {
			continue
		}
		fb := fresh(b)
		tools = append(tools, tool{"initbox before (" + filepath.Base(b) + ")", waitfor(fb)})
		initboxes = append(initboxes, tool{"initbox before (" + filepath.Base(b) + ")", []string{fb, "sleep", "0"}})
	}
	if copyErr != nil {
		return copyErr
	}
	walls := make([][]time.Duration, len(tools))
	rss := make([][]time.Duration, len(tools)) // KiB, kept as Duration to reuse quantile
	order := make([]int, len(tools))
	for i := range order {
		order[i] = i
	}
	for i := 0; i < c.starts; i++ {
		// A new order every round: no tool always runs after the same one.
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, j := range order {
			tool := tools[j]
			cmd := exec.Command(tool.argv[0], tool.argv[1:]...)
			cmd.Stdin = devnull
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w", tool.name, err)
			}
			walls[j] = append(walls[j], time.Since(start))
			if i%10 == 0 {
				u, err := timeRun(tool.argv, devnull)
				if err != nil {
					return fmt.Errorf("%s: %w", tool.name, err)
				}
				rss[j] = append(rss[j], time.Duration(u.kib))
			}
		}
	}
	fmt.Fprintf(w, "## Startup: an immediate success (%d starts each, shuffled; peak RSS from GNU time on every 10th)\n\n", c.starts)
	fmt.Fprintf(w, "| tool | binary | wall median | wall p95 | peak RSS median | vs busybox nc | vs Go hello-world |\n|---|---|---|---|---|---|---|\n")
	nc, hw := quantile(walls[1], 0.5), quantile(walls[2], 0.5)
	for j, tool := range tools {
		fi, err := os.Stat(tool.argv[0])
		if err != nil {
			return err
		}
		med := quantile(walls[j], 0.5)
		fmt.Fprintf(w, "| %s | %.1f MB | %s | %s | %.1f MiB | %.2f× | %.2f× |\n", tool.name, float64(fi.Size())/1e6,
			ms(med), ms(quantile(walls[j], 0.95)), float64(quantile(rss[j], 0.5))/1024, float64(med)/float64(nc), float64(med)/float64(hw))
	}
	fmt.Fprintln(w)
	// Where the resident set is: the binary's own pages (shared page cache,
	// charged once to whoever wrote the layer) or the process's anonymous
	// memory (what a container's memory limit pays).
	fmt.Fprintf(w, "### Resident while it waits (`waitfor tcp` to a closed port, retrying; read from /proc/PID/status after 300 ms; 5 runs, medians)\n\n")
	fmt.Fprintf(w, "| binary | size | file-backed | anonymous |\n|---|---|---|---|\n")
	closed, err := closedPort()
	if err != nil {
		return err
	}
	split := []tool{{"initbox", []string{self, "waitfor"}}}
	if single, ok := singles["waitfor"]; ok {
		split = append(split, tool{"waitfor alone (cmd/waitfor)", []string{single}})
	}
	for _, s := range split {
		file, anon, err := resident(append(s.argv, "tcp", closed, "-q", "--timeout", "10s", "--termination-log", ""), 5)
		if err != nil {
			return err
		}
		fi, _ := os.Stat(s.argv[0])
		fmt.Fprintf(w, "| %s | %.1f MB | %.1f MiB | %.1f MiB |\n", s.name, float64(fi.Size())/1e6, float64(file)/1024, float64(anon)/1024)
	}
	fmt.Fprintln(w)
	// Why the file-backed part follows the binary's size: how much the
	// kernel maps for each page a process touches.
	fmt.Fprintf(w, "### Mapped per page touched (this benchmark maps the copy of initbox, reads one byte every 256 KiB, and reads its own RssFile before and after)\n\n")
	fmt.Fprintf(w, "| advice | pages touched | resident after | per page touched |\n|---|---|---|---|\n")
	for _, adv := range []struct {
		name string
		n    int
	}{{"none", -1}, {"MADV_RANDOM", syscall.MADV_RANDOM}} {
		touched, kib, err := faultAround(self, adv.n)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "| %s | %d | %.1f MiB | %.0f KiB |\n", adv.name, touched, float64(kib)/1024, float64(kib)/float64(touched))
	}
	fmt.Fprintln(w)
	for _, name := range []string{"waitfor", "fetch", "render", "register"} {
		if single, ok := singles[name]; ok {
			initboxes = append(initboxes, tool{name + " alone (cmd/" + name + ")", []string{single, "--help"}})
		}
	}
	fmt.Fprintf(w, "### Package initializers before main (`GODEBUG=inittrace=1 initbox sleep 0`, and `--help` of each applet's own binary; %d runs each, medians)\n\n", c.starts/4)
	fmt.Fprintf(w, "| binary | size | packages with init work | init total | allocated | costliest (ms) |\n|---|---|---|---|---|---|\n")
	for _, ib := range initboxes {
		tr, err := inittrace(ib.argv, c.starts/4)
		if err != nil {
			return err
		}
		fi, _ := os.Stat(ib.argv[0])
		fmt.Fprintf(w, "| %s | %.1f MB | %d | %.2f ms | %d KB | %s |\n", ib.name, float64(fi.Size())/1e6, tr.packages, tr.total, tr.bytes/1000, tr.top(8))
	}
	fmt.Fprintln(w)
	return nil
}

// faultAround maps bin privately, applies advice (unless negative), reads
// one byte every 256 KiB, and returns how many pages it touched and how
// many KiB of file-backed memory this process gained by it.
func faultAround(bin string, advice int) (touched, kib int, err error) {
	f, err := os.Open(bin)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Munmap(m)
	if advice >= 0 {
		if err := syscall.Madvise(m, advice); err != nil {
			return 0, 0, err
		}
	}
	before, _, err := rss("self")
	if err != nil {
		return 0, 0, err
	}
	var sum byte
	for i := 0; i < len(m); i += 256 << 10 {
		sum += m[i]
		touched++
	}
	after, _, err := rss("self")
	runtime.KeepAlive(sum)
	return touched, after - before, err
}

// rss reads the file-backed and anonymous resident KiB of a process
// ("self" or a PID) from /proc/PID/status.
func rss(pid string) (file, anon int, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "RssFile: %d kB", &file); err == nil {
			seen++
		}
		if _, err := fmt.Sscanf(line, "RssAnon: %d kB", &anon); err == nil {
			seen++
		}
	}
	if seen != 2 {
		return 0, 0, errors.New("no RssFile and RssAnon in /proc/" + pid + "/status")
	}
	return file, anon, nil
}

// closedPort is a loopback address nothing listens on: a port just
// released, which refuses every connection.
func closedPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// resident starts argv, reads its file-backed and anonymous resident KiB
// from /proc/PID/status after 300 ms, kills it, and returns the medians of
// runs such starts.
func resident(argv []string, runs int) (file, anon int, err error) {
	var files, anons []time.Duration
	for i := 0; i < runs; i++ {
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		time.Sleep(300 * time.Millisecond)
		f, a, rerr := rss(strconv.Itoa(cmd.Process.Pid))
		cmd.Process.Kill()
		cmd.Wait()
		if rerr != nil {
			return 0, 0, fmt.Errorf("%s: %w (exited early?)", argv[0], rerr)
		}
		files, anons = append(files, time.Duration(f)), append(anons, time.Duration(a))
	}
	return int(quantile(files, 0.5)), int(quantile(anons, 0.5)), nil
}

// copyFile writes a fresh copy of from as containerd unpacks a layer's
// files: write(2) calls of at most 32 KiB (pkg/archive's copyBuffered and
// its 32 KiB buffer pool, containerd v2.4.2). How a file came into the page
// cache decides how much of it a process maps: the kernel maps a fault's
// neighbours up to the folio they sit in, and one write of the whole binary
// makes folios of up to 2 MiB (peak RSS 14.7 MiB then, against 12.4 MiB for
// the same binary written as containerd writes it).
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		if _, err := f.Write(b[:n]); err != nil {
			f.Close()
			return err
		}
		b = b[n:]
	}
	return f.Close()
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// initTrace is what GODEBUG=inittrace=1 reports, as medians over runs.
type initTrace struct {
	packages int
	total    float64 // ms, the median of each run's sum
	bytes    int     // allocated, the median run
	perPkg   map[string]float64
}

func (t initTrace) top(n int) string {
	names := make([]string, 0, len(t.perPkg))
	for k := range t.perPkg {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return t.perPkg[names[i]] > t.perPkg[names[j]] })
	var parts []string
	for _, k := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, t.perPkg[k]))
	}
	return strings.Join(parts, ", ")
}

func inittrace(argv []string, runs int) (initTrace, error) {
	var totals, allocs []time.Duration
	per := map[string][]time.Duration{}
	t := initTrace{perPkg: map[string]float64{}}
	for i := 0; i < runs; i++ {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return t, fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
		}
		var total float64
		var bytes, n int
		// init PKG @0.010 ms, 0.004 ms clock, 0 bytes, 0 allocs: fields 1, 4, 7
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || f[0] != "init" {
				continue
			}
			var ms float64
			var b int
			fmt.Sscan(f[4], &ms)
			fmt.Sscan(f[7], &b)
			total += ms
			bytes += b
			n++
			per[f[1]] = append(per[f[1]], time.Duration(ms*1e6))
		}
		totals = append(totals, time.Duration(total*1e6))
		allocs = append(allocs, time.Duration(bytes))
		t.packages = n
	}
	t.total = float64(quantile(totals, 0.5)) / 1e6
	t.bytes = int(quantile(allocs, 0.5))
	for k, v := range per {
		t.perPkg[k] = float64(quantile(v, 0.5)) / 1e6
	}
	return t, nil
}

// usage is what GNU time reports of one run: peak RSS and CPU time.
type usage struct {
	kib int           // peak resident set, KiB
	cpu time.Duration // user + system
}

// gnuTime is the path of GNU time (Debian's package "time").
var gnuTime = sync.OnceValue(func() string {
	if p, err := exec.LookPath("time"); err == nil {
		return p
	}
	return "/usr/bin/time"
})

// timeRun runs argv under GNU time. Peak RSS comes from GNU time because
// os/exec's children share the benchmark's memory until exec (CLONE_VM), so
// their own ru_maxrss would report the benchmark's size.
func timeRun(argv []string, stdin *os.File) (usage, error) {
	out, err := os.CreateTemp("", "initbox-bench-rss-")
	if err != nil {
		return usage{}, err
	}
	defer os.Remove(out.Name())
	out.Close()
	cmd := exec.Command(gnuTime(), append([]string{"-f", "%M %U %S", "-o", out.Name()}, argv...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Run(); err != nil {
		return usage{}, fmt.Errorf("%s: %w (apt-get install time)", gnuTime(), err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		return usage{}, err
	}
	var u usage
	var user, sys float64
	if _, err = fmt.Sscan(strings.TrimSpace(string(b)), &u.kib, &user, &sys); err != nil {
		return usage{}, fmt.Errorf("reading GNU time's %q: %w", b, err)
	}
	u.cpu = time.Duration((user + sys) * float64(time.Second))
	return u, nil
}

func buildHello(dir string) (string, error) {
	src := filepath.Join(dir, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	bin := filepath.Join(dir, "hello-bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building hello: %v\n%s", err, out)
	}
	return bin, nil
}

// acceptAndClose accepts connections on ln and closes them at once, until
// ln is closed: a port that is open and nothing more.
func acceptAndClose(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Close()
	}
}

// tmpfsDir makes a temporary directory on /dev/shm when there is one, so
// that the disk's speed is not what is measured, and under c.work if not.
func tmpfsDir(c config, prefix string) (string, error) {
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = c.work
	}
	return os.MkdirTemp(base, prefix)
}
