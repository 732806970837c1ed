package prepare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

func run(t *testing.T, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, nil, args...)
}

func ownerOf(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// mode is p's mode bits as chmod(2) sees them, setuid, setgid and sticky
// included.
func mode(t *testing.T, p string) uint32 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Mode & 0o7777
}

func TestPrepareIdempotent(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners can only be set as root")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.conf")
	os.WriteFile(src, []byte("listen 80\n"), 0o600)
	args := []string{
		"--dir", filepath.Join(dir, "data/es") + ":0775:1000:1000",
		"--dir", filepath.Join(dir, "data/logs"),
		"--copy", src + ":" + filepath.Join(dir, "conf/app.conf"),
		"--mode", "0640",
		"--symlink", "es:" + filepath.Join(dir, "data/current"),
	}
	os.MkdirAll(filepath.Join(dir, "conf"), 0o755)
	r := run(t, args...)
	r.MustExit(t, 0, "mkdir "+filepath.Join(dir, "data/es"), "copy "+src)
	if u, g := ownerOf(t, filepath.Join(dir, "data/es")); u != 1000 || g != 1000 || mode(t, filepath.Join(dir, "data/es")) != 0o775 {
		t.Fatalf("data/es: %d:%d %04o", u, g, mode(t, filepath.Join(dir, "data/es")))
	}
	if mode(t, filepath.Join(dir, "data/logs")) != 0o755 {
		t.Fatal("data/logs mode")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "conf/app.conf")); string(b) != "listen 80\n" || mode(t, filepath.Join(dir, "conf/app.conf")) != 0o640 {
		t.Fatalf("copy: %q %04o", b, mode(t, filepath.Join(dir, "conf/app.conf")))
	}
	if l, _ := os.Readlink(filepath.Join(dir, "data/current")); l != "es" {
		t.Fatalf("symlink to %q", l)
	}
	mtime := func(p string) time.Time { fi, _ := os.Stat(p); return fi.ModTime() }
	before := mtime(filepath.Join(dir, "conf/app.conf"))
	time.Sleep(20 * time.Millisecond)
	run(t, args...).MustExit(t, 0, `msg="nothing to change"`)
	if !mtime(filepath.Join(dir, "conf/app.conf")).Equal(before) {
		t.Fatal("the second run rewrote the copy")
	}
	// A changed source is copied again.
	os.WriteFile(src, []byte("listen 8080\n"), 0o600)
	run(t, args...).MustExit(t, 0, "copy "+src)
}

// -R never follows a symlink out of the tree, and never changes a link's
// target through it.
func TestRecursiveDoesNotFollowSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners can only be set as root")
	}
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	os.WriteFile(outside, []byte("keep"), 0o600)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "a/b"), 0o700)
	os.WriteFile(filepath.Join(tree, "a/b/f"), []byte("x"), 0o600)
	os.Symlink(outside, filepath.Join(tree, "a/escape"))
	os.Symlink(dir, filepath.Join(tree, "a/up"))
	// The two-word forms, as chown and chmod are usually written.
	run(t, "--chown", "1000:1000", tree, "--chmod", "0750", tree, "-R").MustExit(t, 0)
	for _, p := range []string{tree, filepath.Join(tree, "a"), filepath.Join(tree, "a/b"), filepath.Join(tree, "a/b/f")} {
		if u, g := ownerOf(t, p); u != 1000 || g != 1000 || mode(t, p) != 0o750 {
			t.Errorf("%s: %d:%d %04o", p, u, g, mode(t, p))
		}
	}
	if u, _ := ownerOf(t, outside); u != 0 || mode(t, outside) != 0o600 {
		t.Fatalf("followed a symlink out: %s is %d %04o", outside, u, mode(t, outside))
	}
	if u, _ := ownerOf(t, dir); u != 0 {
		t.Fatal("followed a symlink to the parent")
	}
	run(t, "--chown", "1000:1000:"+tree, "--chmod", "0750:"+tree, "-R").MustExit(t, 0, `msg="nothing to change"`)
}

// Setuid, setgid and sticky bits are applied exactly, owners before modes
// (a chown clears setuid), and a second run changes nothing.
func TestSpecialModeBits(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners can only be set as root")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "tool")
	os.WriteFile(src, []byte("#!/bin/true\n"), 0o755)
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	args := []string{
		"--dir", filepath.Join(dir, "tmp") + ":1777",
		"--dir", filepath.Join(dir, "shared") + ":2775:1000:1000",
		"--chmod", "4755:" + f, "--chown", "1000:1000:" + f,
		"--copy", src + ":" + filepath.Join(dir, "tool.copy"), "--mode", "4755",
	}
	run(t, args...).MustExit(t, 0)
	for p, want := range map[string]uint32{"tmp": 0o1777, "shared": 0o2775, "f": 0o4755, "tool.copy": 0o4755} {
		if got := mode(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s: mode %04o, want %04o", p, got, want)
		}
	}
	run(t, args...).MustExit(t, 0, `msg="nothing to change"`)
}

// A symlink in a path given is refused, naming it, and nothing beyond it
// changes: with a trailing slash, in the middle, or as the path itself.
func TestLinkInGivenPathIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners can only be set as root")
	}
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o700)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
	vol := filepath.Join(dir, "data")
	os.MkdirAll(vol, 0o755)
	os.Symlink(outside, filepath.Join(vol, "logs"))
	logs := filepath.Join(vol, "logs")
	for _, args := range [][]string{
		{"--chown", "1000:1000:" + logs + "/"},
		{"--chown", "1000:1000:" + logs, "-R"},
		{"--chmod", "0777:" + logs + "/secret"},
		{"--chmod", "0777:" + logs},
		{"--dir", logs + "/new:0777"},
		{"--copy", filepath.Join(outside, "secret") + ":" + logs + "/copy"},
		{"--symlink", "x:" + logs + "/l"},
	} {
		run(t, args...).MustExit(t, 1, logs+" is a symlink: prepare follows none")
	}
	if u, _ := ownerOf(t, outside); u != 0 || mode(t, outside) != 0o700 || mode(t, filepath.Join(outside, "secret")) != 0o600 {
		t.Fatal("changed what the link points to")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("created through the link: %v", ents)
	}
}

// A link swapped in for a directory while -R walks is never followed: the
// walk enters each directory through the descriptor it inspected.
func TestRecursiveRaceWithLinkSwaps(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners can only be set as root")
	}
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o700)
	os.WriteFile(filepath.Join(outside, "f"), nil, 0o600)
	tree := filepath.Join(dir, "tree")
	for i := 0; i < 50; i++ {
		os.MkdirAll(filepath.Join(tree, fmt.Sprintf("d%02d", i), "sub"), 0o700)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Swap each directory for a link out and back, as fast as it can.
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := filepath.Join(tree, fmt.Sprintf("d%02d", i%50))
			if os.Rename(d, d+".x") == nil {
				os.Symlink(outside, d)
				os.Remove(d)
				os.Rename(d+".x", d)
			}
		}
	}()
	for i := 0; i < 20; i++ {
		testenv.Run(t, context.Background(), Applet, nil, "--chown", fmt.Sprintf("%d:%d:%s", 2000+i, 2000+i, tree), "--chmod", "0751:"+tree, "-R")
	}
	close(stop)
	<-done
	for _, p := range []string{outside, filepath.Join(outside, "f")} {
		if u, _ := ownerOf(t, p); u != 0 || (mode(t, p) != 0o700 && mode(t, p) != 0o600) {
			t.Fatalf("followed a swapped-in link: %s is %d %04o", p, u, mode(t, p))
		}
	}
}

// Without root, a chown it cannot do names the path and what is needed.
func TestChownWithoutRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "dropping to another user needs root")
	}
	// Not t.TempDir(): its parent is 0700, which the other user cannot enter.
	dir, err := os.MkdirTemp("", "initbox-prepare-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o666)
	os.Chown(f, 65534, 65534)
	cmd := exec.Command(testenv.Binary(t), "prepare", "--chown", "1000:1000:"+f, "--termination-log", "")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "chown "+f+" to 1000:1000") || !strings.Contains(string(out), "runAsUser: 0") {
		t.Fatalf("exit %v:\n%s", err, out)
	}
}

// As the elasticsearch example runs it: root with only the CHOWN
// capability, as the restricted-minus-CHOWN securityContext gives. A real
// kubelet found --dir PATH:MODE:UID:GID failing there: the mode was set
// after the owner, which then needs FOWNER.
func TestDirWithOnlyCapChown(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "running with only CAP_CHOWN needs root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		testenv.Skip(t, "setpriv is not installed (apt-get install util-linux)")
	}
	dir, err := os.MkdirTemp("", "initbox-prepare-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	capChown := func(args ...string) (string, error) {
		all := append([]string{"--bounding-set", "-all,+chown", "--inh-caps", "-all", "--", testenv.Binary(t), "prepare"}, args...)
		out, err := exec.Command("setpriv", append(all, "--termination-log", "")...).CombinedOutput()
		return string(out), err
	}
	nodes := filepath.Join(dir, "data", "nodes")
	for i := 0; i < 2; i++ { // the second run finds everything done
		out, err := capChown("--dir", nodes+":2775:1000:1000", "--chown", "1000:1000:"+filepath.Join(dir, "data"), "-R")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		fi, err := os.Stat(nodes)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModePerm != 0o775 || fi.Mode()&os.ModeSetgid == 0 || st.Uid != 1000 || st.Gid != 1000 {
			t.Fatalf("run %d: %s is %v %d:%d, want 2775 1000:1000\n%s", i, nodes, fi.Mode(), st.Uid, st.Gid, out)
		}
	}
	// A mode on a tree that is another user's needs FOWNER: said so.
	out, err := capChown("--chmod", "0700:"+nodes)
	if err == nil || !strings.Contains(out, "FOWNER") {
		t.Fatalf("chmod of uid 1000's directory with only CHOWN: %v\n%s", err, out)
	}
}

func TestPrepareBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to do"},
		{[]string{"/data"}, `unexpected argument "/data"`},
		{[]string{"--dir", "/x:0999"}, "invalid mode"},
		{[]string{"--dir", "/x:0755:1000"}, "want PATH[:MODE[:UID:GID]]"},
		{[]string{"--chown", "a:b:/x"}, "want numeric UID:GID"},
		{[]string{"--chown", "1000"}, "want UID:GID:PATH"},
		{[]string{"--chown", "1000:1000"}, "--chown 1000:1000: which path?"},
		{[]string{"--chmod", "0755", "/a", "/b"}, `unexpected argument "/b"`},
		{[]string{"--chmod", "/x"}, "invalid mode"},
		{[]string{"--copy", "onlyone"}, "want two parts"},
	} {
		run(t, tc.args...).MustExit(t, 2, tc.want)
	}
}
