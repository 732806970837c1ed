// Package register is the register applet: announce the pod to a
// management service (HTTP) or a central database (PostgreSQL), once as an
// init container or for the pod's lifetime as a native sidecar, and take
// the announcement back on the way out.
package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
	"github.com/initbox/initbox/internal/tmpl"
)

// Applet is register's entry in the applet table.
var Applet = cli.Applet{
	Name:    "register",
	Summary: "announce the pod to a management service or a database, once or as a sidecar",
	Synopsis: `http URL [--data K=TEMPLATE | --json TEMPLATE] [flags]
postgres DSN --table T --key COL=TEMPLATE [--set COL=TEMPLATE]... [flags]`,
	Help: `Registers this pod: one HTTP request, or one PostgreSQL upsert, retried with
the shared schedule (1 s doubling to 30 s) until it succeeds or --timeout.

Every templated value (URL, --data values, --json, --key, --set) is a Go
template over render's data: .Env, .Pod (the downward API: POD_NAME, POD_UID,
POD_IP, … and --podinfo DIR) and .Values (--values FILE, --value K=V). A
missing key is exit 2 before anything is sent.

http: --data K=TEMPLATE sends a form (each value URL-encoded after
templating; repeatable, or K=V&K2=V2); --json TEMPLATE (or @FILE) a JSON body,
checked after templating (write values as {{ .Pod.Name | toJson }}). Every
request carries an Idempotency-Key derived from the pod's UID, the method, URL
and body: the same for every retry and every re-run, so a server can drop
duplicates. Network errors, 5xx, 408 and 429 (Retry-After honoured) are
retried; another status outside --expect-status fails at once with exit 1.
--output FILE keeps the response body (an instance ID for the app), atomically.

postgres: INSERT … ON CONFLICT (keys) DO UPDATE SET the --set columns, with
every value a bound parameter and every name a quoted identifier (letters,
digits, _ and $), so nothing can inject SQL. --touch COL sets COL to now()
on every write (a heartbeat). --create-table creates a minimal table (text
columns, the keys as primary key) when it is missing; without it, a missing
table is retried as "not yet" (a migration job may create it). Connection
failures, 57P03 and serialization failures are retried; other SQL errors fail
at once with exit 1.

--deregister takes the registration back instead (http: --deregister-method,
default DELETE, to --deregister-url, default URL, with --deregister-data;
postgres: delete the row by its keys). Something already gone (404, 410, no
row) is success.

--keepalive INTERVAL makes register a sidecar: register, re-register every
INTERVAL (a heartbeat; each one retried for at most INTERVAL), and on
SIGTERM deregister (within --deregister-timeout) and exit 0. Run it as a
native sidecar (an init container with restartPolicy: Always), so the
registration lives exactly as long as the pod. --ready-file PATH is written
after the first success and removed after deregistering, for a startupProbe
(waitfor file PATH) or the next step.

EXAMPLES
  register http 'http://$(MANAGEMENT_SERVICE_HOST):$(MANAGEMENT_SERVICE_PORT)/register' --data 'instance={{ .Pod.Name }}&ip={{ .Pod.IP }}'
  register http https://registry.internal/v1/instances --json '{"name": {{ .Pod.Name | toJson }}}' --output /shared/instance-id
  register postgres "$DSN" --table instances --key 'name={{ .Pod.Name }}' --set 'ip={{ .Pod.IP }}' --touch last_seen --create-table
  register http http://mgmt/register --data 'id={{ .Pod.UID }}' --keepalive 30s --ready-file /run/registered`,
	New: func() cli.Command { return &command{} },
}

// target is where a registration goes: one attempt of each operation,
// with errors retry.Permanent when retrying cannot help.
type target interface {
	label() string
	// render executes the templates; its errors are bad input.
	render(data tmpl.Data) error
	register(ctx context.Context, heartbeat int) error
	deregister(ctx context.Context) error
}

type command struct {
	method, deregMethod   string
	deregURL, deregData   string
	data                  []string
	json                  string
	headers               []string
	expect                string
	output                string
	table                 string
	keys, sets, touch     []string
	createTable           bool
	deregister            bool
	keepalive             time.Duration
	deregTimeout          time.Duration
	attemptTimeout        time.Duration
	interval, maxInterval time.Duration
	readyFile             string
	tls                   tlsconfig.Options
	opts                  tmpl.Options

	env *cli.Env
	t   target
}

func (c *command) Flags(fs *cli.FlagSet) {
	fs.String(&c.method, "method", "POST", "http: the request's `METHOD`")
	fs.Strings(&c.data, "data", "http: a form field `K=TEMPLATE` (or K=V&K2=V2), values URL-encoded after templating (repeatable)")
	fs.String(&c.json, "json", "", "http: a JSON body `TEMPLATE` (or @FILE), checked after templating")
	fs.Strings(&c.headers, "header", "http: a request header `'K: V'`; V as @PATH reads a file (never logged) (repeatable)")
	fs.String(&c.expect, "expect-status", "2xx", "http: the statuses that mean success: `LIST` of codes or classes (200,201 or 2xx)")
	fs.String(&c.output, "output", "", "http: write the response body to `FILE`, atomically")
	fs.String(&c.deregMethod, "deregister-method", "DELETE", "http: the `METHOD` of --deregister and of a sidecar's last request")
	fs.String(&c.deregURL, "deregister-url", "", "http: the `URL` (a template) to deregister at (default: URL)")
	fs.String(&c.deregData, "deregister-data", "", "http: form fields `K=TEMPLATE&…` to deregister with")
	fs.String(&c.table, "table", "", "postgres: the `TABLE` (or SCHEMA.TABLE) to upsert into")
	fs.Strings(&c.keys, "key", "postgres: a key column `COL=TEMPLATE` (repeatable: a composite key)")
	fs.Strings(&c.sets, "set", "postgres: a column to set, `COL=TEMPLATE` (repeatable)")
	fs.Strings(&c.touch, "touch", "postgres: a timestamp `COL` set to now() on every write (repeatable)")
	fs.Bool(&c.createTable, "create-table", "postgres: create a minimal table when it is missing")
	fs.Bool(&c.deregister, "deregister", "take the registration back instead")
	fs.Duration(&c.keepalive, "keepalive", 0, "stay running: re-register every `INTERVAL`, deregister on SIGTERM (a sidecar)")
	fs.Duration(&c.deregTimeout, "deregister-timeout", 10*time.Second, "with --keepalive, give deregistering at most `DURATION` after SIGTERM")
	fs.Duration(&c.attemptTimeout, "attempt-timeout", 30*time.Second, "give each attempt at most `DURATION`")
	fs.Duration(&c.interval, "interval", retry.Transfer.Interval, "retry first after `DURATION`, doubling")
	fs.Duration(&c.maxInterval, "max-interval", retry.Transfer.MaxInterval, "up to `DURATION` between attempts")
	fs.String(&c.readyFile, "ready-file", "", "write `PATH` after the first success (removed after deregistering)")
	c.tls.Flags(fs, "http: ", false)
	c.opts.Flags(fs, "value")
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	c.env = env
	if len(args) != 2 {
		return nil, errors.New("want http URL or postgres DSN")
	}
	c.opts.Secrets = env.Secrets
	if err := c.opts.Check(); err != nil {
		return nil, err
	}
	if c.attemptTimeout <= 0 || c.deregTimeout <= 0 || c.keepalive < 0 {
		return nil, errors.New("--attempt-timeout and --deregister-timeout must be positive, --keepalive not negative")
	}
	if err := c.schedule().Validate(); err != nil {
		return nil, fmt.Errorf("--interval and --max-interval: %w", err)
	}
	if c.keepalive > 0 && c.deregister {
		return nil, errors.New("--keepalive registers and deregisters on SIGTERM; --deregister does only the second")
	}
	var err error
	switch args[0] {
	case "http", "https":
		c.t, err = c.newHTTP(args[1])
	case "postgres", "postgresql", "pg":
		c.t, err = c.newPostgres(args[1])
	default:
		return nil, fmt.Errorf("unknown kind %q: want http or postgres", args[0])
	}
	return nil, err
}

// only reports flags given that belong to the other kind.
func (c *command) only(kind string, flags map[string]bool) error {
	for name, set := range flags {
		if set {
			return fmt.Errorf("--%s is not for %s", name, kind)
		}
	}
	return nil
}

// parse parses a template of a flag; name says which in errors.
func (c *command) parse(name, text string) (*tmplT, error) {
	t, err := c.opts.Parse(name, text)
	if err != nil {
		return nil, err
	}
	return &tmplT{t: t, opts: &c.opts}, nil
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	data, err := c.opts.Load(env.LookupEnv)
	if err == nil {
		err = c.t.render(data)
	}
	if err != nil {
		return "", &cli.UsageError{Err: err}
	}
	if c.deregister {
		if err := c.retry(ctx, env.Log, "deregister", c.t.deregister); err != nil {
			return "", err
		}
		env.Log.Info("deregistered", "target", c.t.label())
		return "deregistered from " + c.t.label(), nil
	}
	reg := func(ctx context.Context) error { return c.t.register(ctx, 0) }
	if err := c.retry(ctx, env.Log, "register", reg); err != nil {
		return "", err
	}
	env.Log.Info("registered", "target", c.t.label())
	if c.readyFile != "" {
		if err := atomicfile.Write(ctx, c.readyFile, strings.NewReader("registered with "+c.t.label()+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("--ready-file: %w", err)
		}
	}
	if c.keepalive == 0 {
		return "registered with " + c.t.label(), nil
	}
	return c.sidecar(ctx, env)
}

// sidecar re-registers every interval until ctx ends, then deregisters.
// Ended by a signal, a clean deregistration is success: the pod is going
// away as planned.
func (c *command) sidecar(ctx context.Context, env *cli.Env) (string, error) {
	t := time.NewTicker(c.keepalive)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return c.stop(ctx, env)
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, c.keepalive)
		err := c.retry(hctx, env.Log, "heartbeat", func(ctx context.Context) error { return c.t.register(ctx, n) })
		cancel()
		if err != nil && ctx.Err() == nil {
			env.Log.Warn("heartbeat failed; trying again at the next", "target", c.t.label(), "reason", err.Error())
		} else if err == nil {
			env.Log.Debug("heartbeat", "target", c.t.label(), "n", n)
		}
	}
}

func (c *command) stop(ctx context.Context, env *cli.Env) (string, error) {
	cause := context.Cause(ctx)
	env.Log.Info("deregistering", "target", c.t.label(), "because", cause.Error())
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.deregTimeout)
	defer cancel()
	err := c.retry(dctx, env.Log, "deregister", c.t.deregister)
	if c.readyFile != "" {
		os.Remove(c.readyFile)
	}
	if err != nil {
		return "", fmt.Errorf("deregistering: %w", err)
	}
	var se *cli.SignalError
	if !errors.As(cause, &se) {
		return "", fmt.Errorf("deregistered after %w", cause)
	}
	env.Log.Info("deregistered", "target", c.t.label())
	return "deregistered from " + c.t.label() + " on " + se.Error(), nil
}

func (c *command) schedule() retry.Schedule {
	s := retry.Transfer
	s.Interval, s.MaxInterval = c.interval, c.maxInterval
	return s
}

// retryAfterError is an attempt's failure carrying a server's Retry-After.
type retryAfterError interface{ retryAfter() time.Duration }

// retry runs op until it succeeds, fails permanently or ctx ends, each
// attempt bounded by --attempt-timeout.
func (c *command) retry(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	_, err := retry.Until(ctx, c.schedule().BackOff(backoff.SystemClock), func(ctx context.Context, attempt int) error {
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		defer cancel()
		err := op(actx)
		if err != nil && !retry.IsPermanent(err) && actx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", c.attemptTimeout)
		}
		return err
	}, func(attempt int, err error, next time.Duration) time.Duration {
		var ra retryAfterError
		if errors.As(err, &ra) && ra.retryAfter() > next {
			next = ra.retryAfter()
		}
		log.Info("not yet", "op", what, "target", c.t.label(), "attempt", attempt, "reason", err.Error(), "next", cli.Round(next))
		return next
	})
	return err
}
