package waitfor

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("redis", func(s silent) string { return "redis://" + s.addr })

// redisServer is a redis-server of Debian's on a free loopback port.
type redisServer struct {
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

func needRedis(t *testing.T) {
	t.Helper()
	for _, p := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "Debian's redis-server and redis-tools are needed: "+err.Error())
		}
	}
}

func newRedisServer(t *testing.T, args ...string) *redisServer {
	testenv.RealServer(t, "redis-server")
	t.Helper()
	return &redisServer{port: freePort(t), dir: t.TempDir(), args: args}
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--appendonly", "no", "--daemonize", "no"}, r.args...)
	r.cmd = startServer(t, "redis-server", args...)
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// cli runs redis-cli against the server: the oracle. It returns its exit
// status and what it printed.
func (r *redisServer) cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.port), "--no-auth-warning"}, args...)...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}

// redis-cli ping and waitfor redis, state by state, on real servers.
// Where they differ it is on purpose (README): redis-cli exits 0 on any
// reply — NOAUTH, WRONGPASS, LOADING — so a loop on it stops too early;
// waitfor is ready only on PONG, and ends at once on a refused password.
func TestRedisAgainstRedisCli(t *testing.T) {
	needRedis(t)
	srv := newRedisServer(t, "--requirepass", "s3cr3t-redis", "--maxclients", "3")
	url := "redis://:s3cr3t-redis@" + srv.addr()

	// Not started: both fail.
	if code, out := srv.cli(t, "ping"); code == 0 {
		t.Fatalf("redis-cli with no server: %d %s", code, out)
	}
	run(t, nil, "redis", url, "--timeout", "1s").MustExit(t, 1, "connection refused")

	// Started while waiting: noticed soon after redis-cli first says PONG.
	noticedWithOracle(t, "redis-cli", func() { srv.start(t) }, func() bool {
		_, out := srv.cli(t, "-a", "s3cr3t-redis", "ping")
		return out == "PONG"
	}, "redis", url)

	// Accepting: PONG for both; a password file works as the URL's.
	if _, out := srv.cli(t, "-a", "s3cr3t-redis", "ping"); out != "PONG" {
		t.Fatalf("redis-cli: %s", out)
	}
	run(t, nil, "redis", url).MustExit(t, 0, "msg=ready")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cr3t-redis\n"), 0o600)
	run(t, nil, "redis", "redis://"+srv.addr(), "--password-file", pw).MustExit(t, 0)
	run(t, nil, "redis", srv.addr()+"/2", "--password-file", pw).MustExit(t, 0)

	// No password: redis-cli answers NOAUTH and exits 0; waitfor ends at once.
	if code, out := srv.cli(t, "ping"); code != 0 || !strings.HasPrefix(out, "NOAUTH") {
		t.Fatalf("redis-cli without a password: %d %q", code, out)
	}
	r := run(t, nil, "redis", "redis://"+srv.addr(), "--timeout", "60s")
	r.MustExit(t, 1, "the server wants a password (NOAUTH")
	// A wrong password: WRONGPASS named, at once, the password never shown.
	if _, out := srv.cli(t, "-a", "wrong", "ping"); !strings.Contains(out, "WRONGPASS") {
		t.Fatalf("redis-cli with a wrong password: %q", out)
	}
	r = run(t, nil, "redis", "redis://:wrong-pw@"+srv.addr(), "--timeout", "60s", "-v")
	r.MustExit(t, 1, "the server refused the password (WRONGPASS")
	if r.Elapsed > 10*time.Second || strings.Contains(r.Stderr, "wrong-pw") {
		t.Fatalf("a refused password: %s, or shown:\n%s", r.Elapsed, r.Stderr)
	}
	// A database past the server's 16: at once.
	run(t, nil, "redis", url+"/99", "--timeout", "60s").MustExit(t, 1, "database 99: ERR DB index is out of range")

	// Max clients reached: redis-cli says so; waitfor waits, then is ready
	// once a connection is freed.
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(200 * time.Millisecond)
	if _, out := srv.cli(t, "-a", "s3cr3t-redis", "ping"); !strings.Contains(out, "max number of clients reached") {
		t.Fatalf("redis-cli at maxclients: %q", out)
	}
	after(time.Second, func() {
		for _, c := range held {
			c.Close()
		}
	})
	run(t, nil, "redis", url, "--timeout", "30s", "-v").MustExit(t, 0, "msg=ready", "max number of clients reached")
}

// Loading a dataset (key-load-delay slows it down, as a large RDB would):
// redis-cli prints LOADING and exits 0; waitfor waits for the PONG.
func TestRedisLoading(t *testing.T) {
	needRedis(t)
	srv := newRedisServer(t)
	srv.start(t)
	waitPong(t, srv)
	// 20,000 keys, saved, then loaded at 100 µs a key: about 2 s of LOADING.
	var b bytes.Buffer
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "SET key:%d %d\n", i, i)
	}
	cmd := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(srv.port), "--pipe")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --pipe: %v %s", err, out)
	}
	if _, out := srv.cli(t, "save"); out != "OK" {
		t.Fatalf("save: %s", out)
	}
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	// (and answers clients every KiB read, not every 2 MB)
	srv.args = append(srv.args, "--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024")
	srv.start(t)
	sawLoading := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !sawLoading; time.Sleep(10 * time.Millisecond) {
		code, out := srv.cli(t, "ping")
		sawLoading = code == 0 && strings.HasPrefix(out, "LOADING")
	}
	if !sawLoading {
		t.Fatal("redis-cli never saw LOADING: the test proves nothing")
	}
	r := run(t, nil, "redis", srv.addr(), "--timeout", "60s", "-v")
	r.MustExit(t, 0, "msg=ready", "loading the dataset (LOADING)")
	if _, out := srv.cli(t, "dbsize"); out != "20000" {
		t.Fatalf("ready with %s keys loaded", out)
	}
}

func waitPong(t *testing.T, srv *redisServer) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if _, out := srv.cli(t, "ping"); out == "PONG" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
}

// A TLS-only server that requires client certificates (Redis's default
// for tls-auth-clients): redis:// is "not yet" with a hint, rediss:// with
// --ca-file and the client pair is ready — as redis-cli --tls.
func TestRedisTLS(t *testing.T) {
	needRedis(t)
	ca := testenv.NewCA(t, "redis CA")
	dir := t.TempDir()
	sc, sk, _ := ca.Issue(t, "redis", "127.0.0.1")
	os.WriteFile(filepath.Join(dir, "server.crt"), sc, 0o644)
	os.WriteFile(filepath.Join(dir, "server.key"), sk, 0o600)
	caFile := ca.WriteFile(t, dir)
	cert, key := ca.WriteClientCert(t, dir, "app")
	tlsPort := freePort(t)
	startServer(t, "redis-server", "--port", "0", "--tls-port", strconv.Itoa(tlsPort), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"), "--tls-ca-cert-file", caFile)
	var out []byte
	for i := 0; i < 200; i++ {
		out, _ = exec.Command("redis-cli", "--tls", "--cacert", caFile, "--cert", cert, "--key", key, "-h", "127.0.0.1", "-p", strconv.Itoa(tlsPort), "ping").CombinedOutput()
		if strings.TrimSpace(string(out)) == "PONG" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli --tls: %s", out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(tlsPort)
	run(t, nil, "redis", "redis://"+addr, "--timeout", "1s").MustExit(t, 1, "use rediss://")
	run(t, nil, "redis", "rediss://"+addr, "--ca-file", caFile, "--timeout", "1s").MustExit(t, 1)
	run(t, nil, "redis", "rediss://"+addr, "--ca-file", caFile, "--cert-file", cert, "--key-file", key).MustExit(t, 0, "msg=ready")
}

// The RESP parser never panics and never reads past its bounds.
func FuzzRESP(f *testing.F) {
	for _, s := range []string{"+PONG\r\n", "-LOADING Redis is loading\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n",
		"*2\r\n$1\r\na\r\n:1\r\n", "*-1\r\n", "$99999999999\r\n", "*3\r\n*1\r\n", "+no crlf\n", "%1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := readRESP(bufio.NewReader(bytes.NewReader(b)), 0)
		if err == nil {
			_ = v.String()
			_ = v.code()
		}
	})
}

func TestRESPCommand(t *testing.T) {
	if got := string(respCommand("AUTH", "user", "p w")); got != "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$3\r\np w\r\n" {
		t.Fatalf("%q", got)
	}
	v, err := readRESP(bufio.NewReader(strings.NewReader("*2\r\n$3\r\nfoo\r\n*1\r\n:-7\r\n")), 0)
	if err != nil || len(v.elems) != 2 || v.elems[0].s != "foo" || v.elems[1].elems[0].n != -7 {
		t.Fatalf("%+v %v", v, err)
	}
}

// The forms redis-cli takes that waitfor did not: an ACL user with no
// password (redis://user:@host: AUTH user ""), a server on a unix socket,
// and a SELECT the server refuses for good (cluster mode) ends the wait at
// once.
func TestRedisNopassSocketCluster(t *testing.T) {
	needRedis(t)
	sock := filepath.Join(t.TempDir(), "redis.sock")
	srv := newRedisServer(t, "--unixsocket", sock, "--unixsocketperm", "700")
	srv.start(t)
	waitPong(t, srv)
	if _, out := srv.cli(t, "ACL", "SETUSER", "app", "on", "nopass", "+@all", "~*"); out != "OK" {
		t.Fatalf("ACL SETUSER: %s", out)
	}
	if _, out := srv.cli(t, "ACL", "SETUSER", "default", "on", ">s3cr3t"); out != "OK" {
		t.Fatalf("ACL SETUSER default: %s", out)
	}
	// The oracle: redis-cli -u redis://app:@… gets PONG (it sends AUTH app "").
	if out, err := exec.Command("redis-cli", "--no-auth-warning", "-u", "redis://app:@"+srv.addr(), "ping").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli as the nopass user: %v %s", err, out)
	}
	run(t, nil, "redis", "redis://app:@"+srv.addr(), "--timeout", "5s").MustExit(t, 0, "msg=ready")
	// The socket, as redis-cli -s reads it.
	if out, err := exec.Command("redis-cli", "--no-auth-warning", "-s", sock, "--user", "app", "--pass", "", "ping").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli -s: %v %s", err, out)
	}
	run(t, nil, "redis", "redis+socket://app:@"+sock+"?db=2", "--timeout", "5s").MustExit(t, 0, "msg=ready")
	run(t, nil, "redis", "unix://app:@"+sock, "--timeout", "5s").MustExit(t, 0, "msg=ready")
	run(t, nil, "redis", "redis+socket://relative/sock").MustExit(t, 2, "an absolute path to the socket")

	cluster := newRedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	cluster.start(t)
	waitPong(t, cluster)
	if _, out := cluster.cli(t, "-n", "1", "ping"); !strings.Contains(out, "SELECT is not allowed in cluster mode") {
		t.Fatalf("redis-cli -n 1 in cluster mode: %q", out)
	}
	r := run(t, nil, "redis", "redis://"+cluster.addr()+"/1", "--timeout", "60s")
	r.MustExit(t, 1, "database 1: ERR SELECT is not allowed in cluster mode")
	if r.Elapsed > 10*time.Second {
		t.Fatalf("a refused SELECT was retried for %s", r.Elapsed)
	}
}
