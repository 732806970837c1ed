// Package run is the run applet: many applet steps in one init container,
// in process and without a shell, sequential where order matters and
// parallel where it does not, every step validated before the first runs.
package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/initbox/initbox/internal/cli"
)

// Applet is run's entry in the applet table.
var Applet = cli.Applet{
	Name:     "run",
	Summary:  "run many steps in one container: in order, or in parallel, with no shell",
	Synopsis: "[flags] STEP...    or    run [flags] -f FILE",
	Help: `Runs applet steps one after another in this one process, so a pod needs one
init container instead of several, and a scratch image needs no shell for
"waitfor … && fetch … && render …".

Each argument is a step, written as it would be typed: 'waitfor dns mydb
--timeout 2m'. It is split into words as sh would split it (quotes and
backslashes), with no expansion: the kubelet already replaced $(VAR). Steps
separated by a lone & within one argument run in parallel, as one stage:
'waitfor dns mydb & waitfor tcp cache:6379'. The next stage starts when all
of a stage's steps are done.

-f FILE reads the steps from a YAML (or JSON) file, e.g. a ConfigMap:

  steps:
    - waitfor dns mydb --timeout 2m
    - parallel:
        - waitfor tcp cache:6379
        - fetch https://example.com/site.tar.gz /www --checksum sha256:…
    - [render, /templates/app.conf.tmpl, --out, /config/app.conf]

Every step is parsed and validated (flags, templates, DSNs) before the first
one runs: a bad step is exit 2 and nothing runs; --dry-run stops there and
prints the plan. Steps take their flags only from their words (no INITBOX_*
twins), and log through run's log with step=N.

The first failing step stops the run with its exit status, and the
termination message names it; a failing step cancels the rest of its stage.
--timeout bounds the whole run (a step's own --timeout, its part); SIGTERM
stops every step cleanly (temporary files removed) with 143.

EXAMPLES
  run 'waitfor dns mydb & waitfor dns cache' 'fetch https://example.com/site.tgz /www --checksum sha256:…' 'install /shared/bin'
  run -f /etc/initbox/steps.yaml --dry-run`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	file   string
	dryRun bool

	stages [][]*cli.Step
	words  [][][]string
}

func (c *command) Flags(fs *cli.FlagSet) {
	fs.String(&c.file, "file", "", "read the steps from `FILE` (YAML or JSON)")
	fs.Alias("f", "file")
	fs.Bool(&c.dryRun, "dry-run", "validate every step and print the plan; run nothing")
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	var err error
	switch {
	case c.file != "" && len(args) > 0:
		return nil, errors.New("give steps as arguments or in --file, not both")
	case c.file != "":
		b, rerr := os.ReadFile(c.file)
		if rerr != nil {
			var pe *os.PathError
			if errors.As(rerr, &pe) {
				rerr = pe.Err
			}
			return nil, fmt.Errorf("--file %s: %w", c.file, rerr)
		}
		if c.words, err = parseFile(b); err != nil {
			return nil, fmt.Errorf("--file %s: %w", c.file, err)
		}
	default:
		for i, a := range args {
			groups, err := splitWords(a)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", i+1, err)
			}
			if len(groups) == 0 {
				return nil, fmt.Errorf("step %d is empty", i+1)
			}
			c.words = append(c.words, groups)
		}
	}
	if len(c.words) == 0 {
		return nil, errors.New("no steps: give each as an argument ('waitfor dns mydb') or --file")
	}
	byName := map[string]*cli.Applet{}
	for i := range env.Table {
		byName[env.Table[i].Name] = &env.Table[i]
	}
	for i, stage := range c.words {
		var steps []*cli.Step
		for j, words := range stage {
			label := stepLabel(i, j, len(stage))
			a := byName[words[0]]
			switch {
			case words[0] == Applet.Name:
				return nil, fmt.Errorf("step %s: run cannot be a step of run", label)
			case a == nil:
				return nil, fmt.Errorf("step %s: unknown applet %q (applets: %s)", label, words[0], strings.Join(env.Applets, ", "))
			}
			s, err := cli.PrepareStep(env, a, label+" "+a.Name, words[1:])
			if err != nil {
				return nil, fmt.Errorf("step %s: %s: %w", label, a.Name, err)
			}
			steps = append(steps, s)
		}
		c.stages = append(c.stages, steps)
	}
	return nil, nil
}

// stepLabel numbers stages from 1 and the parallel steps of a stage a, b, c…
func stepLabel(stage, step, n int) string {
	if n == 1 {
		return fmt.Sprint(stage + 1)
	}
	if step < 26 {
		return fmt.Sprintf("%d%c", stage+1, 'a'+step)
	}
	return fmt.Sprintf("%d.%d", stage+1, step+1)
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	n := 0
	for _, st := range c.stages {
		n += len(st)
	}
	if c.dryRun {
		c.plan(env)
		return fmt.Sprintf("%d steps in %d stages, all valid (dry run)", n, len(c.stages)), nil
	}
	for _, st := range c.stages {
		if err := c.stage(ctx, env, st); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d steps done", n), nil
}

// stage runs st's steps at once and waits for all; the first failure
// cancels the others and is what the stage returns.
func (c *command) stage(ctx context.Context, env *cli.Env, st []*cli.Step) error {
	if len(st) == 1 {
		return c.step(ctx, env, st[0])
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, s := range st {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.step(sctx, env, s)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = err
				cancel(fmt.Errorf("cancelled: step %s failed", s.Label))
			}
		}()
	}
	wg.Wait()
	return first
}

func (c *command) step(ctx context.Context, env *cli.Env, s *cli.Step) error {
	summary, err := s.Run(ctx)
	if err != nil {
		return fmt.Errorf("step %s: %w", s.Label, err)
	}
	env.Log.Info("step done", "step", s.Label, "outcome", summary)
	return nil
}

// plan prints the stages and steps, each step's words quoted so that it
// could be pasted back.
func (c *command) plan(env *cli.Env) {
	for i, stage := range c.words {
		if len(stage) == 1 {
			fmt.Fprintf(env.Stdout, "%-4s %s\n", stepLabel(i, 0, 1), quoteWords(stage[0]))
			continue
		}
		fmt.Fprintf(env.Stdout, "%-4s in parallel:\n", stepLabel(i, 0, 1))
		for j, words := range stage {
			fmt.Fprintf(env.Stdout, "  %-4s %s\n", stepLabel(i, j, len(stage)), quoteWords(words))
		}
	}
}

func quoteWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && !strings.ContainsAny(w, " \t\r\n'\"\\$`&|;<>(){}*?[]#~") {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// parseFile reads the file form: a list of steps, or {steps: [...]}. A step
// is a string (split as an argument is), a list of words, or
// {parallel: [steps]}.
func parseFile(b []byte) ([][][]string, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	if m, ok := doc.(map[string]any); ok {
		for k := range m {
			if k != "steps" {
				return nil, fmt.Errorf("unknown key %q: want steps", k)
			}
		}
		doc = m["steps"]
	}
	list, ok := doc.([]any)
	if !ok {
		return nil, errors.New("want a list of steps (or steps: followed by one)")
	}
	var stages [][][]string
	for i, item := range list {
		if m, ok := item.(map[string]any); ok {
			par, ok := m["parallel"].([]any)
			if len(m) != 1 || !ok || len(par) == 0 {
				return nil, fmt.Errorf("step %d: a map is {parallel: [steps]}", i+1)
			}
			var stage [][]string
			for j, p := range par {
				groups, err := fileStep(p)
				if err != nil {
					return nil, fmt.Errorf("step %d, parallel step %d: %w", i+1, j+1, err)
				}
				stage = append(stage, groups...)
			}
			stages = append(stages, stage)
			continue
		}
		groups, err := fileStep(item)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		stages = append(stages, groups)
	}
	return stages, nil
}

func fileStep(item any) ([][]string, error) {
	switch v := item.(type) {
	case string:
		groups, err := splitWords(v)
		if err == nil && len(groups) == 0 {
			err = errors.New("empty")
		}
		return groups, err
	case []any:
		words := make([]string, len(v))
		for i, w := range v {
			s, ok := w.(string)
			if !ok {
				// YAML reads 8080 as a number; a word is its text.
				b, _ := yaml.Marshal(w)
				s = strings.TrimSpace(string(b))
				if _, isMap := w.(map[string]any); isMap || s == "" {
					return nil, fmt.Errorf("word %d is not a string", i+1)
				}
			}
			words[i] = s
		}
		if len(words) == 0 {
			return nil, errors.New("empty")
		}
		return [][]string{words}, nil
	}
	return nil, errors.New("want a string, a list of words or {parallel: [...]}")
}
