// Package waitfor is the waitfor applet: idempotent readiness waits on DNS
// names, TCP ports, databases, HTTP endpoints, files and Kubernetes objects,
// many at once.
//
// Every kind of target is one file (dns.go, tcp.go, postgres.go, …) that
// registers a kind: its names and URL schemes, its usage line, help and
// examples, and its own options — the flags only it takes, and how to build
// its probe. The applet's summary, synopsis, help, the unknown-target
// message and the check that every flag given applies to a chosen kind are
// all built from that table (kinds_test.go proves a new kind needs no edit
// elsewhere). The flags every kind shares (timing, name resolution, TLS,
// logging) stay here and in cli.
package waitfor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/resolve"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
)

// probe checks one target once. Check returns nil when the target is ready
// and otherwise an error saying why not, in a few words.
type probe interface {
	Check(ctx context.Context) error
}

// kind is one kind of target, described by its own file.
type kind struct {
	name    string
	aliases []string
	// rank orders the kinds in help and in the applet's summary.
	rank int
	// noun names what it waits for, in the summary: "TCP ports".
	noun string
	// usage is the KIND form's line, "tcp HOST:PORT"; urlForm the
	// URL-style one, "tcp://HOST:PORT".
	usage, urlForm string
	// help says when the target is ready, a paragraph for the kinds list;
	// more is a section of its own (after the kinds), if it needs one.
	help, more string
	examples   []string
	// schemes are the URL schemes ("tcp" for tcp://…) and prefixes
	// ("dns" for dns:NAME) that select this kind in URL-style targets.
	schemes []string
	// keepScheme: the target keeps its scheme (a URL the probe needs whole).
	keepScheme bool
	// urlOnly: SCHEME:REST without // is no target of this kind (http:x).
	urlOnly bool
	// pairs: in the KIND TARGET... form, "TYPE NAME" is one target
	// (waitfor k8s job migrate), as is TYPE/NAME.
	pairs bool
	// tls is which of the shared TLS flags the kind takes.
	tls tlsUse
	// options makes the kind's own options for one command.
	options func() kindOptions
}

type tlsUse int

const (
	noTLS      tlsUse = iota
	clientCert        // --cert-file, --key-file only (postgres: the DSN verifies)
	fullTLS           // and --ca-file, --server-name, --insecure-skip-verify
)

// kindOptions are one kind's own flags and how it builds a probe from them
// and the shared options.
type kindOptions interface {
	// flags registers the kind's own flags; cli.FlagSet.Group has made
	// them the kind's, so a name two kinds take is one flag.
	flags(fs *cli.FlagSet)
	probe(o *options, target string) (probe, error)
}

// checker is a kindOptions that validates its flags once, before any
// target is built.
type checker interface{ check() error }

// kinds is the table of kinds, in rank order; each file registers its own.
var kinds []*kind

func register(k *kind) *kind {
	i := sort.Search(len(kinds), func(i int) bool { return kinds[i].rank > k.rank })
	kinds = slices.Insert(kinds, i, k)
	return k
}

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

// Applet is waitfor's entry in the applet table; init completes it from
// the kinds table.
var Applet = template

// template is the applet before describe fills it in from the kinds.
var template = cli.Applet{
	Name: "waitfor",
	Help: `Waits until every target is ready (with --any: one of them), probing them in
parallel: about 5 times a second for the first 30 s, then backing off to about
once a second. It only asks; it changes nothing, so it is safe to re-run.

Kinds of target:
{{kinds}}
A target that can never be ready (a failed Job, a 403) ends the whole wait.
A flag that no chosen kind takes is bad usage ("--status applies to http
targets"); the flags without a kind's name in their help apply to all.

-- CMD ARGS... runs CMD in place of waitfor once every target is ready (exec:
the same PID, so CMD gets the container's signals and its exit status is the
container's), with argv and environment unchanged — the wait as the first
step of an app image's entrypoint (see install). After a failed or timed-out
wait CMD never runs. CMD is looked up in PATH before the wait starts; a
missing CMD is exit 127.
{{more}}
EXAMPLES
{{examples}}
  waitfor dns:myservice tcp://db:5432 postgres://app@db/app https://api/healthz
  waitfor k8s:job/migrate k8s:endpoints/db tcp://cache:6379 --timeout 10m
  waitfor tcp db:5432 --timeout 2m -- /app/server --port 8080`,
	ExitStatus: cli.StandardExitStatus + `
  127  -- CMD: CMD is not in PATH (nothing was waited for)
  With -- CMD, once the wait succeeds the status is CMD's own.`,
	New: func() cli.Command { return &command{} },
}

// init runs after every file's kind is registered. The summary is a few
// words; the synopsis and help are built only when help is shown.
func init() {
	Applet.Summary = summary()
	Applet.Describe = func() (string, string) { d := describe(template); return d.Synopsis, d.Help }
}

func summary() string {
	var nouns []string
	for _, k := range kinds {
		nouns = append(nouns, k.noun)
	}
	return "wait until " + orList(nouns) + " are ready"
}

// describe fills in what the kinds table says: the summary, the synopsis
// and the help's kinds list, sections and examples.
func describe(a cli.Applet) cli.Applet {
	var names, forms, list, more, examples []string
	for _, k := range kinds {
		n := k.name
		if len(k.aliases) > 0 {
			n += " (" + k.aliases[0] + ")"
		}
		names = append(names, n)
		forms = append(forms, k.urlForm)
		list = append(list, wrap(k.usage, k.help))
		if k.more != "" {
			more = append(more, "\n"+strings.TrimSpace(k.more)+"\n")
		}
		for _, e := range k.examples {
			examples = append(examples, "  waitfor "+e)
		}
	}
	a.Summary = summary()
	a.Synopsis = "[flags] KIND TARGET... [-- CMD ARGS...]   KIND: " + strings.Join(names, ", ") +
		"\n[flags] URL... [-- CMD ARGS...]       " + strings.Join(forms, " ")
	a.Help = strings.NewReplacer("{{kinds}}", strings.Join(list, "\n")+"\n", "{{more}}", strings.Join(more, ""),
		"{{examples}}", strings.Join(examples, "\n")).Replace(a.Help)
	return a
}

// orList joins words as a sentence does: "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// wrap lays out one kind of the help's list: the usage, then its text
// wrapped to 78 columns beside it.
func wrap(usage, text string) string {
	const indent, width = 18, 78
	var b strings.Builder
	line := fmt.Sprintf("  %-*s", indent-2, usage)
	if len(usage) > indent-3 {
		b.WriteString("  " + usage + "\n")
		line = strings.Repeat(" ", indent)
	}
	empty := true
	for _, w := range strings.Fields(text) {
		if !empty && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line, empty = strings.Repeat(" ", indent), true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	b.WriteString(line)
	return b.String()
}

// options are the flags every kind shares, and what they build once.
type options struct {
	any            bool
	attemptTimeout time.Duration
	interval       time.Duration
	maxInterval    time.Duration
	// stillEvery is how often a target that is not ready is logged
	// without --verbose (tests shorten it).
	stillEvery time.Duration

	// name resolution, for every kind
	resolvConf, hostsFile, server string

	tlsOpts tlsconfig.Options

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
	kinds   map[*kind]kindOptions
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
	if o.stillEvery == 0 {
		o.stillEvery = stillWaitingEvery
	}
	c.kinds = map[*kind]kindOptions{}
	var verify, cert []string
	for _, k := range kinds {
		ko := k.options()
		c.kinds[k] = ko
		fs.Group(k.name)
		ko.flags(fs)
		if k.tls == fullTLS {
			verify = append(verify, k.name)
		}
		if k.tls != noTLS {
			cert = append(cert, k.name)
		}
	}
	fs.Group(verify...)
	o.tlsOpts.VerifyFlags(fs, "", true)
	fs.Group(cert...)
	o.tlsOpts.CertFlags(fs, "")
	fs.Group()
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	o := &c.o
	o.env = env
	var exec []string
	if env.DashDash >= 0 {
		// waitfor TARGET... -- CMD ARGS...: exec CMD once every target is
		// ready (never after a failed wait); cli looks it up in PATH (127
		// when missing) and execs it.
		exec = args[env.DashDash:]
		args = args[:env.DashDash]
		if len(exec) == 0 {
			return nil, errors.New("-- is followed by no command to run")
		}
	}
	if len(args) == 0 {
		return nil, errors.New("no target given")
	}
	if o.attemptTimeout <= 0 {
		return nil, errors.New("--attempt-timeout must be positive")
	}
	if err := c.schedule().Validate(); err != nil {
		return nil, fmt.Errorf("--interval/--max-interval: %w", err)
	}
	specs, err := splitTargets(args)
	if err != nil {
		return nil, err
	}
	if err := c.applies(env.Flags, specs); err != nil {
		return nil, err
	}
	for _, s := range specs {
		ko := c.kinds[s.kind]
		if ch, ok := ko.(checker); ok {
			if err := ch.check(); err != nil {
				return nil, err
			}
		}
		p, err := ko.probe(o, s.target)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", s.kind.name, env.Secrets.String(s.target), err)
		}
		c.targets = append(c.targets, &target{kind: s.kind, label: s.kind.name + " " + env.Secrets.String(s.target), probe: p})
	}
	return exec, nil
}

// applies refuses a flag given for kinds none of the targets is: it would
// be silently ignored (waitfor tcp … --status 200 would just time out).
func (c *command) applies(fs *cli.FlagSet, specs []spec) error {
	if fs == nil {
		return nil
	}
	var chosen []string
	for _, s := range specs {
		chosen = append(chosen, s.kind.name)
	}
	if g, owners, ok := fs.Misplaced(chosen...); ok {
		return fmt.Errorf("%s applies to %s targets", g, orList(owners))
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
	still := &stillWaiting{log: log, t: t, start: start, last: start, every: c.o.stillEvery}
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
	every       time.Duration
}

func (s *stillWaiting) note(reason string, attrs ...any) {
	now := time.Now()
	if now.Sub(s.last) < s.every {
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
