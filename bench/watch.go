package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
)

// watchBench measures render --watch as a native sidecar lives: its
// memory while watching and after 10,000 changes of a ConfigMap-style
// volume (written as the kubelet writes one), how long each change takes to
// reach the output, and how often it wakes while nothing changes.
func watchBench(c config, w io.Writer) error {
	dir, err := os.MkdirTemp(c.work, "watch-")
	if err != nil {
		return err
	}
	cm := filepath.Join(dir, "cm")
	if err := os.Mkdir(cm, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(cm)
	if err != nil {
		return err
	}
	defer root.Close()
	write := func(n int) error {
		return atomicfile.WriteData(context.Background(), root, cm, []atomicfile.DataFile{{Name: "app.conf.tmpl", Body: []byte("n=" + strconv.Itoa(n) + "\n"), Mode: 0o644}}, atomicfile.Owner{UID: -1, GID: -1})
	}
	if err := write(0); err != nil {
		return err
	}
	out := filepath.Join(dir, "app.conf")
	cmd := exec.Command(c.initbox, "render", filepath.Join(cm, "app.conf.tmpl"), "--out", out, "--watch", "--debounce", "1ms", "--quiet", "--termination-log", "")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor := func(want string, limit time.Duration) (time.Duration, error) {
		start := time.Now()
		for time.Since(start) < limit {
			if b, _ := os.ReadFile(out); string(b) == want {
				return time.Since(start), nil
			}
			time.Sleep(200 * time.Microsecond)
		}
		return 0, fmt.Errorf("the output did not become %q within %s", want, limit)
	}
	if _, err := waitFor("n=0\n", 10*time.Second); err != nil {
		return err
	}
	time.Sleep(time.Second)
	pid := cmd.Process.Pid
	rss0, anon0 := statusKB(pid, "VmRSS"), statusKB(pid, "RssAnon")
	// Idle: context switches of every thread over 10 s with nothing
	// changing (the runtime's own timers included).
	sw0 := switches(pid)
	time.Sleep(10 * time.Second)
	idle := switches(pid) - sw0
	const changes = 10000
	lat := make([]time.Duration, 0, changes)
	var marks []string
	for i := 1; i <= changes; i++ {
		if i == 1000 || i == 3000 || i == 6000 {
			marks = append(marks, fmt.Sprintf("%d: %.1f MiB", i, float64(statusKB(pid, "RssAnon"))/1024))
		}
		start := time.Now()
		if err := write(i); err != nil {
			return err
		}
		if _, err := waitFor("n="+strconv.Itoa(i)+"\n", 10*time.Second); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	time.Sleep(time.Second)
	rss1, anon1 := statusKB(pid, "VmRSS"), statusKB(pid, "RssAnon")
	// The runtime gives freed pages back in the background: again after
	// a rest.
	time.Sleep(20 * time.Second)
	rss2, anon2 := statusKB(pid, "VmRSS"), statusKB(pid, "RssAnon")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Fprintf(w, "## render --watch as a sidecar: memory, idle wake-ups, and 10,000 volume changes\n\n")
	fmt.Fprintf(w, "One `initbox render --watch` on a template in a ConfigMap-style volume (each change written as the kubelet writes one: a new `..` directory, `..data` swapped), `--debounce 1ms`; a change is timed from the start of its write to the output holding it.\n\n")
	fmt.Fprintf(w, "| what | value |\n|---|---|\n")
	fmt.Fprintf(w, "| RSS while watching (after the first render) | %.1f MiB (anonymous %.1f MiB) |\n", float64(rss0)/1024, float64(anon0)/1024)
	fmt.Fprintf(w, "| RSS after %d changes | %.1f MiB (anonymous %.1f MiB) |\n", changes, float64(rss1)/1024, float64(anon1)/1024)
	fmt.Fprintf(w, "| RSS 20 s later, nothing changing | %.1f MiB (anonymous %.1f MiB) |\n", float64(rss2)/1024, float64(anon2)/1024)
	fmt.Fprintf(w, "| anonymous RSS along the way (after N changes) | %s |\n", strings.Join(marks, ", "))
	fmt.Fprintf(w, "| context switches of all its threads in 10 s of nothing changing | %d |\n", idle)
	fmt.Fprintf(w, "| change → output, median | %s |\n", lat[len(lat)/2].Round(10*time.Microsecond))
	fmt.Fprintf(w, "| change → output, p99 | %s |\n\n", lat[len(lat)*99/100].Round(10*time.Microsecond))
	return nil
}

func statusKB(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// switches sums the voluntary and involuntary context switches of every
// thread of pid.
func switches(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, l := range strings.Split(string(b), "\n") {
			for _, f := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if v, ok := strings.CutPrefix(l, f); ok {
					x, _ := strconv.Atoi(strings.TrimSpace(v))
					n += x
				}
			}
		}
	}
	return n
}
