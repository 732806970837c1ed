package waitfor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
)

// frobKind is a kind of the test's own, declared as a kind's file declares
// one: with it in the table and no other edit, the applet's summary,
// synopsis, help, examples, target forms, flags and the check that a flag
// applies all know it.
var frobKind = &kind{
	name: "frob", aliases: []string{"frobnicator"}, rank: 1000, noun: "frobnicators",
	usage: "frob NAME", urlForm: "frob:NAME",
	help:     `NAME has been frobbed --frobs times`,
	more:     "FROBBING\nA section of the kind's own.",
	examples: []string{"frob widget --frobs 3"},
	schemes:  []string{"frob"},
	options:  func() kindOptions { return &frobOptions{} },
}

type frobOptions struct{ frobs int }

func (k *frobOptions) flags(fs *cli.FlagSet) {
	fs.Int(&k.frobs, "frobs", 1, "ready after `N` checks")
}

func (k *frobOptions) check() error {
	if k.frobs < 1 {
		return errors.New("--frobs: want 1 or more")
	}
	return nil
}

func (k *frobOptions) probe(_ *options, target string) (probe, error) {
	if target == "never" {
		return &frobProbe{left: -1}, nil
	}
	return &frobProbe{left: int64(k.frobs)}, nil
}

// frobProbe is ready at its left-th check; never, with left < 0.
type frobProbe struct{ left int64 }

func (p *frobProbe) Check(context.Context) error {
	if atomic.LoadInt64(&p.left) >= 0 && atomic.AddInt64(&p.left, -1) <= 0 {
		return nil
	}
	return errors.New("not frobbed yet")
}

// withFrob puts frobKind in the table for the test, and returns the
// applet as describe builds it then.
func withFrob(t *testing.T, still time.Duration) cli.Applet {
	saved := kinds
	t.Cleanup(func() { kinds = saved })
	register(frobKind)
	a := describe(template)
	a.New = func() cli.Command { return &command{o: options{stillEvery: still}} }
	return a
}

func TestANewKindNeedsOnlyItsFile(t *testing.T) {
	a := withFrob(t, 0)
	for what, text := range map[string]string{"summary": a.Summary, "synopsis": a.Synopsis, "help": a.Help} {
		for _, want := range map[string][]string{
			"summary":  {"frobnicators are ready"},
			"synopsis": {"frob (frobnicator)", "frob:NAME"},
			"help":     {"  frob NAME       NAME has been frobbed --frobs times", "FROBBING\nA section", "  waitfor frob widget --frobs 3"},
		}[what] {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, text)
			}
		}
	}
	run := func(args ...string) testenv.Result {
		return testenv.Run(t, context.Background(), a, nil, append(args, "--interval", "10ms")...)
	}
	run("frob", "w", "--frobs", "3").MustExit(t, 0, "frob w")
	run("frobnicator", "w").MustExit(t, 0, "frob w")
	run("frob:w", "tcp://127.0.0.1:1", "--any").MustExit(t, 0, "frob w")
	run("frob", "w", "--frobs", "0").MustExit(t, 2, "--frobs: want 1 or more")
	run("tcp", "127.0.0.1:1", "--frobs", "2").MustExit(t, 2, "--frobs applies to frob targets")
	run("bogus:w").MustExit(t, 2, "frob:NAME")
	h := run("--help")
	for _, want := range []string{"--frobs N", "frob: ready after N checks", "[$INITBOX_WAITFOR_FROBS]"} {
		if h.Code != 0 || !strings.Contains(h.Stdout, want) {
			t.Errorf("help (exit %d) lacks %q:\n%s", h.Code, want, h.Stdout)
		}
	}
}

// Every flag a kind owns, given with a target of a kind that does not take
// it, is bad usage naming the kinds that do, before any probe; and with a
// target of each kind that does take it, it is accepted. The matrix is the
// table's: every kind against every kind's flag.
func TestEveryFlagAppliesToItsKindsOnly(t *testing.T) {
	fs := cli.NewFlagSet("waitfor")
	(&command{}).Flags(fs)
	owned := map[string][]string{}
	for _, k := range kinds {
		one := cli.NewFlagSet("waitfor")
		one.Group(k.name)
		k.options().flags(one)
		for _, g := range one.Names() {
			owned[g] = fs.Owners(g)
		}
	}
	owned["ca-file"] = fs.Owners("ca-file")
	owned["cert-file"] = fs.Owners("cert-file")
	if len(owned) < 20 {
		t.Fatalf("only %d kind flags found", len(owned))
	}
	cases := 0
	for name, owners := range owned {
		for _, k := range kinds {
			takes := false
			for _, o := range owners {
				takes = takes || o == k.name
			}
			if takes {
				continue
			}
			cases++
			args := []string{k.name, "target", "--" + name}
			if !fs.IsBool(name) {
				args = append(args, "1")
			}
			r := testenv.Run(t, context.Background(), Applet, nil, args...)
			r.MustExit(t, 2, fmt.Sprintf("--%s applies to %s targets", name, orList(owners)))
		}
	}
	t.Logf("%d flags owned by kinds, %d kind × flag refusals checked", len(owned), cases)
	// Through the environment twin the message names the variable.
	r := testenv.Run(t, context.Background(), Applet, map[string]string{"INITBOX_WAITFOR_STATUS": "200"}, "tcp", "127.0.0.1:1")
	r.MustExit(t, 2, "$INITBOX_WAITFOR_STATUS (--status) applies to http targets")
}

// The help of every kind, and its row in README, are there: the help is
// built from the table, the README is not.
func TestEveryKindInHelpAndReadme(t *testing.T) {
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	_, help := Applet.Describe()
	for _, k := range kinds {
		if !strings.Contains(help, "  "+k.usage+" ") {
			t.Errorf("help lacks the kind %s", k.name)
		}
		if !strings.Contains(readme, "- **"+k.usage+"**") {
			t.Errorf("README's waitfor section lacks a bullet \"- **%s**\"", k.usage)
		}
		if !strings.Contains(Applet.Summary, k.noun) {
			t.Errorf("summary lacks %q", k.noun)
		}
	}
}

// Without -v a wait logs one "still waiting" line per interval with the
// last reason, then the verdict — judged with the test's own probe and a
// short interval, not ten seconds of a real one.
func TestStillWaitingLines(t *testing.T) {
	a := withFrob(t, 100*time.Millisecond)
	r := testenv.Run(t, context.Background(), a, nil, "frob", "never", "--interval", "10ms", "--max-interval", "10ms", "--timeout", "550ms")
	r.MustExit(t, 1, `msg="still waiting" target="frob never"`, `reason="not frobbed yet"`, "timed out after 550ms")
	n := strings.Count(r.Stderr, "still waiting")
	if n < 3 || n > 5 {
		t.Fatalf("%d still-waiting lines in 550 ms at one per 100 ms, want 3 to 5:\n%s", n, r.Stderr)
	}
	if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n") + 1; lines != n+1 {
		t.Fatalf("%d log lines, want %d (still waiting ×%d, then the verdict):\n%s", lines, n+1, n, r.Stderr)
	}
	// With --any, the ready one wins at once and the never-ready one is cut.
	r = testenv.Run(t, context.Background(), a, nil, "frob:never", "frob:w", "--any", "--interval", "10ms", "--timeout", "5s")
	r.MustExit(t, 0, "frob w")
	// Every target ready: ready after the slowest, every one named.
	r = testenv.Run(t, context.Background(), a, nil, "frob", "a", "b", "--frobs", "5", "--interval", "10ms", "--timeout", "5s")
	r.MustExit(t, 0, `msg=ready target="frob a" elapsed=`, `msg=ready target="frob b" elapsed=`, "attempts=5", "msg=done ready=2")
}
