package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echo is a small applet for testing the machinery every applet shares.
type echo struct {
	n     int
	names []string
	d     time.Duration
	fail  string
	args  []string
}

func (e *echo) Flags(fs *FlagSet) {
	fs.Int(&e.n, "count", 1, "repeat `N` times")
	fs.Alias("c", "count")
	fs.Strings(&e.names, "name", "a `NAME` (repeatable)")
	fs.Duration(&e.d, "delay", 0, "wait `DURATION`")
	fs.String(&e.fail, "fail", "", "fail with `TEXT`")
}

func (e *echo) Prepare(env *Env, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("nothing to echo")
	}
	e.args = args
	return nil, nil
}

func (e *echo) Run(ctx context.Context, env *Env) (string, error) {
	if e.d > 0 {
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(e.d):
		}
	}
	if e.fail != "" {
		return "", errors.New(e.fail)
	}
	for i := 0; i < e.n; i++ {
		env.Stdout.Write([]byte(strings.Join(append(e.args, e.names...), " ") + "\n"))
	}
	return "echoed", nil
}

var testApplets = []Applet{{Name: "echo", Summary: "print", Synopsis: "[flags] WORD...", Help: "Prints words.", New: func() Command { return &echo{} }}}

func runEcho(t *testing.T, env map[string]string, argv ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := Run(context.Background(), testApplets, argv, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, lookup)
	return code, out.String(), errb.String()
}

func TestFlagsAfterPositionalsAndEnvTwins(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		argv []string
		want string
	}{
		{nil, []string{"echo", "a", "--count", "2", "b"}, "a b\na b\n"},
		{nil, []string{"echo", "a", "--count=2"}, "a\na\n"},
		{nil, []string{"initbox", "echo", "-count", "2", "a"}, "a\na\n"},
		{nil, []string{"echo", "--", "--count", "2"}, "--count 2\n"},
		{map[string]string{"INITBOX_ECHO_COUNT": "3"}, []string{"echo", "x"}, "x\nx\nx\n"},
		// The flag beats its environment twin.
		{map[string]string{"INITBOX_ECHO_COUNT": "3"}, []string{"echo", "x", "--count", "1"}, "x\n"},
		// A flat twin is another applet's as much as this one's: not read.
		{map[string]string{"INITBOX_COUNT": "3"}, []string{"echo", "x"}, "x\n"},
		{nil, []string{"echo", "x", "--name", "a", "--name", "b"}, "x a b\n"},
		{map[string]string{"INITBOX_ECHO_NAME": "a\nb\n"}, []string{"echo", "x"}, "x a b\n"},
		// GNU short flags: a cluster, a value glued on or next.
		{nil, []string{"echo", "-qc", "2", "x"}, "x\nx\n"},
		{nil, []string{"echo", "-c2", "x"}, "x\nx\n"},
		{nil, []string{"echo", "-qc=2", "x"}, "x\nx\n"},
		{nil, []string{"echo", "x", "-5"}, "x -5\n"},
		{nil, []string{"echo", "--name=", "x"}, "x \n"},
		{nil, []string{"/some/dir/echo", "x"}, "x\n"},
	} {
		code, out, errs := runEcho(t, tc.env, tc.argv...)
		if code != 0 || out != tc.want {
			t.Errorf("%v (env %v): exit %d, out %q, want %q; stderr %s", tc.argv, tc.env, code, out, tc.want, errs)
		}
	}
}

// A flat INITBOX_<FLAG> set for an applet's own flag is not applied (it
// may be meant for another applet of the same pod) and is reported once,
// naming the variable to use; a shared flag's flat twin still works.
func TestFlatTwinWarns(t *testing.T) {
	code, out, errs := runEcho(t, map[string]string{"INITBOX_COUNT": "3", "INITBOX_TIMEOUT": "1h"}, "echo", "x")
	if code != 0 || out != "x\n" || strings.Count(errs, "INITBOX_COUNT") != 1 || !strings.Contains(errs, "$INITBOX_ECHO_COUNT") {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errs)
	}
	// With the new name set too, the old one is not worth a word.
	_, _, errs = runEcho(t, map[string]string{"INITBOX_COUNT": "3", "INITBOX_ECHO_COUNT": "1"}, "echo", "x")
	if strings.Contains(errs, "INITBOX_COUNT") {
		t.Fatalf("warned although the new twin is set: %q", errs)
	}
}

func TestBadUsageIsExit2WithOneLine(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		argv []string
		want string
	}{
		{nil, []string{"echo", "--count", "x", "a"}, `echo: invalid value "x" for --count: not a whole number`},
		{nil, []string{"echo", "--delay", "banana", "a"}, `echo: invalid value "banana" for --delay: not a duration`},
		{nil, []string{"echo", "--delay", "-1s", "a"}, `negative duration`},
		{nil, []string{"echo", "--nope", "a"}, `echo: unknown flag --nope`},
		{nil, []string{"echo", "a", "--count"}, `echo: --count needs a value`},
		{nil, []string{"echo", "a", "-c"}, `echo: -c needs a value`},
		{nil, []string{"echo", "a", "-qx"}, `echo: unknown flag -x (in -qx)`},
		{nil, []string{"echo", "a", "-qv"}, "exclude each other"},
		{nil, []string{"echo", "a", "--quiet=maybe"}, `invalid value "maybe" for --quiet: want true or false`},
		{map[string]string{"INITBOX_ECHO_COUNT": "x"}, []string{"echo", "a"}, `invalid value "x" for $INITBOX_ECHO_COUNT (the twin of --count)`},
		{map[string]string{"INITBOX_TIMEOUT": "soon"}, []string{"echo", "a"}, `invalid value "soon" for $INITBOX_TIMEOUT (the twin of --timeout)`},
		{nil, []string{"echo"}, "echo: nothing to echo"},
		{nil, []string{"echo", "a", "--log-format", "xml"}, `invalid value "xml" for --log-format`},
		{nil, []string{"echo", "a", "-q", "-v"}, "exclude each other"},
	} {
		code, _, errs := runEcho(t, tc.env, tc.argv...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", tc.argv, code, errs, tc.want)
		}
	}
}

func TestDispatchAndHelp(t *testing.T) {
	code, out, _ := runEcho(t, nil, "initbox")
	if code != 0 || !strings.Contains(out, "echo       print") {
		t.Fatalf("list: %d %q", code, out)
	}
	code, _, errs := runEcho(t, nil, "initbox", "nope")
	if code != ExitUsage || !strings.Contains(errs, `unknown applet "nope"`) || !strings.Contains(errs, "echo       print") {
		t.Fatalf("unknown: %d %q", code, errs)
	}
	for _, argv := range [][]string{{"initbox", "help", "echo"}, {"echo", "--help"}, {"initbox", "echo", "-h"}} {
		code, out, _ := runEcho(t, nil, argv...)
		for _, want := range []string{"Usage: echo [flags] WORD...", "-c, --count N", "[$INITBOX_ECHO_COUNT]", "[$INITBOX_TIMEOUT]", "--timeout DURATION", "EXIT STATUS", "143"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("%v: exit %d, help lacks %q:\n%s", argv, code, want, out)
			}
		}
	}
	code, out, _ = runEcho(t, nil, "initbox", "--version")
	if code != 0 || !strings.HasPrefix(out, "initbox ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	tl := filepath.Join(dir, "tl")
	code, _, _ := runEcho(t, nil, "echo", "a", "--termination-log", tl)
	if b, _ := os.ReadFile(tl); code != 0 || string(b) != "echo: echoed" {
		t.Fatalf("success: %d %q", code, b)
	}
	long := strings.Repeat("é", 2000)
	code, _, _ = runEcho(t, map[string]string{"INITBOX_TERMINATION_LOG": tl}, "echo", "a", "--fail", "password=Hunter2 "+long)
	b, _ := os.ReadFile(tl)
	if code != ExitFailed || len(b) > MaxTerminationMessage || !strings.HasPrefix(string(b), "echo: password=REDACTED é") || strings.Contains(string(b), "Hunter2") {
		t.Fatalf("failure: %d, %d bytes %q", code, len(b), string(b)[:60])
	}
	code, _, _ = runEcho(t, nil, "echo", "--count", "x", "a", "--termination-log", tl)
	if b, _ := os.ReadFile(tl); code != ExitUsage || !strings.HasPrefix(string(b), `echo: bad usage: invalid value "x" for --count`) {
		t.Fatalf("usage: %d %q", code, b)
	}
	// The default path is only written when it exists: never created.
	if _, err := os.Stat(DefaultTerminationLog); err == nil {
		t.Skip("this machine has a " + DefaultTerminationLog)
	}
	runEcho(t, nil, "echo", "a")
	if _, err := os.Stat(DefaultTerminationLog); err == nil {
		t.Fatal("created " + DefaultTerminationLog)
	}
}

func TestTimeoutAndSignalExitCodes(t *testing.T) {
	code, _, errs := runEcho(t, nil, "echo", "a", "--delay", "5s", "--timeout", "50ms")
	if code != ExitFailed || !strings.Contains(errs, "timed out after 50ms") {
		t.Fatalf("timeout: %d %q", code, errs)
	}
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(50*time.Millisecond, func() { cancel(&SignalError{Signal: sig}) })
		var out, errb bytes.Buffer
		code := Run(ctx, testApplets, []string{"echo", "a", "--delay", "5s"}, Stdio{Out: &out, Err: &errb}, func(string) (string, bool) { return "", false })
		if code != want {
			t.Errorf("%v: exit %d, want %d (%s)", sig, code, want, errb.String())
		}
	}
}

func TestTruncateMessage(t *testing.T) {
	if got := TruncateMessage("short", 10); got != "short" {
		t.Fatal(got)
	}
	got := TruncateMessage(strings.Repeat("€", 100), 50)
	if len(got) > 50 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "€€") {
		t.Fatalf("%q (%d bytes)", got, len(got))
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "100KB": 100_000, "512MiB": 512 << 20, "1GiB": 1 << 30, "1gib": 1 << 30,
		"1.5GB": 1_500_000_000, "10 MiB": 10 << 20, "2k": 2048, "0": 0, "7b": 7,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1XB", "lots", "99999999999TiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	if FormatBytes(1<<30) != "1GiB" || FormatBytes(1500) != "1500" || HumanBytes(1536) != "1.5 KiB" {
		t.Fatal(FormatBytes(1<<30), FormatBytes(1500), HumanBytes(1536))
	}
}
