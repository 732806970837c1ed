package register

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// crowdResult is what a crowd of registers did.
type crowdResult struct {
	failed    int           // registers that did not exit 0
	tooMany   int           // registers told 53300 (too many clients) at least once
	peakConns int           // the most client connections the server held at once
	wall      time.Duration // from the first start to the last exit
}

// crowd starts n registers at once against one server, each as a pod
// would run it, and watches the server's connection count meanwhile.
// key(i) is pod i's --key value.
func crowd(tb testing.TB, srv *pgtest.Server, dsn, table string, n int, key func(int) string) crowdResult {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The watcher holds one superuser connection from before the crowd.
	watch, err := pgconn.Connect(ctx, srv.URL("postgres", pgtest.Password, "postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer watch.Close(context.Background())
	var peak atomic.Int64
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for ctx.Err() == nil {
			res := watch.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = 'app'", nil, nil, nil, nil).Read()
			if res.Err == nil && len(res.Rows) == 1 {
				if v, _ := strconv.ParseInt(string(res.Rows[0][0]), 10, 64); v > peak.Load() {
					peak.Store(v)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var failed, tooMany atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := testenv.Run(quiet{tb}, context.Background(), Applet, nil, "postgres", dsn, "--table", table, "--create-table",
				"--key", "name="+key(i), "--set", fmt.Sprintf("ip=10.0.%d.%d", i/250, i%250), "--touch", "seen",
				"--timeout", "120s", "--termination-log", "")
			if strings.Contains(r.Stderr, "53300") {
				tooMany.Add(1)
			}
			if r.Code != 0 {
				failed.Add(1)
				tb.Logf("register %d: exit %d\n%s", i, r.Code, r.Stderr)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cancel()
	<-watching
	return crowdResult{failed: int(failed.Load()), tooMany: int(tooMany.Load()), peakConns: int(peak.Load()), wall: wall}
}

// quiet keeps hundreds of runs out of the test log unless they fail.
type quiet struct{ testing.TB }

func (quiet) Logf(string, ...any) {}
func (quiet) Helper()             {}

// crowdServer is a server with fewer connections than the crowd (enough
// that many creators meet at once: at 40 the 53300s spread them out and
// the CREATE TABLE race hides), and a
// role "app" that is no superuser (so max_connections binds it).
func crowdServer(tb testing.TB) (*pgtest.Server, string) {
	srv := pgtest.Start(tb, "max_connections = 150")
	srv.PSQL(tb, `CREATE ROLE app LOGIN PASSWORD 'app-pw'; GRANT CREATE ON SCHEMA public TO app`)
	return srv, "postgres://app:app-pw@" + srv.Addr() + "/postgres?sslmode=disable"
}

func count(tb testing.TB, srv *pgtest.Server, sql string) int {
	n, err := strconv.Atoi(srv.PSQL(tb, sql))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// 400 pods registering at once, into a table none of them finds, on a
// server that takes 150 connections: every row arrives once, and 200
// upserts of one key leave one row.
func TestRegisterCrowd(t *testing.T) {
	srv, dsn := crowdServer(t)
	r := crowd(t, srv, dsn, "pods", 400, func(i int) string { return fmt.Sprintf("pod-%d", i) })
	if r.failed > 0 {
		t.Fatalf("%d of 400 registers failed", r.failed)
	}
	if rows, names := count(t, srv, "SELECT count(*) FROM pods"), count(t, srv, "SELECT count(DISTINCT name) FROM pods"); rows != 400 || names != 400 {
		t.Fatalf("%d rows, %d names: want 400 of each (none lost, none twice)", rows, names)
	}
	if r.tooMany == 0 {
		t.Fatalf("no register met 53300 (too many clients): the crowd did not test the retry (peak %d connections)", r.peakConns)
	}
	t.Logf("%d registers met 53300 and retried; peak %d connections", r.tooMany, r.peakConns)
	r = crowd(t, srv, dsn, "one", 200, func(int) string { return "the-same-pod" })
	if r.failed > 0 {
		t.Fatalf("%d of 200 upserts failed", r.failed)
	}
	if n := count(t, srv, "SELECT count(*) FROM one"); n != 1 {
		t.Fatalf("%d rows for one key, want 1", n)
	}
}

// BenchmarkRegisterCrowd: the wall time of 400 concurrent registers, and
// the server's peak connections (make bench: BENCHMARKS.md).
func BenchmarkRegisterCrowd(b *testing.B) {
	srv, dsn := crowdServer(b)
	for i := 0; i < b.N; i++ {
		table := fmt.Sprintf("pods%d", i)
		r := crowd(b, srv, dsn, table, 400, func(j int) string { return fmt.Sprintf("pod-%d", j) })
		if r.failed > 0 {
			b.Fatalf("%d failed", r.failed)
		}
		b.ReportMetric(float64(r.peakConns), "peak-conns")
		b.ReportMetric(r.wall.Seconds(), "wall-s")
	}
}
