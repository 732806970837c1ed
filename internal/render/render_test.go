package render

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func run(t *testing.T, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, nil, append(args, "--termination-log", "")...)
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// One template over every source of data: the environment, a downwardAPI
// volume with values written as the kubelet writes them, two values files
// and --set, through sprig's and initbox's functions.
func TestGolden(t *testing.T) {
	testenv.PodEnv(t)
	podinfo := testenv.Podinfo(t, map[string]string{
		"labels":      testenv.KubeletMap(testenv.HardLabels),
		"annotations": testenv.KubeletMap(map[string]string{"example.com/note": "multi\nline ✓"}),
		"name":        "web-0-from-volume",
		"limits/cpu":  "2",
	})
	secret := write(t, filepath.Join(t.TempDir(), "password"), "pa$$word'\"\n")
	out := filepath.Join(t.TempDir(), "app.conf")
	run(t, "testdata/golden/app.conf.tmpl", "--out", out, "--podinfo", podinfo,
		"--values", "testdata/golden/values.yaml", "--values", "testdata/golden/override.json",
		"--set", "replicas=3", "--set", "passwordFile="+secret).MustExit(t, 0, "msg=rendered")
	got := testenv.ReadFile(t, out)
	golden := "testdata/golden/app.conf"
	if *update {
		write(t, golden, got)
	}
	if want := testenv.ReadFile(t, golden); got != want {
		t.Fatalf("got:\n%s\nwant (%s):\n%s", got, golden, want)
	}
	fi, _ := os.Stat(out)
	if tfi, _ := os.Stat("testdata/golden/app.conf.tmpl"); fi.Mode() != tfi.Mode() {
		t.Errorf("mode %v, want the template's %v", fi.Mode(), tfi.Mode())
	}
}

// snapshot is what a failed run must leave alone: the content, the mtime
// and the directory's entries (no temporary file).
type snapshot struct {
	content string
	mtime   time.Time
	entries string
}

func snap(t *testing.T, path string) snapshot {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return snapshot{testenv.ReadFile(t, path), fi.ModTime(), strings.Join(names, " ")}
}

func TestBadInputLeavesTheOutputUntouched(t *testing.T) {
	dir := t.TempDir()
	out := write(t, filepath.Join(dir, "out", "app.conf"), "OLD\n")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(out, old, old)
	before := snap(t, out)

	missing := write(t, filepath.Join(dir, "missing.tmpl"), "a\nb = {{ .Values.b }}\n")
	syntax := write(t, filepath.Join(dir, "syntax.tmpl"), "a\n\n{{ if .Values.x }}\n")
	fifo := filepath.Join(dir, "fifo.tmpl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	file := write(t, filepath.Join(dir, "afile"), "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{missing, "--out", out}, `missing.tmpl:2:14: executing "` + missing + `" at <.Values.b>: map has no entry for key "b"`},
		{[]string{syntax, "--out", out}, "syntax.tmpl:4: unexpected EOF"},
		{[]string{filepath.Join(dir, "nope.tmpl"), "--out", out}, "nope.tmpl: no such file or directory"},
		{[]string{fifo, "--out", out}, "fifo.tmpl: not a regular file"},
		{[]string{missing, "--out", out, "--set", "b=1", "--values", filepath.Join(dir, "nope.yaml")}, "nope.yaml: no such file or directory"},
		{[]string{missing, "--out", filepath.Join(file, "app.conf"), "--set", "b=1"}, file + " is not a directory"},
		{[]string{missing, "--out", out, "--missing-key", "maybe"}, `invalid value "maybe" for --missing-key`},
		{[]string{missing, "--out", out, "--mode", "999"}, `invalid value "999" for --mode`},
		{[]string{missing, "--out", out, "--envsubst-vars", "A"}, "--envsubst-vars and --allow-unset go with --envsubst"},
		{[]string{missing, "--out", out, "--envsubst", "--set", "b=1"}, "--envsubst reads only the environment"},
		{[]string{missing}, "--out is required"},
	} {
		run(t, c.args...).MustExit(t, 2, c.want)
		if after := snap(t, out); after != before {
			t.Fatalf("%v changed the output: %+v, was %+v", c.args, after, before)
		}
	}
}

func TestUnchangedKeepsTheFileAndChangedReplacesIt(t *testing.T) {
	dir := t.TempDir()
	tpl := write(t, filepath.Join(dir, "t.conf.tmpl"), "v={{ .Values.v }}\n")
	out := filepath.Join(dir, "out", "t.conf")
	run(t, tpl, "--out", out, "--set", "v=1").MustExit(t, 0, "msg=rendered")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(out, old, old)
	var st1 syscall.Stat_t
	syscall.Stat(out, &st1)

	r := run(t, tpl, "--out", out, "--set", "v=1")
	r.MustExit(t, 0, "msg=unchanged")
	fi, _ := os.Stat(out)
	if !fi.ModTime().Equal(old) {
		t.Fatalf("an unchanged output was written: mtime %v, was %v", fi.ModTime(), old)
	}

	run(t, tpl, "--out", out, "--set", "v=2", "--mode", "0600").MustExit(t, 0, "msg=rendered")
	var st2 syscall.Stat_t
	syscall.Stat(out, &st2)
	if testenv.ReadFile(t, out) != "v=2\n" || st2.Ino == st1.Ino || st2.Mode&0o777 != 0o600 {
		t.Fatalf("content %q, inode %d (was %d), mode %o", testenv.ReadFile(t, out), st2.Ino, st1.Ino, st2.Mode&0o7777)
	}
	// A mode alone is a change too.
	run(t, tpl, "--out", out, "--set", "v=2", "--mode", "0640").MustExit(t, 0, "msg=rendered")
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// --out DIR/ renders into the directory, the suffix stripped.
	run(t, tpl, "--out", dir+"/out/", "--set", "v=3").MustExit(t, 0)
	if testenv.ReadFile(t, out) != "v=3\n" {
		t.Fatal(testenv.ReadFile(t, out))
	}
	// --out - writes to stdout and nothing else.
	r = run(t, tpl, "--out", "-", "--set", "v=4")
	r.MustExit(t, 0)
	if r.Stdout != "v=4\n" || testenv.ReadFile(t, out) != "v=3\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
}

// A reader polling the file while it is rendered over and over never sees
// anything but one whole version or the other.
func TestReadersNeverSeeAPartialFile(t *testing.T) {
	dir := t.TempDir()
	a := strings.Repeat("a", 1<<20)
	b := strings.Repeat("b", 1<<20)
	ta := write(t, filepath.Join(dir, "a.tmpl"), a)
	tb := write(t, filepath.Join(dir, "b.tmpl"), b)
	out := filepath.Join(dir, "out.conf")
	run(t, ta, "--out", out).MustExit(t, 0)

	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			got, err := os.ReadFile(out)
			reads.Add(1)
			if err != nil || string(got) != a && string(got) != b {
				bad.Add(1)
			}
		}
	}()
	for i := 0; i < 20; i++ {
		src := ta
		if i%2 == 0 {
			src = tb
		}
		run(t, src, "--out", out, "-q").MustExit(t, 0)
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() > 0 || reads.Load() < 20 {
		t.Fatalf("%d of %d reads saw a partial or missing file", bad.Load(), reads.Load())
	}
}

// A directory of templates shaped like a ConfigMap volume (links through
// ..data, nested paths) renders into a tree swapped whole.
func TestTreeFromAConfigMap(t *testing.T) {
	t.Setenv("GREETING", "hello")
	cm := testenv.Podinfo(t, map[string]string{
		"app.conf.tmpl":          "greeting={{ .Env.GREETING }}\n",
		"conf.d/extra.conf.tmpl": "n={{ .Values.n }}\n",
		"static.txt":             "no actions\n",
	})
	out := filepath.Join(t.TempDir(), "config")
	write(t, filepath.Join(out, "stale.conf"), "from an older version\n")
	run(t, cm, "--out", out, "--set", "n=1").MustExit(t, 0, "msg=rendered")
	want := map[string]string{"app.conf": "greeting=hello\n", "conf.d/extra.conf": "n=1\n", "static.txt": "no actions\n"}
	check := func() {
		t.Helper()
		got := map[string]string{}
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(out, p)
				got[rel] = testenv.ReadFile(t, p)
			}
			return err
		})
		if len(got) != len(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %q, want %q", k, got[k], v)
			}
		}
	}
	check()
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o755 {
		t.Errorf("the directory's mode is %v", fi.Mode())
	}
	run(t, cm, "--out", out, "--set", "n=1").MustExit(t, 0, "msg=unchanged")
	run(t, cm, "--out", out, "--set", "n=2").MustExit(t, 0, "msg=rendered")
	want["conf.d/extra.conf"] = "n=2\n"
	check()
	// A failure leaves the whole tree as it was.
	run(t, cm, "--out", out).MustExit(t, 2, `map has no entry for key "n"`)
	check()
	// Two inputs that land on one path are refused.
	run(t, cm, filepath.Join(cm, "static.txt"), "--out", out, "--set", "n=2").MustExit(t, 2, "both render to static.txt")
}

func TestOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "changing owners needs root")
	}
	dir := t.TempDir()
	tpl := write(t, filepath.Join(dir, "t.tmpl"), "x\n")
	out := filepath.Join(dir, "t")
	run(t, tpl, "--out", out, "--uid", "1234", "--gid", "2345").MustExit(t, 0, "msg=rendered")
	var st syscall.Stat_t
	syscall.Stat(out, &st)
	if st.Uid != 1234 || st.Gid != 2345 {
		t.Fatalf("owner %d:%d", st.Uid, st.Gid)
	}
	run(t, tpl, "--out", out, "--uid", "1234", "--gid", "2345").MustExit(t, 0, "msg=unchanged")
	run(t, tpl, "--out", out, "--uid", "1235").MustExit(t, 0, "msg=rendered")
}

// A file bind-mounted into the container (a subPath mount) cannot be
// renamed over: a clear error, or an in-place write when asked for.
func TestBindMountedFile(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "bind mounts need root")
	}
	dir := t.TempDir()
	src := write(t, filepath.Join(dir, "src.conf"), "OLD\n")
	target := write(t, filepath.Join(dir, "mounted.conf"), "")
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		testenv.Skip(t, "bind mount: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	tpl := write(t, filepath.Join(dir, "t.tmpl"), "NEW {{ .Values.v }}\n")
	run(t, tpl, "--out", target, "--set", "v=1").MustExit(t, 2, "is a mount point", "--in-place")
	if testenv.ReadFile(t, target) != "OLD\n" {
		t.Fatal("changed")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".initbox-tmp-") {
			t.Fatalf("left %s", e.Name())
		}
	}
	run(t, tpl, "--out", target, "--set", "v=1", "--in-place").MustExit(t, 0, "writing in place")
	if testenv.ReadFile(t, target) != "NEW 1\n" || testenv.ReadFile(t, src) != "NEW 1\n" {
		t.Fatalf("%q", testenv.ReadFile(t, target))
	}
}

func TestEnvsubst(t *testing.T) {
	t.Setenv("HOST", "db")
	t.Setenv("EMPTY", "")
	dir := t.TempDir()
	for _, c := range []struct {
		in, want string
		args     []string
	}{
		{"$HOST ${HOST}x ${EMPTY:-d1} ${EMPTY-d2} ${NOPE:-d3} ${NOPE-d4} $$HOST cost 5$ $1 $", "db dbx d1  d3 d4 $HOST cost 5$ $1 $", nil},
		{"${HOST:?need a host} ${HOST?x}", "db db", nil},
		{"$NOPE.", ".", []string{"--allow-unset"}},
		{"$HOST $host ${host} ${HOST:-x} $$", "db $host ${host} ${HOST:-x} $$", []string{"--envsubst-vars", "HOST"}},
		{"${arr[@]} ${#x} $HOST", "${arr[@]} ${#x} db", []string{"--envsubst-vars", "HOST"}},
	} {
		in := write(t, filepath.Join(dir, "in"), c.in)
		r := run(t, append([]string{"--envsubst", in, "-o", "-"}, c.args...)...)
		r.MustExit(t, 0)
		if r.Stdout != c.want {
			t.Errorf("%q: got %q, want %q", c.in, r.Stdout, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"ok\n\nx=$NOPE", "in:3: $NOPE is not set (set it, write ${NOPE:-default}, or give --allow-unset)"},
		{"${NOPE}", "in:1: ${NOPE} is not set"},
		{"a\n${EMPTY:?must not be empty}", "in:2: EMPTY: must not be empty"},
		{"${NOPE?}", "in:1: NOPE: not set"},
		{"${HOST", "in:1: unterminated ${HOST"},
		{"${HOST\n}", "in:1: unterminated ${HOST"},
		{"${1}", `in:1: invalid reference "${1}"`},
		{"${HOST:+x}", `in:1: invalid reference "${HOST:+x}"`},
	} {
		in := write(t, filepath.Join(dir, "in"), c.in)
		run(t, "--envsubst", in, "-o", "-").MustExit(t, 2, c.want)
	}
	run(t, "--envsubst", write(t, filepath.Join(dir, "in"), "$X"), "-o", "-", "--envsubst-vars", "A,9B").
		MustExit(t, 2, `invalid name "9B" in --envsubst-vars`)
}

// --envsubst-vars is GNU envsubst's SHELL-FORMAT mode: over a generated
// matrix of inputs made of references, operators, braces and dollars, both
// write the same bytes.
func TestEnvsubstVarsMatrixAgainstGNU(t *testing.T) {
	gnu, err := exec.LookPath("envsubst")
	if err != nil {
		testenv.Skip(t, "GNU envsubst (gettext-base) is not installed")
	}
	t.Setenv("A", "alpha")
	t.Setenv("_u", "ünï $A ${A}")
	t.Setenv("AB", "not listed")
	pieces := []string{"$", "$$", "${", "}", "A", "_u", "AB", "B", ":-", "-", ":?", "?", ":+", "x", " ", "\n", "{", "1", "#", "[@]", "é"}
	rng := rand.New(rand.NewPCG(15, 11))
	dir := t.TempDir()
	var ins []string
	for i := 0; i < 400; i++ {
		var b strings.Builder
		for n := 1 + rng.IntN(12); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		ins = append(ins, b.String())
	}
	// One run of each: the inputs joined by a separator neither treats
	// specially, then split.
	const sep = "\n--8<--\n"
	joined := strings.Join(ins, sep)
	cmd := exec.Command(gnu, "$A $_u")
	cmd.Stdin = strings.NewReader(joined)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "--envsubst", write(t, filepath.Join(dir, "in"), joined), "-o", "-", "--envsubst-vars", "A,_u")
	r.MustExit(t, 0)
	gotParts, wantParts := strings.Split(r.Stdout, sep), strings.Split(string(want), sep)
	if len(gotParts) != len(ins) || len(wantParts) != len(ins) {
		t.Fatalf("%d and %d parts for %d inputs", len(gotParts), len(wantParts), len(ins))
	}
	bad := 0
	for i := range ins {
		if gotParts[i] != wantParts[i] {
			if bad++; bad <= 10 {
				t.Errorf("input %q:\ninitbox %q\nGNU     %q", ins[i], gotParts[i], wantParts[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d inputs differ", bad, len(ins))
	}
}

// Where both understand the input, initbox's envsubst writes exactly what
// GNU envsubst (gettext-base) writes.
func TestEnvsubstAgainstGNU(t *testing.T) {
	gnu, err := exec.LookPath("envsubst")
	if err != nil {
		testenv.Skip(t, "GNU envsubst (gettext-base) is not installed")
	}
	t.Setenv("A", "alpha")
	t.Setenv("B_2", "b two with $A and ${A} inside")
	t.Setenv("_u", "ünïcödé 世界")
	t.Setenv("EMPTY", "")
	t.Setenv("ML", "line1\nline2")
	inputs := []string{
		"plain text, no references\n",
		"$A ${A} $B_2 ${B_2} $_u ${_u} $EMPTY|${EMPTY}| $ML\n",
		"$A$A${A}$B_2x ${A}x $A-x $A.x $A/x\n",
		"a lone $ and $1 and $- and 5$ and $ at the end $",
		"${ and ${1 and ${} ${-} on a line\n",
		"日本語 $A 日本語\n\n\ttabs $_u\r\nCRLF $A\r\n",
		strings.Repeat("row $A ${B_2} $_u\n", 1000),
	}
	dir := t.TempDir()
	for i, in := range inputs {
		f := write(t, filepath.Join(dir, "in"), in)
		for _, mode := range []struct{ gnuArgs, ours []string }{
			{nil, []string{"--allow-unset"}},
			{[]string{"$A $_u"}, []string{"--envsubst-vars", "A,_u"}},
		} {
			if i == 4 && mode.gnuArgs == nil {
				continue // malformed ${ is an error for initbox, kept as text by GNU
			}
			cmd := exec.Command(gnu, mode.gnuArgs...)
			cmd.Stdin = strings.NewReader(in)
			want, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, append([]string{"--envsubst", f, "-o", "-"}, mode.ours...)...)
			r.MustExit(t, 0)
			if !bytes.Equal([]byte(r.Stdout), want) {
				t.Errorf("input %d %v:\ninitbox %q\nGNU     %q", i, mode.gnuArgs, r.Stdout, want)
			}
		}
	}
}
