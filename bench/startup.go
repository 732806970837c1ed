package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// startup measures the wall time and peak RSS of an immediate success:
// initbox waitfor tcp against an open port, BusyBox nc against the same
// port, and a static Go hello-world, interleaved so noise hits all alike.
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
	tools := []struct {
		name string
		argv []string
	}{
		{"initbox waitfor tcp (connect)", []string{c.initbox, "waitfor", "tcp", "127.0.0.1:" + port, "-q", "--termination-log", ""}},
		{"busybox nc -w 1 (connect)", []string{c.busybox, "nc", "-w", "1", "127.0.0.1", port}},
		{"Go hello-world (static)", []string{hello}},
		{"busybox true", []string{c.busybox, "true"}},
	}
	walls := make([][]time.Duration, len(tools))
	rss := make([][]time.Duration, len(tools)) // KiB, kept as Duration to reuse quantile
	for i := 0; i < c.starts; i++ {
		for j, tool := range tools {
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
	fi, _ := os.Stat(c.initbox)
	bb, _ := os.Stat(c.busybox)
	hi, _ := os.Stat(hello)
	sizes := []int64{fi.Size(), bb.Size(), hi.Size(), bb.Size()}
	fmt.Fprintf(w, "## Startup: an immediate success (%d starts each, interleaved; peak RSS from GNU time on every 10th)\n\n", c.starts)
	fmt.Fprintf(w, "| tool | binary | wall median | wall p95 | peak RSS median | vs busybox nc (median wall) |\n|---|---|---|---|---|---|\n")
	base := quantile(walls[1], 0.5)
	for j, tool := range tools {
		med := quantile(walls[j], 0.5)
		fmt.Fprintf(w, "| %s | %.1f MB | %s | %s | %.1f MB | %.2f× |\n", tool.name, float64(sizes[j])/1e6,
			ms(med), ms(quantile(walls[j], 0.95)), float64(quantile(rss[j], 0.5))/1024, float64(med)/float64(base))
	}
	fmt.Fprintln(w)
	return nil
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
