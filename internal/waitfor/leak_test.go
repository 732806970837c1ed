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

// A thousand attempts cut short by their deadline, of every kind of probe,
// leave no goroutine behind.
func TestNoGoroutineLeakAfterCancelledAttempts(t *testing.T) {
	// A server that accepts and never answers: every attempt is cut.
	addr := testenv.Serve(t, testenv.Hold)
	dns := dnstest.Start(t)
	dns.Silent(true)
	o := &options{
		env:    &cli.Env{Secrets: &redact.Set{}, Log: discardLogger(), LookupEnv: func(string) (string, bool) { return "", false }},
		server: dns.Addr, resolvConf: "/dev/null", status: "200-399", method: "GET", minRecords: 1,
		interval: 200 * time.Millisecond, maxInterval: time.Second, attemptTimeout: time.Second,
	}
	probes := map[string]probe{}
	for kind, target := range map[*kind]string{&httpKind: "http://" + addr + "/", &postgresKind: "postgres://u:p@" + addr + "/db", &dnsKind: "silent.test", &tcpKind: "silent.test:80"} {
		p, err := kind.new(o, target)
		if err != nil {
			t.Fatalf("%s: %v", kind.name, err)
		}
		probes[kind.name] = p
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
	var after int
	for i := 0; i < 30; i++ {
		if after = settle(); after <= before+2 {
			break
		}
	}
	t.Logf("goroutines: %d before, %d after 4 × 1000 cancelled attempts", before, after)
	if after > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
