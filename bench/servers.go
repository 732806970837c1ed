package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/initbox/initbox/internal/testenv/grpctest"
)

// serverKind is a dependency that is a server process: how to start one
// on a port, the line it prints once it accepts clients, and the loop
// users write today with its own client.
type serverKind struct {
	name   string
	start  func(dir, addr string) *exec.Cmd
	ready  string // a line of the server's output once it serves
	target func(addr string) []string
	loop   func(host, port string) string
}

// serverLatency is the detection-latency benchmark for servers: in each
// trial one server starts at a random time, and initbox and the users'
// loop wait for it side by side; latency runs from the moment the server
// says it is ready to the waiter's exit.
func serverLatency(c config, w io.Writer) error {
	mariaTemplate, err := mariaTemplate(c.work)
	if err != nil {
		return err
	}
	t := &tb{}
	defer t.close()
	healthserver, probe := grpctest.Binaries(t)
	probePath = probe
	kinds := []serverKind{
		{
			name: "mysql",
			start: func(dir, addr string) *exec.Cmd {
				_, port := splitAddr(addr)
				exec.Command("cp", "-a", mariaTemplate, filepath.Join(dir, "data")).Run()
				return exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
					"--socket="+filepath.Join(dir, "sock"), "--port="+port, "--bind-address=127.0.0.1", "--user=root",
					"--skip-name-resolve", "--pid-file="+filepath.Join(dir, "pid"), "--innodb-buffer-pool-size=16M",
					"--innodb-log-file-size=4M", "--skip-log-bin")
			},
			ready:  "ready for connections",
			target: func(addr string) []string { return []string{"mysql", "mysql://app:app-pw@" + addr + "/appdb"} },
			loop: func(host, port string) string {
				return fmt.Sprintf("until mysqladmin --no-defaults --connect-timeout=1 -h %s -P %s -u app -papp-pw ping >/dev/null 2>&1; do echo probe >&2; sleep 2; done", host, port)
			},
		},
		{
			name: "redis",
			start: func(dir, addr string) *exec.Cmd {
				_, port := splitAddr(addr)
				return exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no")
			},
			ready:  "Ready to accept connections",
			target: func(addr string) []string { return []string{"redis", "redis://" + addr} },
			loop: func(host, port string) string {
				return fmt.Sprintf("until redis-cli -h %s -p %s ping >/dev/null 2>&1; do echo probe >&2; sleep 2; done", host, port)
			},
		},
		{
			name: "grpc",
			start: func(dir, addr string) *exec.Cmd {
				return exec.Command(healthserver, "-addr", addr)
			},
			ready:  "listening ",
			target: func(addr string) []string { return []string{"grpc", addr} },
			loop: func(host, port string) string {
				return fmt.Sprintf("until %s -addr=%s:%s >/dev/null 2>&1; do echo probe >&2; sleep 2; done", probe, host, port)
			},
		},
	}
	trials := max(4, c.trials/5)
	for _, k := range kinds {
		if err := serverTable(c, w, k, trials); err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
	}
	return nil
}

// probePath is grpc-health-probe's, shown by its name alone.
var probePath string

func splitAddr(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}

func serverTable(c config, w io.Writer, k serverKind, trials int) error {
	rng := rand.New(rand.NewPCG(7, 8))
	type result struct{ ib, loop trial }
	results := make([]result, trials)
	errs := make([]error, trials)
	sem := make(chan struct{}, max(1, c.parallel/4))
	var wg sync.WaitGroup
	for i := range results {
		appear := c.minAppear + time.Duration(rng.Int64N(int64(c.maxAppear-c.minAppear)))
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i].ib, results[i].loop, errs[i] = serverTrial(c, k, appear)
		}()
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "## Detection latency, %s: the server starts at a random time in %s-%s (%d trials)\n\n", k.name, c.minAppear, c.maxAppear, trials)
	fmt.Fprintf(w, "initbox: `waitfor %s …` with its default schedule. The loop: `%s`. Latency from the server's own \"%s\" line to the waiter's exit; both wait for the same server in each trial.\n\n",
		k.name, strings.ReplaceAll(strings.ReplaceAll(k.loop("HOST", "PORT"), " >/dev/null 2>&1", ""), filepath.Dir(probePath)+"/", ""), strings.TrimSpace(k.ready))
	fmt.Fprintf(w, "| tool | latency median | latency p95 | latency max | probes/s while waiting (mean) |\n|---|---|---|---|---|\n")
	var meds []time.Duration
	for _, tool := range []string{"initbox", "loop"} {
		var lats []time.Duration
		var rate float64
		for _, r := range results {
			tr := r.ib
			if tool == "loop" {
				tr = r.loop
			}
			lats = append(lats, tr.latency)
			rate += float64(tr.probes) / tr.waited.Seconds()
		}
		meds = append(meds, quantile(lats, 0.5))
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f |\n", tool, ms(quantile(lats, 0.5)), ms(quantile(lats, 0.95)), ms(quantile(lats, 1)), rate/float64(trials))
	}
	fmt.Fprintf(w, "\nloop / initbox, median latency: %.1f×\n\n", float64(meds[1])/float64(meds[0]))
	return nil
}

// serverTrial starts both waiters, then the server after appear, and
// times each waiter's exit from the server's ready line.
func serverTrial(c config, k serverKind, appear time.Duration) (trial, trial, error) {
	dir, err := os.MkdirTemp(c.work, "srv-")
	if err != nil {
		return trial{}, trial{}, err
	}
	defer os.RemoveAll(dir)
	addr, err := trialPort()
	if err != nil {
		return trial{}, trial{}, err
	}
	host, port := splitAddr(addr)
	waiters := []*exec.Cmd{
		exec.Command(c.initbox, append(append([]string{"waitfor"}, k.target(addr)...), "-v", "--timeout", "3m", "--termination-log", "")...),
		exec.Command("sh", "-c", k.loop(host, port)),
	}
	type exit struct {
		at     time.Time
		stderr string
		err    error
	}
	exits := make([]chan exit, len(waiters))
	start := time.Now()
	for i, cmd := range waiters {
		var buf strings.Builder
		cmd.Stderr = &buf
		if err := cmd.Start(); err != nil {
			return trial{}, trial{}, err
		}
		exits[i] = make(chan exit, 1)
		go func() {
			err := cmd.Wait()
			exits[i] <- exit{time.Now(), buf.String(), err}
		}()
	}
	time.Sleep(appear)
	srv := k.start(dir, addr)
	out, _ := srv.StdoutPipe()
	srv.Stderr = srv.Stdout
	if err := srv.Start(); err != nil {
		return trial{}, trial{}, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	readyAt := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), k.ready) {
				readyAt <- time.Now()
				sent = true
			}
		}
		if !sent {
			close(readyAt)
		}
	}()
	ready, ok := <-readyAt
	if !ok {
		return trial{}, trial{}, fmt.Errorf("the server never printed %q", k.ready)
	}
	var res [2]trial
	for i := range waiters {
		e := <-exits[i]
		if e.err != nil {
			return trial{}, trial{}, fmt.Errorf("waiter %d: %v: %s", i, e.err, e.stderr)
		}
		tool := "initbox"
		if i == 1 {
			tool = "busybox" // countProbes' "probe" lines
		}
		res[i] = trial{tool: tool, latency: e.at.Sub(ready), waited: e.at.Sub(start), probes: countProbes(tool, e.stderr)}
	}
	return res[0], res[1], nil
}

// mariaTemplate installs one MariaDB data directory (small logs) with the
// benchmark's user, to copy for every trial.
func mariaTemplate(work string) (string, error) {
	dir := filepath.Join(work, "maria-template")
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+dir, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=4M").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb-install-db (apt-get install mariadb-server): %v\n%s", err, out)
	}
	init := filepath.Join(work, "maria-init.sql")
	os.WriteFile(init, []byte("CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';\nCREATE DATABASE appdb;\nGRANT ALL ON appdb.* TO 'app'@'%';\n"), 0o644)
	// Once, to create the user; then the directory is the template.
	cmd := exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--datadir="+dir, "--socket="+filepath.Join(work, "maria.sock"),
		"--skip-networking", "--user=root", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M", "--skip-log-bin",
		"--pid-file="+filepath.Join(work, "maria.pid"), "--init-file="+init)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(stderr)
	ok := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "ready for connections") {
			ok = true
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM) // a clean shutdown
	go io.Copy(io.Discard, stderr)
	cmd.Wait()
	if !ok {
		return "", fmt.Errorf("mariadbd did not start on the template")
	}
	return dir, nil
}
