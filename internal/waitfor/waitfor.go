// Package waitfor is the waitfor applet: idempotent readiness waits on DNS
// names, TCP ports, PostgreSQL servers, HTTP endpoints and files, many at
// once.
//
// Every kind is a probe behind one small interface (this file), each in its
// own file (dns.go, tcp.go, postgres.go, http.go, file.go) with one entry in
// kinds.
package waitfor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/kube"
	"github.com/initbox/initbox/internal/resolve"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
)

// probe checks one target once. Check returns nil when the target is ready
// and otherwise an error saying why not, in a few words.
type probe interface {
	Check(ctx context.Context) error
}

// kind is one kind of target: its names and how to build its probe.
type kind struct {
	name    string
	aliases []string
	// schemes are the URL schemes ("tcp" for tcp://…) and prefixes
	// ("dns" for dns:NAME) that select this kind in URL-style targets.
	schemes []string
	// keepScheme: the target keeps its scheme (a URL the probe needs whole).
	keepScheme bool
	// pairs: in the KIND TARGET... form, "TYPE NAME" is one target
	// (waitfor k8s job migrate), as is TYPE/NAME.
	pairs bool
	new   func(o *options, target string) (probe, error)
}

// kinds is the table of probe kinds; adding a kind adds one entry.
var kinds = []*kind{&dnsKind, &tcpKind, &postgresKind, &mysqlKind, &redisKind, &grpcKind, &httpKind, &fileKind, &k8sKind}

func kindByName(name string) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
		for _, a := range k.aliases {
			if a == name {
				return k
			}
		}
	}
	return nil
}

// Applet is waitfor's entry in the applet table.
var Applet = cli.Applet{
	Name:    "waitfor",
	Summary: "wait until DNS names, TCP ports, PostgreSQL, MySQL, Redis, gRPC, HTTP endpoints, files or Kubernetes objects are ready",
	Synopsis: `[flags] KIND TARGET... [-- CMD ARGS...]   KIND: dns, tcp, postgres (pg), mysql (mariadb), redis, grpc, http, file, k8s
[flags] URL... [-- CMD ARGS...]       dns:NAME tcp://HOST:PORT postgres://… mysql://… redis://… grpc://HOST:PORT http(s)://… file:/PATH k8s:TYPE/NAME`,
	Help: `Waits until every target is ready (with --any: one of them), probing them in
parallel: about 5 times a second for the first 30 s, then backing off to about
once a second. It only asks; it changes nothing, so it is safe to re-run.

Kinds of target:
  dns NAME        NAME resolves as the pod's own resolver would (resolv.conf
                  search list and ndots, hosts file first, no cache)
  tcp HOST:PORT   a TCP connection opens (with --tls: and a verified handshake;
                  with --send/--expect: the reply contains --expect, as
                  --send 'ruok' --expect imok, --expect '220 ' for SMTP)
  postgres DSN    the server accepts connections, as pg_isready; with --query,
                  an authenticated query returns at least one row. DSN is a
                  URL or key=value string; PG* variables, PGPASSFILE, PGSERVICE
                  apply. An authentication failure counts as ready (the server
                  is up) and is logged as a warning.
  mysql DSN       (also mariadb) the server greets, as mysqladmin ping decides:
                  a refused login (1045), an unknown database (1049), too
                  many connections (1040) mean it is up (a warning names the
                  code). With --query, a login and a row. DSN: mysql://user:
                  pw@host:3306/db or user:pw@tcp(host:3306)/db; MYSQL_PWD
                  and --password-file apply; ?tls=true or --tls for TLS.
  redis URL       PING answers PONG (after AUTH and SELECT): redis://[user:
                  pw@]host[:6379][/db], rediss:// for TLS. LOADING,
                  MASTERDOWN, BUSY are "not yet"; a refused password ends
                  the wait (WRONGPASS).
  grpc HOST:PORT  grpc.health.v1.Health/Check answers SERVING (--service NAME
                  for one service); NOT_SERVING, SERVICE_UNKNOWN, NOT_FOUND
                  are "not yet". Plaintext (h2c) unless --tls.
  http URL        the final status (after redirects) is in --status, and the
                  body contains --body-contains
  file PATH       PATH exists and, if a regular file, is not empty (a file
                  another container writes: register's --ready-file)
  k8s TYPE NAME   a Kubernetes object, through the API with the pod's service
                  account, watched: endpoints SERVICE (--min-ready ready
                  endpoints), job NAME (Complete; Failed ends the wait), pod
                  NAME or pod -l SELECTOR (Ready), or any RESOURCE/NAME with
                  --for condition=NAME[=VALUE], jsonpath='{.path}'=VALUE, create.
                  A 403 ends the wait, naming the Role rule to add.

A target that can never be ready (a failed Job, a 403) ends the whole wait.

-- CMD ARGS... runs CMD in place of waitfor once every target is ready (exec:
the same PID, so CMD gets the container's signals and its exit status is the
container's), with argv and environment unchanged — the wait as the first
step of an app image's entrypoint (see install). After a failed or timed-out
wait CMD never runs. CMD is looked up in PATH before the wait starts; a
missing CMD is exit 127.

MISSING OBJECTS
A k8s object that is not there is waited for (--if-missing wait). A Job with
ttlSecondsAfterFinished is deleted once it finishes, so a pod that starts (or
restarts) after that would wait forever: --if-missing ready counts a missing
object as ready — use it only when the object is created before the pod can
start (a Helm pre-install hook, a Job applied first). --if-missing fail ends
the wait at once (exit 1) when it is missing.

EXAMPLES
  waitfor dns myservice --timeout 5m
  waitfor tcp db:5432 cache:6379
  waitfor dns:myservice tcp://db:5432 postgres://app@db/app https://api/healthz
  waitfor dns mydb-headless --min-records 3
  waitfor postgres 'host=db user=app dbname=app' --query 'SELECT 1 FROM schema_migrations WHERE version >= 42'
  waitfor http https://auth/healthz --ca-file /etc/ssl/ca.crt --header 'Authorization: @/var/run/secrets/token'
  waitfor file /run/registered --timeout 1s
  waitfor k8s:job/migrate k8s:endpoints/db tcp://cache:6379 --timeout 10m
  waitfor k8s deployments.apps/api --for condition=Available -n backend
  waitfor mysql 'mysql://app@db:3306/app' --password-file /secrets/password
  waitfor redis redis://cache:6379 grpc api:9090 --timeout 5m
  waitfor tcp zk:2181 --send ruok --expect imok
  waitfor http http://api/actuator/health --json .status=UP
  waitfor tcp db:5432 --timeout 2m -- /app/server --port 8080`,
	ExitStatus: cli.StandardExitStatus + `
  127  -- CMD: CMD is not in PATH (nothing was waited for)
  With -- CMD, once the wait succeeds the status is CMD's own.`,
	New: func() cli.Command { return &command{} },
}

type options struct {
	any            bool
	attemptTimeout time.Duration
	interval       time.Duration
	maxInterval    time.Duration

	// dns, and name resolution for every kind
	resolvConf, hostsFile, server string
	qtype                         string
	minRecords                    int
	expect                        string

	tls     bool
	tlsOpts tlsconfig.Options

	// tcp line protocols
	send string

	// grpc
	grpcService string

	// http
	status        string
	bodyContains  string
	bodyRegex     string
	jsonChecks    []string
	expectHeaders []string
	noFollow      bool
	data          string
	method        string
	headers       []string

	// postgres, redis, mysql
	query        string
	passwordFile string

	// k8s
	forCond, selector     string
	ifMissing             string
	minReady              int
	namespace, kubeconfig string
	serviceAccount        string
	kube                  *kube.Client
	kubeErr               error
	kubeOnce              sync.Once

	env      *cli.Env
	resolver *resolve.Resolver
	resErr   error
	resOnce  sync.Once
}

// nameResolver loads the resolver on first use, so targets that name only
// IP addresses work without a resolv.conf.
func (o *options) nameResolver() (*resolve.Resolver, error) {
	o.resOnce.Do(func() {
		o.resolver, o.resErr = resolve.Load(o.resolvConf, o.hostsFile, o.server)
	})
	return o.resolver, o.resErr
}

type command struct {
	o       options
	targets []*target
}

type target struct {
	kind  *kind
	label string // "dns myservice", secrets masked
	probe probe
}

func (c *command) Flags(fs *cli.FlagSet) {
	o := &c.o
	fs.Bool(&o.any, "any", "succeed when any one target is ready, not all")
	fs.Duration(&o.attemptTimeout, "attempt-timeout", 2*time.Second, "give each probe at most `DURATION`")
	fs.Duration(&o.interval, "interval", retry.Probe.Interval, "probe every `DURATION` for the first 30 s")
	fs.Duration(&o.maxInterval, "max-interval", retry.Probe.MaxInterval, "then back off up to `DURATION` between probes")
	fs.String(&o.resolvConf, "resolv-conf", "/etc/resolv.conf", "resolver configuration `FILE`")
	fs.String(&o.hostsFile, "hosts-file", "/etc/hosts", "hosts `FILE` consulted first for addresses; empty to skip")
	fs.String(&o.server, "server", "", "ask this DNS server (`HOST[:PORT]`) instead of resolv.conf's")
	fs.String(&o.qtype, "type", "", "dns: record `TYPE`: A, AAAA, SRV, CNAME, TXT, MX, NS (default A or AAAA)")
	fs.Int(&o.minRecords, "min-records", 1, "dns: ready when at least `N` records answer")
	fs.String(&o.expect, "expect", "", "dns: ready when some record equals `VALUE`; tcp: when the reply contains it (\\r\\n escapes)")
	fs.String(&o.send, "send", "", "tcp: send `TEXT` first (\\r \\n \\t \\0 \\\\ \\xHH escapes), then wait for --expect")
	fs.Bool(&o.tls, "tls", "tcp: also complete a verified TLS handshake; mysql, redis, grpc: connect over TLS")
	o.tlsOpts.FlagsFor(fs, "tcp --tls, https: ", "tcp --tls, https, postgres: ", true)
	fs.String(&o.status, "status", "200-399", "http: ready `STATUSES`, e.g. 200,204 or 200-299")
	fs.String(&o.bodyContains, "body-contains", "", "http: ready only when the body contains `TEXT`")
	fs.String(&o.bodyRegex, "body-regex", "", "http: ready only when the body matches `RE` (Go regexp syntax)")
	fs.Strings(&o.jsonChecks, "json", "http: ready only when the JSON body has `PATH[=VALUE]` (.status=UP, .checks[0].ok=true; repeatable)")
	fs.Strings(&o.expectHeaders, "expect-header", "http: ready only when the response has header `'K: V'` (V in its value; 'K:' for present; repeatable)")
	fs.Bool(&o.noFollow, "no-follow-redirects", "http: judge a 3xx itself instead of following it")
	fs.String(&o.data, "data", "", "http: send `TEXT` (or @FILE, read at each probe) as the request body; the method becomes POST")
	fs.String(&o.method, "method", "", "http: request `METHOD` (default GET; POST with --data)")
	fs.Strings(&o.headers, "header", "http: request header `'K: V'`; V as @PATH reads a file at each probe (repeatable)")
	fs.String(&o.grpcService, "service", "", "grpc: ask the health of `SERVICE` (default: the server as a whole)")
	fs.String(&o.passwordFile, "password-file", "", "redis, mysql: the password is in `FILE` (read once, never logged)")
	fs.String(&o.query, "query", "", "postgres, mysql: ready when `SQL` runs after login and returns a row")
	fs.String(&o.forCond, "for", "", "k8s: `condition=NAME[=VALUE]`, jsonpath='{.path}'=VALUE or create (kubectl wait's)")
	fs.String(&o.ifMissing, "if-missing", "wait", "k8s: when no object is there: `wait` for it, count it as ready, or fail (see MISSING OBJECTS)")
	fs.String(&o.selector, "selector", "", "k8s: wait on the objects matching the label `SELECTOR`")
	fs.Alias("l", "selector")
	fs.Int(&o.minReady, "min-ready", 1, "k8s: ready when at least `N` endpoints (or selected objects) are")
	fs.String(&o.namespace, "namespace", "", "k8s: the `NAMESPACE` (default: the pod's own)")
	fs.Alias("n", "namespace")
	fs.String(&o.kubeconfig, "kubeconfig", "", "k8s: use `FILE` instead of the pod's service account")
	fs.String(&o.serviceAccount, "service-account-dir", kube.ServiceAccountDir, "k8s: the pod's service account `DIR` (token, ca.crt, namespace)")
}

func (c *command) Prepare(env *cli.Env, args []string) error {
	o := &c.o
	o.env = env
	if env.DashDash >= 0 {
		// waitfor TARGET... -- CMD ARGS...: exec CMD once every target is
		// ready (never after a failed wait).
		cmd := args[env.DashDash:]
		args = args[:env.DashDash]
		if len(cmd) == 0 {
			return errors.New("-- is followed by no command to run")
		}
		env.Exec = cmd // cli looks it up in PATH (127 when missing) and execs it
	}
	if len(args) == 0 {
		return errors.New("no target given")
	}
	if o.attemptTimeout <= 0 {
		return errors.New("--attempt-timeout must be positive")
	}
	if o.minRecords < 1 {
		return fmt.Errorf("invalid value %d for --min-records: want 1 or more", o.minRecords)
	}
	if err := c.schedule().Validate(); err != nil {
		return fmt.Errorf("--interval/--max-interval: %w", err)
	}
	specs, err := splitTargets(args)
	if err != nil {
		return err
	}
	for _, s := range specs {
		p, err := s.kind.new(o, s.target)
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.kind.name, env.Secrets.String(s.target), err)
		}
		c.targets = append(c.targets, &target{kind: s.kind, label: s.kind.name + " " + env.Secrets.String(s.target), probe: p})
	}
	return nil
}

func (c *command) schedule() retry.Schedule {
	s := retry.Probe
	s.Interval, s.MaxInterval = c.o.interval, c.o.maxInterval
	return s
}

// outcome is how one target's wait ended.
type outcome struct {
	t        *target
	ready    bool
	elapsed  time.Duration
	attempts int
	last     error // why it was not ready, when it was not
	final    bool  // it never will be: the wait is over for every target
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]outcome, len(c.targets))
	var wg sync.WaitGroup
	var once sync.Once
	errAnyReady := errors.New("another target is ready")
	errNever := errors.New("another target will never be ready")
	for i, t := range c.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.wait(ctx, env.Log, t, start)
			if results[i].ready && c.o.any {
				once.Do(func() { cancel(errAnyReady) })
			}
			if results[i].final && !c.o.any {
				once.Do(func() { cancel(errNever) })
			}
		}()
	}
	wg.Wait()

	var ready, notReady, never []string
	for _, r := range results {
		if r.final {
			never = append(never, r.t.label+": "+r.last.Error())
		}
		if r.ready {
			ready = append(ready, fmt.Sprintf("%s (%s, %s)", r.t.label, cli.Round(r.elapsed), plural(r.attempts, "attempt")))
		} else {
			reason := "no probe completed"
			if r.last != nil {
				reason = r.last.Error()
			}
			notReady = append(notReady, r.t.label+": "+reason)
		}
	}
	if len(notReady) == 0 || (c.o.any && len(ready) > 0) {
		env.Log.Info("done", "ready", len(ready), "elapsed", cli.Round(time.Since(start)))
		return "ready: " + strings.Join(ready, ", "), nil
	}
	if len(never) > 0 {
		// One target can never be ready: that is the news, not the
		// others cut short for it.
		return "", errors.New(strings.Join(never, "; "))
	}
	return "", fmt.Errorf("%v: %s", context.Cause(ctx), strings.Join(notReady, "; "))
}

// stillWaitingEvery is how often a target that is not ready is logged
// without --verbose.
const stillWaitingEvery = 10 * time.Second

func (c *command) wait(ctx context.Context, log *slog.Logger, t *target, start time.Time) outcome {
	still := &stillWaiting{log: log, t: t, start: start, last: start}
	if w, ok := t.probe.(waiter); ok {
		// A probe that waits by itself (a watch): its reasons are logged
		// when they change.
		lastReason := ""
		err := w.Wait(ctx, func(reason string) {
			if reason != lastReason {
				log.Debug("not ready", "target", t.label, "reason", reason)
				lastReason = reason
			}
			still.note(reason)
		})
		return settle(log, outcome{t: t, attempts: 1, elapsed: time.Since(start)}, err)
	}
	b := c.schedule().BackOff(backoff.SystemClock)
	attempts, err := retry.Until(ctx, b, func(ctx context.Context, attempt int) error {
		actx, cancel := context.WithTimeout(ctx, c.o.attemptTimeout)
		defer cancel()
		err := t.probe.Check(actx)
		var ex *explainedError
		if err != nil && expired(actx) && !(errors.As(err, &ex) && !expired(ctx)) {
			// Cut short: by the end of the whole wait (the previous
			// attempt's reason says more, and retry.Until keeps it), or
			// by this attempt's own deadline.
			if expired(ctx) {
				if cause := context.Cause(ctx); cause != nil {
					return cause
				}
				return context.DeadlineExceeded
			}
			err = fmt.Errorf("no answer within %s", c.o.attemptTimeout)
		}
		if err != nil {
			log.Debug("not ready", "target", t.label, "attempt", attempt, "reason", err.Error())
			still.note(err.Error(), "attempts", attempt)
		}
		return err
	}, nil)
	return settle(log, outcome{t: t, attempts: attempts, elapsed: time.Since(start)}, err)
}

// explainedError is a probe's reason that says more than "no answer
// within" when its attempt's deadline cut it (what a line protocol had
// read by then).
type explainedError struct{ err error }

func (e *explainedError) Error() string { return e.err.Error() }
func (e *explainedError) Unwrap() error { return e.err }

// stillWaiting logs a target's reason at most every stillWaitingEvery.
type stillWaiting struct {
	log         *slog.Logger
	t           *target
	start, last time.Time
}

func (s *stillWaiting) note(reason string, attrs ...any) {
	now := time.Now()
	if now.Sub(s.last) < stillWaitingEvery {
		return
	}
	s.last = now
	s.log.Info("still waiting", append([]any{"target", s.t.label, "elapsed", cli.Round(now.Sub(s.start)), "reason", reason}, attrs...)...)
}

// settle completes o from how its wait ended: nil is ready; a
// retry.StoppedError is the wait's end with the last reason; anything else
// is a permanent failure, which ends every target's wait.
func settle(log *slog.Logger, o outcome, err error) outcome {
	var se *retry.StoppedError
	switch {
	case err == nil:
		o.ready = true
		log.Info("ready", "target", o.t.label, "elapsed", cli.Round(o.elapsed), "attempts", o.attempts)
	case errors.As(err, &se):
		o.last = se.Last
	default:
		if retry.IsPermanent(err) {
			err = errors.Unwrap(err)
		}
		o.last, o.final = err, true
	}
	return o
}

// expired reports whether ctx has ended or its deadline has passed. The
// second can be true a moment before the first: a dial or read deadline
// taken from ctx fires on the socket before ctx's own timer marks it done,
// and an attempt failing with "timeout" then must count as cut short.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
