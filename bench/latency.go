package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/initbox/initbox/internal/testenv/dnstest"
)

type trial struct {
	tool    string
	latency time.Duration // from the dependency appearing to the waiter's exit
	probes  int
	waited  time.Duration // from the waiter's start to its exit
	err     error
}

// latency starts a waiter per trial, makes its dependency appear at a
// random time in [minAppear, maxAppear], and measures how long the waiter
// takes to notice (exit) and how many probes it sent.
func latency(c config, w io.Writer, kind string) error {
	var dns *dnstest.Server
	var conf string
	t := &tb{}
	defer t.close()
	if kind == "dns" {
		dns = dnstest.Start(t)
		if !dns.Port53 {
			return fmt.Errorf("the DNS benchmark needs root: BusyBox's nslookup only talks to port 53")
		}
		conf, _ = dns.ResolvConf(t, "ndots:5")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type job struct {
		tool   string
		appear time.Duration
		n      int
	}
	var jobs []job
	for i := 0; i < c.trials; i++ {
		appear := c.minAppear + time.Duration(rng.Int64N(int64(c.maxAppear-c.minAppear)))
		// The same appearance time for both tools: a paired comparison.
		jobs = append(jobs, job{"initbox", appear, i}, job{"busybox", appear, i})
	}
	results := make([]trial, len(jobs))
	sem := make(chan struct{}, c.parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if kind == "tcp" {
				results[i] = tcpTrial(c, j.tool, j.appear)
			} else {
				results[i] = dnsTrial(c, dns, conf, j.tool, j.appear, j.n)
			}
		}()
		time.Sleep(50 * time.Millisecond) // spread the starts
	}
	wg.Wait()

	by := map[string][]trial{}
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s trial: %w", r.tool, r.err)
		}
		by[r.tool] = append(by[r.tool], r)
	}
	loop := map[string]string{
		"tcp": "`until nc -w 1 HOST PORT </dev/null; do sleep 2; done`",
		"dns": "`until nslookup NAME.default.svc.cluster.local SERVER; do sleep 2; done` (the fully qualified name: BusyBox cannot use the search list)",
	}[kind]
	fmt.Fprintf(w, "## Detection latency, %s: the dependency appears at a random time in %s-%s (%d trials each)\n\n", kind, c.minAppear, c.maxAppear, c.trials)
	fmt.Fprintf(w, "initbox: `waitfor %s …` with its default schedule. busybox: %s.\n\n", kind, loop)
	fmt.Fprintf(w, "| tool | latency median | latency p95 | latency max | probes/s while waiting (mean) | probes per trial (median) |\n|---|---|---|---|---|---|\n")
	var meds []time.Duration
	for _, tool := range []string{"initbox", "busybox"} {
		var lats []time.Duration
		var probes []time.Duration
		var rate float64
		for _, r := range by[tool] {
			lats = append(lats, r.latency)
			probes = append(probes, time.Duration(r.probes))
			rate += float64(r.probes) / r.waited.Seconds()
		}
		meds = append(meds, quantile(lats, 0.5))
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %d |\n", tool, ms(quantile(lats, 0.5)), ms(quantile(lats, 0.95)), ms(quantile(lats, 1)), rate/float64(len(by[tool])), int(quantile(probes, 0.5)))
	}
	fmt.Fprintf(w, "\nbusybox / initbox, median latency: %.1f×\n\n", float64(meds[1])/float64(meds[0]))
	return nil
}

// nextPort hands each trial a port of its own, below the kernel's
// ephemeral range, so that no other trial (nor any probe's source port)
// can be using it when its dependency appears.
var nextPort atomic.Int32

func trialPort() (string, error) {
	for range 1000 {
		p := 20000 + int(nextPort.Add(1))%10000
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free port in 20000-29999")
}

func tcpTrial(c config, tool string, appear time.Duration) trial {
	addr, err := trialPort()
	if err != nil {
		return trial{err: err}
	}
	host, port, _ := net.SplitHostPort(addr)
	var cmd *exec.Cmd
	if tool == "initbox" {
		cmd = exec.Command(c.initbox, "waitfor", "tcp", addr, "-v", "--timeout", "2m", "--termination-log", "")
	} else {
		loop := fmt.Sprintf("until %s nc -w 1 %s %s </dev/null; do echo probe >&2; sleep 2; done", c.busybox, host, port)
		cmd = exec.Command(c.busybox, "sh", "-c", loop)
	}
	var srv net.Listener
	lat, waited, stderr, err := waitTrial(cmd, appear, func() error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv = l
		go acceptAndClose(l)
		return nil
	})
	if srv != nil {
		srv.Close()
	}
	if err != nil {
		return trial{err: err}
	}
	return trial{tool: tool, latency: lat, waited: waited, probes: countProbes(tool, stderr)}
}

// waitTrial starts cmd, makes the dependency appear after the delay, and
// measures how long cmd takes to exit after that, and in all.
func waitTrial(cmd *exec.Cmd, delay time.Duration, appear func() error) (latency, waited time.Duration, stderr string, err error) {
	var buf bytes.Buffer
	cmd.Stderr = &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	var mu sync.Mutex
	var appeared time.Time
	var appearErr error
	timer := time.AfterFunc(delay, func() {
		mu.Lock()
		defer mu.Unlock()
		if appearErr = appear(); appearErr == nil {
			appeared = time.Now()
		}
	})
	werr := cmd.Wait()
	end := time.Now()
	timer.Stop()
	mu.Lock()
	defer mu.Unlock()
	if werr != nil || appeared.IsZero() {
		return 0, 0, buf.String(), fmt.Errorf("waiter exit %v (appeared: %v, %v): %s", werr, !appeared.IsZero(), appearErr, buf.String())
	}
	return end.Sub(appeared), end.Sub(start), buf.String(), nil
}

func countProbes(tool, stderr string) int {
	if tool == "initbox" {
		return strings.Count(stderr, `msg="not ready"`) + 1
	}
	return strings.Count(stderr, "probe\n") + 1
}

func dnsTrial(c config, s *dnstest.Server, conf, tool string, appear time.Duration, n int) trial {
	name := fmt.Sprintf("%s-%d", tool, n)
	fqdn := name + ".default.svc.cluster.local."
	var cmd *exec.Cmd
	if tool == "initbox" {
		cmd = exec.Command(c.initbox, "waitfor", "dns", name, "--resolv-conf", conf, "--hosts-file", "", "--timeout", "2m", "--termination-log", "")
	} else {
		host, _, _ := net.SplitHostPort(s.Addr)
		loop := fmt.Sprintf("until %s nslookup %s %s >/dev/null 2>&1; do sleep 2; done", c.busybox, strings.TrimSuffix(fqdn, "."), host)
		cmd = exec.Command(c.busybox, "sh", "-c", loop)
	}
	lat, waited, _, err := waitTrial(cmd, appear, func() error {
		s.Add(&tb{}, fqdn+" 5 IN A 10.96.0.10")
		return nil
	})
	if err != nil {
		return trial{err: err}
	}
	// One probe is one lookup of the name: count the A queries for the
	// first name each tool asks for.
	probes, _ := s.Queries(fqdn, "A")
	return trial{tool: tool, latency: lat, waited: waited, probes: probes}
}

// correctness runs the Kubernetes docs' own loop body, BusyBox's nslookup
// of a short name under a pod's resolv.conf, against initbox — once each,
// with the name present in the zone all along.
func correctness(c config, w io.Writer) error {
	t := &tb{}
	defer t.close()
	s := dnstest.Start(t)
	if !s.Port53 {
		return fmt.Errorf("needs root")
	}
	conf, _ := s.ResolvConf(t, "ndots:5")
	s.Add(t, "myservice.default.svc.cluster.local. 5 IN A 10.96.0.10")
	fmt.Fprintf(w, "## Correctness: a short name under a pod's resolv.conf (the name exists)\n\n")
	fmt.Fprintf(w, "resolv.conf: `search %s`, `options ndots:5`, nameserver: a local DNS server that knows `myservice.default.svc.cluster.local` and answers NXDOMAIN for the other search domains.\n\n", strings.Join(dnstest.PodSearch, " "))
	fmt.Fprintf(w, "| command | exit | verdict |\n|---|---|---|\n")
	// BusyBox reads only /etc/resolv.conf: give it the pod's in a private
	// mount namespace.
	script := fmt.Sprintf("mount --bind %s /etc/resolv.conf && exec %s nslookup myservice", conf, c.busybox)
	bb := exec.Command("unshare", "-m", "sh", "-c", script)
	out, err := bb.CombinedOutput()
	code := exitCode(err)
	verdict := "resolved"
	if code != 0 {
		verdict = "not resolved: " + firstLine(string(out))
	}
	fmt.Fprintf(w, "| `busybox nslookup myservice` | %d | %s |\n", code, verdict)
	ib := exec.Command(c.initbox, "waitfor", "dns", "myservice", "--resolv-conf", conf, "--timeout", "10s", "--termination-log", "")
	out, err = ib.CombinedOutput()
	code = exitCode(err)
	verdict = "resolved"
	if code != 0 {
		verdict = "not resolved: " + firstLine(string(out))
	}
	fmt.Fprintf(w, "| `initbox waitfor dns myservice` | %d | %s |\n\n", code, verdict)
	return nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// firstLine picks the line that says why, else the first.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "can't find") || strings.Contains(l, "NXDOMAIN") || strings.Contains(l, "timed out") {
			return strings.ReplaceAll(strings.TrimSpace(l), "|", "\\|")
		}
	}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return strings.ReplaceAll(l, "|", "\\|")
		}
	}
	return ""
}

// gentle measures the load a wait puts on a dependency that never appears:
// probes per second in the first 30 s and after 60 s, for tcp and dns at
// once, from the probe timestamps initbox logs with -v.
func gentle(c config, w io.Writer) error {
	t := &tb{}
	defer t.close()
	s := dnstest.Start(t)
	conf, flags := s.ResolvConf(t, "ndots:5")
	_ = conf
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	const total = 75 * time.Second
	runs := map[string][]string{
		"tcp": {"waitfor", "tcp", addr},
		"dns": append([]string{"waitfor", "dns", "never"}, flags...),
	}
	type res struct {
		kind  string
		times []time.Duration
		err   error
	}
	out := make(chan res, len(runs))
	for kind, args := range runs {
		go func() {
			cmd := exec.Command(c.initbox, append(args, "-v", "--timeout", total.String(), "--termination-log", "")...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			cmd.Run() // exit 1 on timeout, as expected
			var ts []time.Duration
			for _, line := range strings.Split(stderr.String(), "\n") {
				if !strings.Contains(line, `msg="not ready"`) {
					continue
				}
				f := strings.Fields(line)
				at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
				if err != nil {
					out <- res{kind: kind, err: err}
					return
				}
				ts = append(ts, at.Sub(start))
			}
			out <- res{kind: kind, times: ts}
		}()
	}
	fmt.Fprintf(w, "## Gentleness: a dependency that never appears (%s, default schedule)\n\n", total)
	fmt.Fprintf(w, "| kind | probes in 0-30 s | per second | probes in 60-75 s | per second | shortest gap after 60 s |\n|---|---|---|---|---|---|\n")
	rows := map[string]string{}
	for range runs {
		r := <-out
		if r.err != nil {
			return r.err
		}
		var early, late int
		minGap := time.Hour
		for i, at := range r.times {
			if at < 30*time.Second {
				early++
			}
			if at >= 60*time.Second {
				late++
				if i > 0 && at-r.times[i-1] < minGap {
					minGap = at - r.times[i-1]
				}
			}
		}
		rows[r.kind] = fmt.Sprintf("| %s | %d | %.2f | %d | %.2f | %s |\n", r.kind, early, float64(early)/30, late, float64(late)/15, ms(minGap))
	}
	fmt.Fprint(w, rows["tcp"], rows["dns"], "\n")
	return nil
}
