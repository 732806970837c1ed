// Package pgtest starts a real PostgreSQL from Debian's packages for a test:
// initdb in a temp dir, pg_ctl on a free loopback port, password auth
// (scram-sha-256) over TCP. As root, the server runs as the "postgres" (or
// "nobody") user, since PostgreSQL refuses to run as root.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// Password is the password of the superuser "postgres" of every test server.
const Password = "pg-test-S3cret"

// Server is one running PostgreSQL.
type Server struct {
	Port    int
	Dir     string // owns data/, sock/, log
	Data    string
	binDir  string
	cred    *syscall.Credential
	t       testing.TB
	stopped bool
	host    string   // listen_addresses and Addr's host
	enter   []string // a command prefix that enters another network namespace
}

// BinDir finds the newest /usr/lib/postgresql/*/bin holding initdb.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
	}
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(strings.Split(dirs[i], "/")[4])
		vj, _ := strconv.Atoi(strings.Split(dirs[j], "/")[4])
		return vi < vj
	})
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

// Start initialises and starts a primary server; it stops when the test
// ends. extra lines are appended to postgresql.conf.
func Start(t testing.TB, extra ...string) *Server {
	testenv.RealServer(t, "PostgreSQL")
	t.Helper()
	return start(prepare(t), extra...)
}

// StartIn starts a primary on host:port inside another network namespace:
// pg_ctl runs as enter + "-S UID -G GID --" + pg_ctl (nsenter's options
// for the server's user, which cannot enter namespaces itself).
func StartIn(t testing.TB, enter []string, host string, port int, extra ...string) *Server {
	testenv.RealServer(t, "PostgreSQL")
	t.Helper()
	s := prepare(t)
	s.enter, s.host, s.Port = enter, host, port
	return start(s, extra...)
}

func start(s *Server, extra ...string) *Server {
	t := s.t
	t.Helper()
	run(t, s.cred, filepath.Join(s.binDir, "initdb"), "-D", s.Data, "-U", "postgres", "--pwfile", filepath.Join(s.Dir, "pw"),
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
	s.configure(t, extra...)
	if s.enter != nil { // another namespace: its clients (pods) are not on loopback
		f, err := os.OpenFile(filepath.Join(s.Data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, "host all all 0.0.0.0/0 scram-sha-256")
		f.Close()
	}
	s.start(t)
	return s
}

// StartTLS starts a primary that also accepts TLS, with the server
// certificate and key given (PEM), placed in the server's directory.
func StartTLS(t testing.TB, cert, key []byte, extra ...string) *Server {
	testenv.RealServer(t, "PostgreSQL")
	t.Helper()
	s := prepare(t)
	run(t, s.cred, filepath.Join(s.binDir, "initdb"), "-D", s.Data, "-U", "postgres", "--pwfile", filepath.Join(s.Dir, "pw"),
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
	for name, b := range map[string][]byte{"server.crt": cert, "server.key": key} {
		p := filepath.Join(s.Data, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if s.cred != nil {
			os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
		}
	}
	s.configure(t, append([]string{"ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"}, extra...)...)
	s.start(t)
	return s
}

// Socket is the directory of the server's Unix socket.
func (s *Server) Socket() string { return filepath.Join(s.Dir, "sock") }

// Standby makes a streaming standby of primary with hot_standby=off: it
// answers every connection with 57P03 "the database system is not
// accepting connections", forever — pg_isready's "rejecting".
func Standby(t testing.TB, primary *Server) *Server {
	t.Helper()
	s := prepare(t)
	run(t, s.cred, filepath.Join(s.binDir, "pg_basebackup"), "-D", s.Data, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port),
		"-U", "postgres", "-R", "-X", "stream", "--no-sync")
	s.configure(t, "hot_standby = off")
	s.start(t)
	return s
}

func prepare(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		testenv.Skip(t, err.Error())
	}
	dir, err := os.MkdirTemp("", "initbox-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, Data: filepath.Join(dir, "data"), binDir: bin, t: t, Port: freePort(t), host: "127.0.0.1"}
	t.Cleanup(func() { s.Stop(); os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".pgpass"), []byte("*:*:*:postgres:"+Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatalf("running PostgreSQL as root is refused and no postgres/nobody user exists: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	}
	return s
}

func (s *Server) configure(t testing.TB, extra ...string) {
	conf := append([]string{
		fmt.Sprintf("port = %d", s.Port),
		fmt.Sprintf("listen_addresses = '%s'", s.host),
		fmt.Sprintf("unix_socket_directories = '%s'", filepath.Join(s.Dir, "sock")),
		"fsync = off", "full_page_writes = off", "synchronous_commit = off",
		"max_connections = 20", "shared_buffers = 16MB", "max_wal_senders = 4",
	}, extra...)
	f, err := os.OpenFile(filepath.Join(s.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, strings.Join(conf, "\n"))
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	args := []string{"-D", s.Data, "-l", filepath.Join(s.Dir, "log"), "-w", "-t", "60", "start"}
	if s.enter != nil {
		prog, args := s.entered(append([]string{filepath.Join(s.binDir, "pg_ctl")}, args...))
		run(t, nil, prog, args...)
		return
	}
	run(t, s.cred, filepath.Join(s.binDir, "pg_ctl"), args...)
}

// entered is argv run through s.enter as the server's user.
func (s *Server) entered(argv []string) (string, []string) {
	a := append(append([]string(nil), s.enter...), "-S", strconv.Itoa(int(s.cred.Uid)), "-G", strconv.Itoa(int(s.cred.Gid)), "--")
	a = append(a, argv...)
	return a[0], a[1:]
}

// Restart starts a stopped server again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
	s.stopped = false
}

// Stop stops the server at once (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	cmd := exec.Command(filepath.Join(s.binDir, "pg_ctl"), "-D", s.Data, "-m", "immediate", "-w", "stop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if s.enter != nil {
		prog, args := s.entered(cmd.Args)
		cmd = exec.Command(prog, args...)
	}
	_ = cmd.Run()
}

// Addr is "HOST:PORT" (127.0.0.1 unless StartIn said otherwise).
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.Port)) }

// URL is a postgres:// URL for user and password (empty: none) and db.
func (s *Server) URL(user, password, db string) string {
	if password == "" {
		return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", user, s.Addr(), db)
	}
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, s.Addr(), db)
}

// PSQL runs SQL as the superuser through the unix socket and returns its output.
func (s *Server) PSQL(t testing.TB, sql string) string {
	t.Helper()
	return s.PSQLIn(t, "postgres", sql)
}

// PSQLIn is PSQL in database db.
func (s *Server) PSQLIn(t testing.TB, db, sql string) string {
	t.Helper()
	return run(t, s.cred, filepath.Join(s.binDir, "psql"), "-h", filepath.Join(s.Dir, "sock"), "-p", strconv.Itoa(s.Port),
		"-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql)
}

// Tool returns the path of one of the server's client programs (pg_isready).
func (s *Server) Tool(name string) string { return filepath.Join(s.binDir, name) }

func run(t testing.TB, cred *syscall.Credential, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGPASSWORD="+Password, "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
