package waitfor

import (
	"context"
	"errors"
	"github.com/initbox/initbox/internal/testenv"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("postgres", func(s silent) string { return "postgres://u:p@" + s.addr + "/db" })

// pgStateOf is initbox's verdict on dsn for one attempt, in pg_isready's terms.
func pgStateOf(t *testing.T, dsn string) (pgState, string) {
	t.Helper()
	o := &options{env: &cli.Env{Secrets: &redact.Set{}, Log: discardLogger()}}
	p, err := (&postgresOptions{}).probe(o, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pp := p.(*postgresProbe)
	_, err = connectOnce(ctx, pp)
	if err == nil {
		return pgAccepting, ""
	}
	return classifyPG(err)
}

// pgIsReady runs Debian's pg_isready and maps its documented exit status.
func pgIsReady(t *testing.T, srv *pgtest.Server, port int, user, db string) pgState {
	t.Helper()
	cmd := exec.Command(srv.Tool("pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", user, "-d", db, "-t", "5")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return pgAccepting
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return pgRejecting
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		return pgNoResponse
	}
	t.Fatalf("pg_isready: %v", err)
	return 0
}

// The differential test: for every server state, initbox's default
// readiness agrees with pg_isready.
func TestPostgresAgreesWithPgIsready(t *testing.T) {
	primary := pgtest.Start(t)
	standby := pgtest.Standby(t, primary)
	closed, _ := strconv.Atoi(strings.Split(testenv.ClosedAddr(t), ":")[1])
	for _, tc := range []struct {
		name     string
		port     int
		user, pw string
		db       string
		want     pgState
		reason   string
	}{
		{"accepting", primary.Port, "postgres", pgtest.Password, "postgres", pgAccepting, ""},
		{"wrong password", primary.Port, "postgres", "wrong", "postgres", pgAccepting, "28P01"},
		{"unknown user", primary.Port, "nobody_here", "x", "postgres", pgAccepting, "28P01"},
		{"missing database", primary.Port, "postgres", pgtest.Password, "nodb", pgAccepting, "3D000"},
		{"standby with hot_standby=off", standby.Port, "postgres", pgtest.Password, "postgres", pgRejecting, "57P03"},
		{"port closed", closed, "postgres", pgtest.Password, "postgres", pgNoResponse, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := "host=127.0.0.1 port=" + strconv.Itoa(tc.port) + " user=" + tc.user + " password=" + tc.pw + " dbname=" + tc.db + " sslmode=disable"
			got, why := pgStateOf(t, dsn)
			ref := pgIsReady(t, primary, tc.port, tc.user, tc.db)
			if got != ref || got != tc.want {
				t.Fatalf("initbox says %s (%s), pg_isready says %s, want %s", got, why, ref, tc.want)
			}
			if !strings.Contains(why, tc.reason) {
				t.Fatalf("reason %q lacks %q", why, tc.reason)
			}
		})
	}
}

func TestPostgresWaitsForStartAndWarnsOnAuthFailure(t *testing.T) {
	srv := pgtest.Start(t)
	// An authentication failure means the server is up: ready, with a warning
	// that names the SQLSTATE but not the password.
	r := run(t, nil, "postgres", srv.URL("postgres", "Wr0ngPassword", "postgres"), "--timeout", "10s")
	r.MustExit(t, 0, "level=WARN", "28P01")
	if strings.Contains(r.Stderr, "Wr0ngPassword") {
		t.Fatalf("the password leaked:\n%s", r.Stderr)
	}
	// A standby that never accepts: not yet, reported by SQLSTATE.
	standby := pgtest.Standby(t, srv)
	r = run(t, nil, "pg", standby.URL("postgres", pgtest.Password, "postgres"), "--timeout", "800ms")
	r.MustExit(t, 1, "57P03")
}

func TestPostgresServerStartsWhileWaiting(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Stop()
	dsn := srv.URL("postgres", pgtest.Password, "postgres")
	done := make(chan testenv.Result, 1)
	go func() { done <- run(t, nil, "postgres", dsn, "--timeout", "60s") }()
	time.Sleep(500 * time.Millisecond)
	srv.Restart(t)
	r := <-done
	r.MustExit(t, 0, "msg=ready")
}

func TestPostgresQueryBecomesTrue(t *testing.T) {
	srv := pgtest.Start(t)
	srv.PSQL(t, "CREATE TABLE schema_migrations (version int)")
	dsn := srv.URL("postgres", pgtest.Password, "postgres")
	after(700*time.Millisecond, func() { srv.PSQL(t, "INSERT INTO schema_migrations VALUES (42)") })
	r := run(t, nil, "postgres", dsn, "--query", "SELECT 1 FROM schema_migrations WHERE version >= 42", "--timeout", "20s", "-v")
	r.MustExit(t, 0, "the query returned no rows")
	if r.Elapsed < 700*time.Millisecond {
		t.Fatalf("ready after %s, before the row existed", r.Elapsed)
	}
	// With --query, a failed login and a missing database are "not yet",
	// reported by SQLSTATE.
	run(t, nil, "postgres", srv.URL("postgres", "bad-pw", "postgres"), "--query", "SELECT 1", "--timeout", "700ms").MustExit(t, 1, "28P01")
	run(t, nil, "postgres", srv.URL("postgres", pgtest.Password, "nodb"), "--query", "SELECT 1", "--timeout", "700ms").MustExit(t, 1, "3D000")
	// A table that a migration has not created yet is "not yet" too.
	run(t, nil, "postgres", dsn, "--query", "SELECT 1 FROM later", "--timeout", "700ms").MustExit(t, 1, "42P01")
}

func TestPostgresKeyValueDSNAndEnvironment(t *testing.T) {
	srv := pgtest.Start(t)
	env := map[string]string{}
	// PG* variables complete a DSN, as for libpq.
	t.Setenv("PGPASSWORD", pgtest.Password)
	t.Setenv("PGPORT", strconv.Itoa(srv.Port))
	r := run(t, env, "postgres", "host=127.0.0.1 user=postgres dbname=postgres sslmode=disable", "--query", "SELECT 1", "--timeout", "10s")
	r.MustExit(t, 0)
	if strings.Contains(r.Stderr, pgtest.Password) {
		t.Fatalf("the password leaked:\n%s", r.Stderr)
	}
}
