package waitfor

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
)

// silentTargets holds, for each kind, how to name a target whose server
// accepts and never answers; each kind's test file adds its own, and the
// leak test fails for a kind without one.
var silentTargets = map[string]func(s silent) string{}

// silent is what a silent target may use: a TCP server that holds every
// connection, a DNS server that never answers, a scratch directory.
type silent struct {
	addr, dns, dir string
	env            map[string]string // the probe's environment
}

func silentTarget(kind string, f func(s silent) string) bool {
	silentTargets[kind] = f
	return true
}

// A thousand attempts cut short by their deadline, of every kind of probe,
// leave no goroutine behind.
func TestNoGoroutineLeakAfterCancelledAttempts(t *testing.T) {
	// A server that accepts and never answers: every attempt is cut.
	addr := testenv.Serve(t, testenv.Hold)
	dns := dnstest.Start(t)
	dns.Silent(true)
	vars := map[string]string{}
	env := &cli.Env{Secrets: &redact.Set{}, Log: discardLogger(), LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	o := &options{
		env: env, server: dns.Addr, resolvConf: "/dev/null",
		interval: 200 * time.Millisecond, maxInterval: time.Second, attemptTimeout: time.Second,
	}
	s := silent{addr: addr, dns: dns.Addr, dir: t.TempDir(), env: vars}
	probes := map[string]probe{}
	for _, k := range kinds {
		mk := silentTargets[k.name]
		if mk == nil {
			t.Fatalf("kind %s: its test file adds no silentTarget", k.name)
		}
		// The kind's options with their defaults, as the command line
		// leaves them.
		fs := cli.NewFlagSet("waitfor")
		ko := k.options()
		ko.flags(fs)
		p, err := ko.probe(o, mk(s))
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		probes[k.name] = p
	}
	settle := func() int {
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for name, p := range probes {
		for i := 0; i < 1000; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			if p.Check(ctx) == nil {
				t.Fatalf("%s: ready against a silent server", name)
			}
			cancel()
		}
	}
	// net/http finishes a dial its request no longer wants, TLS handshake
	// included (k8s: the API server's), until TLSHandshakeTimeout (10 s):
	// those goroutines end by then, not at once.
	var after int
	for i := 0; i < 150; i++ {
		if after = settle(); after <= before+2 {
			break
		}
	}
	t.Logf("goroutines: %d before, %d after %d kinds × 1000 cancelled attempts", before, after, len(probes))
	if after > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
