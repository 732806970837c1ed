package waitfor

import (
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
var _ = silentTarget("mysql", func(s silent) string { return "mysql://u:p@" + s.addr + "/db" })

// mariaDB is a MariaDB server of Debian's in a temporary directory on a
// free loopback port, with users made by its --init-file.
type mariaDB struct {
	dir, data string
	port      int
	extra     []string
	cmd       *exec.Cmd
}

const mariaInit = `CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
GRANT ALL ON *.* TO 'app'@'%';
CREATE USER 'limited'@'%' IDENTIFIED BY 'lim-pw';
GRANT SELECT ON appdb.* TO 'limited'@'%';
CREATE USER 'secure'@'%' IDENTIFIED BY 'sec-pw' REQUIRE SSL;
GRANT SELECT ON appdb.* TO 'secure'@'%';
CREATE DATABASE appdb;
CREATE TABLE appdb.schema_version (v INT);
`

func newMariaDB(t *testing.T, extra ...string) *mariaDB {
	testenv.RealServer(t, "MariaDB")
	t.Helper()
	for _, p := range []string{"mariadb-install-db", "/usr/sbin/mariadbd", "mysqladmin"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "Debian's mariadb-server and mariadb-client are needed: "+err.Error())
		}
	}
	m := &mariaDB{dir: t.TempDir(), port: freePort(t), extra: extra}
	m.data = filepath.Join(m.dir, "data")
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+m.data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(m.dir, "init.sql"), []byte(mariaInit), 0o644)
	return m
}

func (m *mariaDB) start(t *testing.T, initFile string, extra ...string) {
	t.Helper()
	args := append([]string{"--no-defaults", "--datadir=" + m.data, "--socket=" + filepath.Join(m.dir, "sock"),
		"--port=" + strconv.Itoa(m.port), "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(m.dir, "pid"), "--innodb-buffer-pool-size=16M", "--skip-log-bin",
		"--init-file=" + initFile}, append(m.extra, extra...)...)
	m.cmd = startServer(t, "/usr/sbin/mariadbd", args...)
}

func (m *mariaDB) addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// ping is the oracle: mysqladmin ping's exit status and words.
func (m *mariaDB) ping(t *testing.T, user, pw string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("mysqladmin", append([]string{"--no-defaults", "--connect-timeout=1", "-h", "127.0.0.1", "-P", strconv.Itoa(m.port), "-u", user, "-p" + pw}, append(args, "ping")...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}

// mysqladmin ping and waitfor mysql, state by state, on a real MariaDB:
// not started, starting (its --init-file still running: the port listens
// but no greeting comes), accepting, a wrong password, an unknown
// database, too many connections — all "up" for mysqladmin ping but the
// first two; with --query, waitfor needs a login and a row.
func TestMySQLAgainstMysqladmin(t *testing.T) {
	m := newMariaDB(t)
	url := "mysql://app:app-pw@" + m.addr() + "/appdb"
	// Not started.
	if code, _ := m.ping(t, "app", "app-pw"); code == 0 {
		t.Fatal("mysqladmin ping with no server: alive")
	}
	run(t, nil, "mysql", url, "--timeout", "1s").MustExit(t, 1, "connection refused")

	// Starting: an init file that takes 3 s. Both say "not yet" until it
	// is done; waitfor notices soon after mysqladmin does.
	slow := filepath.Join(m.dir, "slow.sql")
	os.WriteFile(slow, []byte(mariaInit+"SELECT SLEEP(3);\n"), 0o644)
	sawStarting := false
	noticedWithOracle(t, "mysqladmin ping", func() { m.start(t, slow) }, func() bool {
		code, out := m.ping(t, "app", "app-pw")
		sawStarting = sawStarting || strings.Contains(out, "reading initial communication packet")
		return code == 0
	}, "mysql", url)
	if !sawStarting {
		t.Fatal("mysqladmin never saw the server starting: the test proves less than it says")
	}

	// Accepting; the go-sql-driver DSN form, MYSQL_PWD and a password file.
	run(t, nil, "mysql", url, "--query", "SELECT 1").MustExit(t, 0, "msg=ready")
	run(t, nil, "mariadb", "app:app-pw@tcp("+m.addr()+")/appdb").MustExit(t, 0, "msg=ready")
	run(t, map[string]string{"MYSQL_PWD": "app-pw"}, "mysql", "mysql://app@"+m.addr(), "--query", "SELECT 1").MustExit(t, 0)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("app-pw\n"), 0o600)
	run(t, nil, "mysql", "mysql://app@"+m.addr(), "--password-file", pw, "--query", "SELECT 1").MustExit(t, 0)

	// A wrong password: mysqladmin ping says alive (exit 0); so does waitfor,
	// warning with the code — but with --query it is "not yet".
	if code, out := m.ping(t, "app", "wrong"); code != 0 || !strings.Contains(out, "Access denied") {
		t.Fatalf("mysqladmin with a wrong password: %d %s", code, out)
	}
	r := run(t, nil, "mysql", "mysql://app:wrong-pw@"+m.addr()+"/appdb", "-v")
	r.MustExit(t, 0, "msg=ready", "code=1045")
	if strings.Contains(r.Stderr, "wrong-pw") {
		t.Fatal("the password was logged")
	}
	run(t, nil, "mysql", "mysql://app:wrong-pw@"+m.addr()+"/appdb", "--query", "SELECT 1", "--timeout", "1s").MustExit(t, 1, "1045 Access denied")
	// An unknown database: up (1049), not ready for a query.
	run(t, nil, "mysql", "mysql://app:app-pw@"+m.addr()+"/nosuchdb").MustExit(t, 0, "code=1049")
	run(t, nil, "mysql", "mysql://app:app-pw@"+m.addr()+"/nosuchdb", "--query", "SELECT 1", "--timeout", "1s").MustExit(t, 1, "1049 Unknown database")
	// A query that returns no row yet: "not yet" until a row is there.
	after(time.Second, func() {
		exec.Command("mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(m.port), "-u", "app", "-papp-pw", "-e", "INSERT INTO appdb.schema_version VALUES (42)").Run()
	})
	run(t, nil, "mysql", url, "--query", "SELECT v FROM schema_version WHERE v >= 42", "--timeout", "30s", "-v").MustExit(t, 0, "msg=ready", "the query returned no row")
}

// Too many connections: mysqladmin ping counts it as alive, and waitfor as
// up (warning 1040); with --query it waits for a free connection.
func TestMySQLTooManyConnections(t *testing.T) {
	m := newMariaDB(t)
	m.start(t, filepath.Join(m.dir, "init.sql"), "--max-connections=10") // MariaDB's least
	waitMaria(t, m)
	var held []*exec.Cmd
	for i := 0; i < 11; i++ { // max_connections, and the one more MariaDB keeps for a SUPER user
		c := exec.Command("mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(m.port), "-u", "limited", "-plim-pw", "-e", "SELECT SLEEP(6)")
		c.Start()
		time.Sleep(50 * time.Millisecond)
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Process.Kill()
			c.Wait()
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if code, out := m.ping(t, "limited", "lim-pw"); code != 0 || !strings.Contains(out, "Too many connections") {
		t.Fatalf("mysqladmin at max_connections: %d %s", code, out)
	}
	run(t, nil, "mysql", "mysql://limited:lim-pw@"+m.addr()+"/appdb").MustExit(t, 0, "code=1040")
	run(t, nil, "mysql", "mysql://limited:lim-pw@"+m.addr()+"/appdb", "--query", "SELECT 1", "--timeout", "30s", "-v").
		MustExit(t, 0, "msg=ready", "1040")
}

// A user that must use TLS: without it the login is refused (up, but not
// ready for a query); ?tls=true with --ca-file logs in, as mysqladmin --ssl.
func TestMySQLTLSRequired(t *testing.T) {
	ca := testenv.NewCA(t, "mariadb CA")
	m := newMariaDB(t)
	sc, sk, _ := ca.Issue(t, "db", "127.0.0.1")
	os.WriteFile(filepath.Join(m.dir, "server.crt"), sc, 0o644)
	os.WriteFile(filepath.Join(m.dir, "server.key"), sk, 0o600)
	caFile := ca.WriteFile(t, m.dir)
	m.start(t, filepath.Join(m.dir, "init.sql"), "--ssl-cert="+filepath.Join(m.dir, "server.crt"), "--ssl-key="+filepath.Join(m.dir, "server.key"), "--ssl-ca="+caFile)
	waitMaria(t, m)
	if code, out := m.ping(t, "secure", "sec-pw", "--ssl-ca="+caFile); code != 0 || out != "mysqld is alive" {
		t.Fatalf("mysqladmin --ssl: %d %s", code, out)
	}
	plain := "mysql://secure:sec-pw@" + m.addr() + "/appdb"
	// The mysql client prefers TLS when the server offers it, and so does
	// waitfor: the REQUIRE SSL user logs in without --tls; ?tls=false is
	// plaintext, refused.
	if out, err := exec.Command("mysql", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(m.port), "-u", "secure", "-psec-pw", "-N", "-e", "SELECT 1").CombinedOutput(); err != nil {
		t.Fatalf("mysql -e as the REQUIRE SSL user: %v %s", err, out)
	}
	run(t, nil, "mysql", plain, "--query", "SELECT 1", "--timeout", "5s").MustExit(t, 0, "msg=ready")
	run(t, nil, "mysql", plain+"?tls=false").MustExit(t, 0, "code=1045")
	run(t, nil, "mysql", plain+"?tls=false", "--query", "SELECT 1", "--timeout", "1s").MustExit(t, 1, "1045")
	// Several statements, as mysql -e runs them: ready when one returns a row.
	for _, q := range []string{"SELECT 1; SELECT 2", "USE appdb; SELECT 1", "DO 1; SELECT 1"} {
		if out, err := exec.Command("mysql", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(m.port), "-u", "secure", "-psec-pw", "-N", "-e", q).CombinedOutput(); err != nil {
			t.Fatalf("mysql -e %q: %v %s", q, err, out)
		}
		run(t, nil, "mysql", plain, "--query", q, "--timeout", "5s").MustExit(t, 0, "msg=ready")
	}
	run(t, nil, "mysql", plain, "--query", "USE appdb; DO 1", "--timeout", "1s").MustExit(t, 1, "the query returned no row")
	run(t, nil, "mysql", plain+"?tls=true", "--ca-file", caFile, "--query", "SELECT 1").MustExit(t, 0, "msg=ready")
	run(t, nil, "mysql", plain, "--tls", "--ca-file", caFile, "--query", "SELECT 1").MustExit(t, 0, "msg=ready")
	other := testenv.NewCA(t, "other")
	run(t, nil, "mysql", plain, "--tls", "--ca-file", other.WriteFile(t, t.TempDir()), "--query", "SELECT 1", "--timeout", "1s").MustExit(t, 1, "certificate")
}

func waitMaria(t *testing.T, m *mariaDB) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if c, err := net.Dial("tcp", m.addr()); err == nil {
			c.Close()
			if code, _ := m.ping(t, "app", "app-pw"); code == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("mariadbd did not start")
}

func TestMySQLBadUsage(t *testing.T) {
	run(t, nil, "mysql", "mysql://").MustExit(t, 2, "the URL has no host")
	run(t, nil, "mysql", "app@tcp(127.0.0.1:3306)/db?nosuchparam=1&timeout=x").MustExit(t, 2)
	run(t, nil, "mysql", "127.0.0.1", "--password-file", "/nonexistent").MustExit(t, 2, "--password-file")
}
