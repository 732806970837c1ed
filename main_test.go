package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
)

// TestMain lets the test binary act as initbox, and as each applet through
// its name, as testscript runs commands by argv[0] just as links do.
func TestMain(m *testing.M) {
	cmds := map[string]func(){"initbox": func() { os.Exit(cli.Main(applets.All...)) }, peakRSSHelper: peakRSSMain}
	for _, a := range applets.All {
		cmds[a.Name] = cmds["initbox"]
	}
	testscript.Main(testenv.Guarded(m), cmds)
}

// TestScripts runs testdata/script/*.txtar. Each script gets:
//
//	$OPEN_ADDR    a loopback TCP address with a listener
//	$CLOSED_ADDR  a loopback TCP address nothing listens on
//	$DNS_RESOLV_CONF  a pod-like resolv.conf naming a real DNS server whose
//	                  zone is empty: every name is NXDOMAIN
//	$DNS_SERVER       that server's address when it is not on port 53
//	                  (for --server); empty otherwise
func TestScripts(t *testing.T) {
	openAddr := testenv.Serve(t, func(c net.Conn) { c.Close() })
	closedAddr := testenv.ClosedAddr(t)
	dns := dnstest.Start(t)
	resolvConf, _ := dns.ResolvConf(t, "ndots:5")
	server := ""
	if !dns.Port53 {
		server = dns.Addr
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("OPEN_ADDR", openAddr)
			env.Setenv("CLOSED_ADDR", closedAddr)
			env.Setenv("DNS_RESOLV_CONF", resolvConf)
			env.Setenv("DNS_SERVER", server)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exits CODE PROGRAM ARGS...: run and assert the exact exit status.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("bad exit code %q", args[0])
				}
				code := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("running %s: %v", args[1], err)
					}
					code = ee.ExitCode()
				}
				if code != want {
					ts.Fatalf("exit status %d, want %d", code, want)
				}
			},
			// islink LINK TARGET: LINK is a symlink whose target is TARGET.
			"islink": func(ts *testscript.TestScript, neg bool, args []string) {
				got, err := os.Readlink(ts.MkAbs(args[0]))
				if err != nil || got != args[1] {
					ts.Fatalf("%s links to %q (%v), want %q", args[0], got, err, args[1])
				}
			},
		},
	})
}
