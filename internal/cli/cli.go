// Package cli is what every initbox applet shares: dispatch by argv[0] or the
// first word, flags with environment twins, logging, exit codes, the
// Kubernetes termination message and signal handling.
//
// An applet is a library (its Command); the multi-call binary, the
// single-applet binaries and the tests all run it through Run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/initbox/initbox/internal/redact"
)

// Applet describes one applet: its name, its help and how to make a Command.
type Applet struct {
	Name     string
	Summary  string // one line, for the applet list
	Synopsis string // usage lines without the name, e.g. "[flags] KIND TARGET..."
	Help     string // description and EXAMPLES, shown by --help
	// ExitStatus replaces the standard EXIT STATUS section when set.
	ExitStatus string
	// Describe, when set, supplies Synopsis and Help when help is shown:
	// an applet whose help is built from a table (waitfor's kinds) does
	// not build it at every start.
	Describe func() (synopsis, help string)
	New      func() Command
}

// Command is one invocation of an applet. Flags registers its flags; Prepare
// validates the positional arguments and everything that can be checked
// before work starts (any error is bad usage, exit 2); Run does the work.
// Run's summary becomes the termination message on success.
//
// Prepare may return a command to run in place of the process once Run
// succeeds (syscall.Exec: same PID, signals go to it, its exit status is
// the container's). exec[0] is looked up in PATH as a shell would right
// after Prepare — not there is exit 127, before any work — and passed on
// as it is.
type Command interface {
	Flags(fs *FlagSet)
	Prepare(env *Env, args []string) (exec []string, err error)
	Run(ctx context.Context, env *Env) (summary string, err error)
}

// Env is what an applet may use from its surroundings.
type Env struct {
	Applet  string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Log     *slog.Logger
	Verbose bool
	// Timeout is the --timeout flag; Run's ctx already carries it.
	Timeout time.Duration
	// LookupEnv reads the process environment (a seam for tests).
	LookupEnv func(string) (string, bool)
	// Secrets are masked in every log line, error and termination message.
	Secrets *redact.Set
	// DashDash is the index in Prepare's args of the first one that came
	// after a "--" (which was dropped), or -1 when there was none.
	DashDash int
	// Flags are the applet's flags, parsed: Changed and Given tell what
	// the command line and the environment set.
	Flags *FlagSet
	// Applets lists the names of all applets of this binary.
	Applets []string
	// Table is the applet table, for run's in-process steps.
	Table []Applet
	// logFormat and quiet are the logging flags, which steps inherit.
	logFormat string
	quiet     bool
}

// Getenv is LookupEnv without the flag.
func (e *Env) Getenv(k string) string { v, _ := e.LookupEnv(k); return v }

// Stdio bundles the standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Main runs the binary made of applets with the process's arguments,
// environment and signals, and returns the exit status.
func Main(applets ...Applet) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cancel(&SignalError{Signal: s.(syscall.Signal)})
		// A second signal means "now": skip the cleanup.
		s = <-sigs
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	return Run(ctx, applets, os.Args, Stdio{os.Stdin, os.Stdout, os.Stderr}, os.LookupEnv)
}

// Run dispatches argv: by argv[0]'s base name when it names an applet (a
// link), otherwise by the first argument.
func Run(ctx context.Context, applets []Applet, argv []string, stdio Stdio, lookupEnv func(string) (string, bool)) int {
	byName := map[string]*Applet{}
	var names []string
	for i := range applets {
		byName[applets[i].Name] = &applets[i]
		names = append(names, applets[i].Name)
	}
	sort.Strings(names)
	if len(argv) > 0 {
		if a := byName[filepath.Base(argv[0])]; a != nil {
			return runApplet(ctx, a, argv[1:], stdio, lookupEnv, names, applets)
		}
	}
	args := argv
	if len(args) > 0 {
		args = args[1:]
	}
	if len(args) == 0 {
		list(stdio.Out, applets)
		return 0
	}
	switch args[0] {
	case "help", "--help", "-h", "-help":
		if len(args) > 1 && args[0] == "help" {
			if a := byName[args[1]]; a != nil {
				help(stdio.Out, a, newFlagSetFor(a))
				return 0
			}
			fmt.Fprintf(stdio.Err, "initbox: unknown applet %q\n", args[1])
			list(stdio.Err, applets)
			return ExitUsage
		}
		list(stdio.Out, applets)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdio.Out, VersionString())
		return 0
	}
	if a := byName[args[0]]; a != nil {
		return runApplet(ctx, a, args[1:], stdio, lookupEnv, names, applets)
	}
	fmt.Fprintf(stdio.Err, "initbox: unknown applet %q\n", args[0])
	list(stdio.Err, applets)
	return ExitUsage
}

// common holds the flags every applet has: their twins are the flat
// INITBOX_<FLAG>, the only ones.
type common struct {
	timeout        time.Duration
	logFormat      string
	quiet, verbose bool
	termLog        string
	help           bool
}

func (c *common) register(fs *FlagSet) {
	fs.shared = true
	defer func() { fs.shared = false }()
	fs.Duration(&c.timeout, "timeout", 0, "give up after `DURATION`; 0 means no limit")
	fs.String(&c.logFormat, "log-format", "text", "log `FORMAT`: text or json")
	fs.Bool(&c.quiet, "quiet", "log errors only")
	fs.Alias("q", "quiet")
	fs.Bool(&c.verbose, "verbose", "log every attempt")
	fs.Alias("v", "verbose")
	fs.String(&c.termLog, "termination-log", DefaultTerminationLog, "write the outcome to `PATH` for Kubernetes (only if it exists, for the default); empty disables")
	fs.Bool(&c.help, "help", "show this help")
	fs.Alias("h", "help")
}

// invocation is one command line of an applet, parsed: the binary, a step
// of run and help all read it through parseInvocation. It holds what could
// be parsed even when err is set (where the termination message goes).
type invocation struct {
	cmd      Command
	fs       *FlagSet
	c        common
	pos      []string
	warnings []string
	err      error
}

func parseInvocation(a *Applet, args []string, lookupEnv func(string) (string, bool)) *invocation {
	inv := &invocation{cmd: a.New(), fs: newFlagSet(a.Name)}
	inv.cmd.Flags(inv.fs)
	inv.c.register(inv.fs)
	inv.pos, inv.warnings, inv.err = inv.fs.parse(args, lookupEnv)
	switch {
	case inv.err != nil:
	case inv.c.logFormat != "text" && inv.c.logFormat != "json":
		inv.err = fmt.Errorf("invalid value %q for --log-format: want text or json", inv.c.logFormat)
	case inv.c.quiet && inv.c.verbose:
		inv.err = errors.New("--quiet and --verbose exclude each other")
	}
	return inv
}

func newFlagSetFor(a *Applet) *FlagSet {
	return parseInvocation(a, nil, func(string) (string, bool) { return "", false }).fs
}

func runApplet(ctx context.Context, a *Applet, args []string, stdio Stdio, lookupEnv func(string) (string, bool), names []string, table []Applet) int {
	start := time.Now()
	secrets := &redact.Set{}
	stderr := &redactWriter{w: stdio.Err, secrets: secrets}
	inv := parseInvocation(a, args, lookupEnv)
	c, cmd := &inv.c, inv.cmd
	if c.help {
		help(stdio.Out, a, inv.fs)
		return 0
	}
	env := &Env{
		Applet: a.Name, Stdin: stdio.In, Stdout: stdio.Out, Stderr: stderr,
		Verbose: c.verbose, Timeout: c.timeout, LookupEnv: lookupEnv,
		Secrets: secrets, Applets: names, Table: table,
		DashDash: inv.fs.dashdash, Flags: inv.fs,
		logFormat: c.logFormat, quiet: c.quiet,
	}
	tl := terminationLog{path: c.termLog, explicit: inv.fs.Changed("termination-log"), secrets: secrets}
	env.Log = newLogger(stderr, c.logFormat, c.quiet, c.verbose)
	for _, w := range inv.warnings {
		env.Log.Warn(w)
	}
	perr := inv.err
	var exec []string
	if perr == nil {
		exec, perr = cmd.Prepare(env, inv.pos)
	}
	var execPath string
	if perr == nil && len(exec) > 0 {
		execPath, perr = lookCommand(exec[0], lookupEnv)
	}
	var nf *NotFoundError
	var nx *NotExecutableError
	if errors.As(perr, &nf) || errors.As(perr, &nx) {
		// The command to run after the work is not there (a shell's 127)
		// or cannot run (126): said before any work.
		msg := secrets.String(perr.Error())
		fmt.Fprintf(stdio.Err, "%s: %s\n", a.Name, msg)
		tl.write(a.Name + ": " + msg)
		if nx != nil {
			return ExitNotExecutable
		}
		return ExitNotFound
	}
	if perr != nil {
		msg := secrets.String(perr.Error())
		fmt.Fprintf(stdio.Err, "%s: %s (see '%s --help')\n", a.Name, msg, a.Name)
		tl.write(a.Name + ": bad usage: " + msg)
		return ExitUsage
	}

	runCtx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, c.timeout, &TimeoutError{After: c.timeout})
		defer cancel()
	}
	summary, err := cmd.Run(runCtx, env)
	code := ExitCode(ctx, err)
	switch {
	case err == nil && len(exec) > 0:
		// The command owns the container from here: its termination
		// message, if any, is its own.
		env.Log.Info("exec", "command", exec[0], "args", len(exec)-1) // its arguments may hold secrets
		err = syscall.Exec(execPath, exec, os.Environ())
		msg := secrets.String(fmt.Sprintf("exec %s: %v", execPath, err))
		env.Log.Error(msg)
		tl.write(a.Name + ": " + msg)
		return ExitFailed
	case err == nil:
		tl.write(a.Name + ": " + summary)
	default:
		msg := err.Error()
		var se *SignalError
		if errors.As(context.Cause(ctx), &se) && !strings.Contains(msg, se.Error()) {
			msg = se.Error() + ": " + msg
		}
		env.Log.Error(msg, "elapsed", Round(time.Since(start)))
		tl.write(a.Name + ": " + msg)
	}
	return code
}

func list(w io.Writer, applets []Applet) {
	fmt.Fprintf(w, "initbox %s: one small binary for Kubernetes init containers.\n\n", Version())
	fmt.Fprintf(w, "Usage: initbox APPLET [ARGS...]   or, through a link named after it:  APPLET [ARGS...]\n\nApplets:\n")
	for _, a := range applets {
		fmt.Fprintf(w, "  %-10s %s\n", a.Name, a.Summary)
	}
	fmt.Fprintf(w, "\n'initbox help APPLET' or 'APPLET --help' shows an applet's flags and examples.\n'initbox version' prints the version.\n")
}

func help(w io.Writer, a *Applet, fs *FlagSet) {
	if a.Describe != nil {
		d := *a
		d.Synopsis, d.Help = a.Describe()
		a = &d
	}
	for i, line := range strings.Split(strings.TrimSpace(a.Synopsis), "\n") {
		prefix := "Usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%s%s %s\n", prefix, a.Name, strings.TrimSpace(line))
	}
	fmt.Fprintf(w, "\n%s\n\nFLAGS\n", strings.TrimSpace(a.Help))
	fs.usage(w)
	fmt.Fprintf(w, "\nEach flag can also be set by the environment variable shown; the flag wins.\n")
	es := a.ExitStatus
	if es == "" {
		es = StandardExitStatus
	}
	fmt.Fprintf(w, "\nEXIT STATUS\n%s\n", strings.TrimRight(es, "\n"))
}

// StandardExitStatus is the EXIT STATUS section shared by all applets.
const StandardExitStatus = `  0    done
  1    the condition was not met: timed out, refused, failed
  2    bad usage or bad input; retrying will not help
  130  interrupted (SIGINT)
  143  terminated (SIGTERM)`

// Round shortens a duration for humans: milliseconds below a minute.
func Round(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

// Single runs a binary made of one applet, whatever its file is called.
func Single(a Applet) int {
	args := append([]string{a.Name}, os.Args[1:]...)
	saved := os.Args
	os.Args = args
	defer func() { os.Args = saved }()
	return Main(a)
}
