package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// renderBench renders a template of n lines with 5 substitutions a line:
// initbox render (text/template), initbox render --envsubst and GNU
// envsubst, interleaved, at 1k, 10k and 100k lines. Times include the
// process start (a few ms), as a pod pays it.
func renderBench(c config, w io.Writer) error {
	gnu, err := exec.LookPath("envsubst")
	if err != nil {
		return fmt.Errorf("GNU envsubst not found (apt-get install gettext-base)")
	}
	dir, err := tmpfsDir(c, "initbox-bench-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(), "A=alpha", "B=bravo-bravo", "C=charlie", "D=1234567890", "E=echo.example.svc.cluster.local")
	const runs = 15
	sizes := []int{1_000, 10_000, 100_000}
	fmt.Fprintf(w, "## render: templates of N lines, 5 substitutions a line (%d runs each, interleaved; medians)\n\n", runs)
	fmt.Fprintf(w, "| lines | substitutions | initbox render | initbox render --envsubst | GNU envsubst | --envsubst vs GNU | --envsubst µs/line |\n|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		var tpl, sh strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&tpl, "line %d: {{ .Env.A }} {{ .Env.B }} x={{ .Env.C }} {{ .Env.D }} host={{ .Env.E }}\n", i)
			fmt.Fprintf(&sh, "line %d: $A ${B} x=$C ${D} host=$E\n", i)
		}
		tplPath := filepath.Join(dir, fmt.Sprintf("t%d.tmpl", n))
		shPath := filepath.Join(dir, fmt.Sprintf("s%d.txt", n))
		if err := os.WriteFile(tplPath, []byte(tpl.String()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(shPath, []byte(sh.String()), 0o644); err != nil {
			return err
		}
		tools := []struct {
			argv  []string
			stdin string
		}{
			{[]string{c.initbox, "render", tplPath, "--out", filepath.Join(dir, "out1"), "-q", "--termination-log", ""}, ""},
			{[]string{c.initbox, "render", "--envsubst", shPath, "--out", filepath.Join(dir, "out2"), "-q", "--termination-log", ""}, ""},
			{[]string{gnu}, shPath},
		}
		times := make([][]time.Duration, len(tools))
		var want string
		for r := 0; r < runs; r++ {
			os.Remove(filepath.Join(dir, "out1"))
			os.Remove(filepath.Join(dir, "out2"))
			for j, t := range tools {
				cmd := exec.Command(t.argv[0], t.argv[1:]...)
				cmd.Env = env
				var out *os.File
				if t.stdin != "" {
					in, err := os.Open(t.stdin)
					if err != nil {
						return err
					}
					if out, err = os.Create(filepath.Join(dir, "out3")); err != nil {
						return err
					}
					cmd.Stdin, cmd.Stdout = in, out
				}
				start := time.Now()
				err := cmd.Run()
				times[j] = append(times[j], time.Since(start))
				if out != nil {
					out.Close()
				}
				if err != nil {
					return fmt.Errorf("%s: %w", strings.Join(t.argv, " "), err)
				}
			}
			// All three wrote the same text.
			for _, f := range []string{"out1", "out2", "out3"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					return err
				}
				if want == "" {
					want = string(b)
				} else if string(b) != want {
					return fmt.Errorf("%s differs from out1 at %d lines", f, n)
				}
			}
		}
		med := func(j int) time.Duration { return quantile(times[j], 0.5) }
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %.2f× | %.2f |\n", n, 5*n, ms(med(0)), ms(med(1)), ms(med(2)),
			med(1).Seconds()/med(2).Seconds(), float64(med(1).Microseconds())/float64(n))
	}
	fmt.Fprintf(w, "\n(\"--envsubst vs GNU\" is initbox's time over GNU's: below 1 is faster.)\n\n")
	return nil
}
