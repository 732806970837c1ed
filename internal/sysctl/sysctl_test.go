package sysctl

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

const key = "net.ipv4.ip_unprivileged_port_start"

// inNetns runs a shell script in a fresh network namespace, so the kernel
// settings it changes are that namespace's, never this machine's.
func inNetns(t *testing.T, script string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skip(t, "a network namespace needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Skip(t, "unshare (util-linux) is not installed")
	}
	cmd := exec.Command("unshare", "-n", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "IB="+testenv.Binary(t))
	out, err := cmd.CombinedOutput()
	t.Logf("%s\n%s", script, out)
	return string(out), err
}

func hostValue(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		testenv.Skip(t, "no "+key+" here")
	}
	return strings.TrimSpace(string(b))
}

func TestSysctlInANetworkNamespace(t *testing.T) {
	before := hostValue(t)
	want := "1000"
	if before == want {
		want = "1001"
	}
	out, err := inNetns(t, `"$IB" sysctl `+key+`=`+want+` --termination-log '' && "$IB" sysctl `+key+`=`+want+` --termination-log '' && cat /proc/sys/net/ipv4/ip_unprivileged_port_start`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "msg=set key="+key) || !strings.Contains(out, `msg="already set" key=`+key) || !strings.HasSuffix(strings.TrimSpace(out), want) {
		t.Fatalf("set, then already set, then %s read back, expected:\n%s", want, out)
	}
	if hostValue(t) != before {
		t.Fatal("the machine's own setting changed")
	}
	// Unprivileged, the same write fails, saying what is needed.
	out, err = inNetns(t, `exec setpriv --reuid 65534 --regid 65534 --clear-groups "$IB" sysctl `+key+`=`+want+` --termination-log ''`)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "privileged container") {
		t.Fatalf("exit %v:\n%s", err, out)
	}
}

// The decision logic on a fake /proc/sys tree: --min, already set, unknown
// keys, verification.
func TestSysctlLogic(t *testing.T) {
	dir := t.TempDir()
	write := func(k, v string) {
		p := filepath.Join(dir, strings.ReplaceAll(k, ".", "/"))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(v), 0o644)
	}
	write("vm.max_map_count", "65530\n")
	write("net.ipv4.ip_local_port_range", "32768\t60999\n")
	run := func(args ...string) testenv.Result {
		return testenv.Run(t, context.Background(), Applet, nil, append(args, "--proc-sys", dir)...)
	}
	run("vm.max_map_count=262144", "--min").MustExit(t, 0, "msg=set key=vm.max_map_count from=65530 to=262144")
	write("vm.max_map_count", "1000000\n")
	run("vm.max_map_count=262144", "--min").MustExit(t, 0, `msg="already set"`)
	run("net.ipv4.ip_local_port_range=32768 60999").MustExit(t, 0, `msg="already set"`)
	run("vm.nosuch=1").MustExit(t, 1, "no such kernel parameter")
	for _, bad := range [][]string{{}, {"vm.max_map_count"}, {"vm.max_map_count="}, {"../etc/passwd=1"}, {"vm.x=abc", "--min"}} {
		run(bad...).MustExit(t, 2)
	}
}
