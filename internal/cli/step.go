package cli

import (
	"context"
	"errors"
	"time"
)

// Step is one applet invocation prepared to run inside another applet's
// process (initbox run): parsed and validated now, run later.
type Step struct {
	Applet  *Applet
	Label   string // names the step in logs and messages
	cmd     Command
	env     *Env
	timeout time.Duration
}

// PrepareStep parses args as a's command line and validates them with a's
// Prepare, as the binary would, except that a step reads no environment
// twins (its flags are all in its words), logs through parent's stderr
// with step=label, and has no termination log of its own. Its errors are
// bad usage.
func PrepareStep(parent *Env, a *Applet, label string, args []string) (*Step, error) {
	inv := parseInvocation(a, args, func(string) (string, bool) { return "", false })
	c, fs := &inv.c, inv.fs
	switch {
	case c.help:
		return nil, errors.New("--help is not a step")
	case inv.err != nil:
		return nil, inv.err
	case fs.Changed("termination-log"):
		return nil, errors.New("--termination-log: a step's outcome goes to run's termination log")
	case fs.Changed("log-format"):
		return nil, errors.New("--log-format: steps log as run does")
	}
	quiet, verbose := parent.quiet, parent.Verbose
	if fs.Changed("quiet") || fs.Changed("verbose") {
		quiet, verbose = c.quiet, c.verbose
	}
	env := &Env{
		Applet: a.Name, Stdin: parent.Stdin, Stdout: parent.Stdout, Stderr: parent.Stderr,
		Log:     newLogger(parent.Stderr, parent.logFormat, quiet, verbose).With("step", label),
		Verbose: verbose, Timeout: c.timeout, LookupEnv: parent.LookupEnv,
		Secrets: parent.Secrets, Applets: parent.Applets, Table: parent.Table,
		DashDash: fs.dashdash, Flags: fs,
		logFormat: parent.logFormat, quiet: quiet,
	}
	exec, err := inv.cmd.Prepare(env, inv.pos)
	if err != nil {
		return nil, err
	}
	if len(exec) > 0 {
		return nil, errors.New("-- CMD in a step: a step cannot replace run's process (make the app the container's command instead)")
	}
	return &Step{Applet: a, Label: label, cmd: inv.cmd, env: env, timeout: c.timeout}, nil
}

// Run runs the step under ctx and its own --timeout.
func (s *Step) Run(ctx context.Context) (string, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, &TimeoutError{After: s.timeout})
		defer cancel()
	}
	return s.cmd.Run(ctx, s.env)
}
