package run

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/fetch"
	"github.com/initbox/initbox/internal/prepare"
	"github.com/initbox/initbox/internal/render"
	"github.com/initbox/initbox/internal/sleep"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/waitfor"
)

// table is the applets a run may use here (the binary's table imports run).
var table = []cli.Applet{Applet, waitfor.Applet, fetch.Applet, render.Applet, prepare.Applet, sleep.Applet}

func run(t *testing.T, args ...string) testenv.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := cli.Run(context.Background(), table, append([]string{"run"}, args...), cli.Stdio{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, os.LookupEnv)
	r := testenv.Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	t.Logf("run %q → exit %d in %s\n%s%s", args, code, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
	return r
}

func TestSplitWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want [][]string
	}{
		{"waitfor dns mydb --timeout 2m", [][]string{{"waitfor", "dns", "mydb", "--timeout", "2m"}}},
		{`  a  'b c'  "d \"e\" \$f \x"  g\ h  `, [][]string{{"a", "b c", `d "e" $f \x`, "g h"}}},
		{`render --set 'k=it'\''s' x""y '' $HOME '$(VAR)'`, [][]string{{"render", "--set", "k=it's", "xy", "", "$HOME", "$(VAR)"}}},
		{"a & b c & d", [][]string{{"a"}, {"b", "c"}, {"d"}}},
		{"fetch 'https://h/?a=1&b=2' x & y '&'", [][]string{{"fetch", "https://h/?a=1&b=2", "x"}, {"y", "&"}}},
		{"a\\\nb", [][]string{{"ab"}}},
		{"   ", nil},
	} {
		got, err := splitWords(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q %v, want %q", c.in, got, err, c.want)
		}
	}
	for in, want := range map[string]string{
		"waitfor dns db && fetch x y": `"&&" is a shell operator`,
		"a | b":                       `"|" is a shell operator`,
		"a ; b":                       `";" is a shell operator`,
		"a > out":                     `">" is a shell operator`,
		// Attached to a word, as a shell reads them too.
		"waitfor dns localhost; sleep 1": `";" in "localhost;" is a shell operator`,
		"waitfor dns db&&fetch x y":      `"&&" in "db&&fetch" is a shell operator`,
		"a|b":                            `"|" in "a|b" is a shell operator`,
		"a >out":                         `">" in ">out" is a shell operator`,
		"a 2>&1":                         `"2>&1" is a shell operator`,
		"sleep 1&":                       `"&" in "1&" is a shell operator`,
		"(a)":                            `"(" in "(a)" is a shell operator`,
		"a # comment":                    `"#" is a shell operator`,
		"echo `id`":                      "a backquote is shell command substitution",
		"echo $(id)":                     "$( is shell command substitution",
		`echo "$(id)"`:                   "$( is shell command substitution",
		"fetch $(URL) /x":                "$(VAR) the kubelet left as written",
		"& a":                            "& with no step before it",
		"a &":                            "& with no step after it",
		"a 'b":                           "an unterminated ' quote",
		`a "b`:                           `an unterminated " quote`,
		`a \`:                            "a backslash at the end",
	} {
		if _, err := splitWords(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// A stage's steps run at once; the next stage starts after all of them.
func TestStagesInOrderStepsInParallel(t *testing.T) {
	dir := t.TempDir()
	a, b := testenv.ClosedAddr(t), testenv.ClosedAddr(t)
	testenv.ListenLater(t, a, 300*time.Millisecond)
	testenv.ListenLater(t, b, 900*time.Millisecond)
	r := run(t, "-v", "waitfor tcp "+a+" --timeout 20s & waitfor tcp "+b+" --timeout 20s",
		"prepare --dir "+filepath.Join(dir, "after"))
	r.MustExit(t, 0, `step="1a waitfor"`, `step="1b waitfor"`, `msg="step done" step="2 prepare"`)
	if _, err := os.Stat(filepath.Join(dir, "after")); err != nil {
		t.Fatal(err)
	}
	// In parallel: 1b was being probed before 1a was ready. In order: step
	// 2 ran after both were done.
	log := r.Stderr
	aReady := strings.Index(log, `msg=ready step="1a waitfor"`)
	bProbed := strings.Index(log, `step="1b waitfor"`)
	bDone := strings.Index(log, `msg="step done" step="1b waitfor"`)
	step2 := strings.Index(log, `step="2 prepare"`)
	if aReady < 0 || bProbed < 0 || bProbed > aReady || bDone < 0 || step2 < bDone {
		t.Fatalf("order: 1a ready at %d, 1b first probed at %d, 1b done at %d, step 2 at %d", aReady, bProbed, bDone, step2)
	}
}

func TestFailureStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	tl := filepath.Join(dir, "termination-log")
	closed := testenv.ClosedAddr(t)
	r := run(t, "--termination-log", tl,
		"prepare --dir "+filepath.Join(dir, "one"),
		"waitfor tcp "+closed+" --timeout 300ms",
		"prepare --dir "+filepath.Join(dir, "three"))
	r.MustExit(t, 1, "step 2 waitfor: timed out after 300ms: tcp "+closed+": connection refused")
	if _, err := os.Stat(filepath.Join(dir, "one")); err != nil {
		t.Fatal("step 1 did not run")
	}
	if _, err := os.Stat(filepath.Join(dir, "three")); err == nil {
		t.Fatal("step 3 ran after step 2 failed")
	}
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "run: step 2 waitfor: timed out after 300ms") {
		t.Fatalf("termination message %q", b)
	}

	// In a parallel stage, a failure cancels the other steps at once.
	r = run(t, "waitfor tcp "+closed+" --timeout 300ms & sleep 1m", "prepare --dir "+filepath.Join(dir, "never"))
	r.MustExit(t, 1, "step 1a waitfor: timed out after 300ms")
	if r.Elapsed > 30*time.Second {
		t.Fatalf("the parallel sleep was not cancelled (%s)", r.Elapsed)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Fatal("the next stage ran")
	}
}

// Every step is validated before the first one runs.
func TestBadStepIsFoundBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tpl, []byte("{{ if }}"), 0o644)
	for _, c := range []struct {
		steps []string
		want  string
	}{
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "sleep 0", "fetch http://x/y /z --checksum banana"}, `step 3: fetch: --checksum: invalid checksum "banana"`},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "render " + tpl + " --out " + filepath.Join(dir, "out")}, "step 2: render: " + tpl + ":1: missing value for if"},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "waitfor postgres 'postgres://u@h:notaport/db'"}, "step 2: waitfor:"},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "nosuch thing"}, `step 2: unknown applet "nosuch"`},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "run 'sleep 1'"}, "step 2: run cannot be a step of run"},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "sleep 1 --termination-log /x"}, "a step's outcome goes to run's termination log"},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), "sleep 1 && sleep 2"}, `step 2: "&&" is a shell operator`},
		{[]string{"prepare --dir " + filepath.Join(dir, "one"), ""}, "step 2 is empty"},
		{nil, "no steps"},
	} {
		run(t, c.steps...).MustExit(t, 2, c.want)
		if _, err := os.Stat(filepath.Join(dir, "one")); err == nil {
			t.Fatalf("%q: step 1 ran", c.steps)
		}
	}
}

// The file form means what the argument form means.
func TestFileFormEqualsArgsForm(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "steps.yaml")
	tpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tpl, []byte("port={{ .Values.port }}\n"), 0o644)
	os.WriteFile(f, []byte(`steps:
  - waitfor dns mydb --timeout 2m
  - parallel:
      - waitfor tcp cache:6379
      - [fetch, "https://example.com/a b.tar.gz", /www, --max-size, 10MiB]
      - sleep 1 & sleep 2
  - [render, `+tpl+`, --out, "`+dir+`/x y", --set, port=8080]
`), 0o644)
	args := []string{"waitfor dns mydb --timeout 2m",
		"waitfor tcp cache:6379 & fetch 'https://example.com/a b.tar.gz' /www --max-size 10MiB & sleep 1 & sleep 2",
		"render " + tpl + " --out '" + dir + "/x y' --set port=8080"}
	fromFile := run(t, "-f", f, "--dry-run")
	fromFile.MustExit(t, 0)
	fromArgs := run(t, append([]string{"--dry-run"}, args...)...)
	fromArgs.MustExit(t, 0)
	want := fmt.Sprintf(`1    waitfor dns mydb --timeout 2m
2    in parallel:
  2a   waitfor tcp cache:6379
  2b   fetch 'https://example.com/a b.tar.gz' /www --max-size 10MiB
  2c   sleep 1
  2d   sleep 2
3    render %s --out '%s/x y' --set port=8080
`, tpl, dir)
	if fromFile.Stdout != want || fromArgs.Stdout != want {
		t.Fatalf("plans differ:\nfile:\n%s\nargs:\n%s\nwant:\n%s", fromFile.Stdout, fromArgs.Stdout, want)
	}
	for content, msg := range map[string]string{
		"steps: 3":               "want a list of steps",
		"stepz: []":              `unknown key "stepz"`,
		"- {parallel: x}":        "a map is {parallel: [steps]}",
		"- [sleep, {a: 1}]":      "word 2 is not a string",
		"- 'sleep 1 && sleep 2'": "shell operator",
		"- [a\n":                 "yaml:",
	} {
		os.WriteFile(f, []byte(content), 0o644)
		run(t, "-f", f).MustExit(t, 2, msg)
	}
	run(t, "-f", f, "sleep 1").MustExit(t, 2, "not both")
}

// SIGTERM during a parallel stage stops every step: exit 143, and the
// download in progress leaves no temporary file.
func TestSIGTERMStopsAParallelStage(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000000")
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		select {
		case started <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer slow.Close()
	cmd := exec.Command(bin, "run", "--termination-log", "",
		"waitfor tcp "+testenv.ClosedAddr(t)+" & fetch "+slow.URL+"/big.bin "+filepath.Join(dir, "big.bin")+" --max-size 1GiB",
		"prepare --dir "+filepath.Join(dir, "never"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the download did not start")
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
		t.Fatalf("exit %v after SIGTERM:\n%s", err, stderr.String())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v\n%s", ents, stderr.String())
	}
	if !strings.Contains(stderr.String(), "terminated by SIGTERM") {
		t.Fatal(stderr.String())
	}
}
