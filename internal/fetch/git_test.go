package fetch

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// gitCmd runs the real git in dir and returns its trimmed output.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func needGit(t *testing.T) {
	testenv.RealServer(t, "git and git http-backend")
	t.Helper()
	for _, p := range []string{"git", "/usr/lib/git-core/git-http-backend"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "Debian's git is needed for the git suite: "+err.Error())
		}
	}
}

// gitServer serves the bare repositories under root over smart HTTP
// through Debian's git http-backend (CGI), counting the requests: the
// ref listings (GET info/refs) and the pack requests (POST upload-pack).
type gitServer struct {
	*httptest.Server
	lists, packs atomic.Int32
}

func serveGit(t *testing.T, root, user, pw string) *gitServer {
	t.Helper()
	h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	s := &gitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pw {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.lists.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.packs.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// makeRepo builds, with the real git, a repository of the kinds of
// entries a checkout must get right, with a tag, a branch and a commit that
// deletes files; it returns the working repository and a bare clone under
// root named name.git.
func makeRepo(t *testing.T, root, name string, big bool) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), name)
	os.MkdirAll(work, 0o755)
	gitCmd(t, work, "init", "-q", "-b", "main")
	files := map[string]string{
		"README.md":             "hello\n",
		"a/b/c/deep.txt":        "deep\n",
		"bin/run.sh":            "#!/bin/sh\necho run\n",
		"unicode/größe ünï.txt": "ü\n",
		"with space/a b.txt":    "spaces\n",
		"gone-later.txt":        "bye\n",
		".initbox-fetch":        "the repository's own file of this name\n",
		// Names that differ only in case, as in Linux's own headers: both
		// are files of their own, as git clone writes them on Linux.
		"include/xt_CONNMARK.h": "target\n",
		"include/xt_connmark.h": "match\n",
		"Makefile":              "all:\n",
		"makefile":              "lower\n",
	}
	for p, body := range files {
		os.MkdirAll(filepath.Join(work, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(work, p), []byte(body), 0o644)
	}
	os.Chmod(filepath.Join(work, "bin/run.sh"), 0o755)
	os.Symlink("README.md", filepath.Join(work, "link-to-file"))
	os.Symlink("a/b", filepath.Join(work, "link-to-dir"))
	os.Symlink("../../outside", filepath.Join(work, "a/link-up"))
	if big {
		f, _ := os.Create(filepath.Join(work, "big.bin"))
		for i := 0; i < 20<<10; i++ {
			fmt.Fprintf(f, "%01023d\n", i)
		}
		f.Close()
		for i := 0; i < 5000; i++ {
			p := filepath.Join(work, "many", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644)
		}
	}
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "first")
	gitCmd(t, work, "tag", "-a", "v1", "-m", "v1")
	gitCmd(t, work, "tag", "light")
	gitCmd(t, work, "checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(work, "feature.txt"), []byte("feature\n"), 0o644)
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "feature")
	gitCmd(t, work, "checkout", "-q", "main")
	os.Remove(filepath.Join(work, "gone-later.txt"))
	gitCmd(t, work, "commit", "-q", "-am", "delete a file")
	gitCmd(t, root, "clone", "-q", "--bare", work, name+".git")
	return work
}

// gitTree lists a checkout as git stores it: path, kind and mode (the
// executable bit), a symlink's target, a file's sha256; .git and fetch's
// marker left out.
func gitTree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.Base(rel) == ".git" || rel == markerName { // a submodule's .git too
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" l "+l)
		case fi.IsDir():
			out = append(out, rel+" d")
		default:
			b, _ := os.ReadFile(p)
			h := sha256.Sum256(b)
			out = append(out, fmt.Sprintf("%s f %v %s", rel, fi.Mode().Perm()&0o111 != 0, hex.EncodeToString(h[:8])))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// The differential: for each ref, `git clone --depth 1 --branch REF` and
// fetch git:: make the same tree — paths, executable bits, symlink targets,
// contents — over smart HTTP and from file://.
func TestGitCheckoutMatchesGitClone(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	work := makeRepo(t, root, "repo", true)
	srv := serveGit(t, root, "", "")
	url := srv.URL + "/repo.git"
	mainSHA := gitCmd(t, work, "rev-parse", "main")
	for _, ref := range []string{"", "main", "feature", "v1", "light", mainSHA} {
		name := ref
		if name == "" {
			name = "HEAD"
		}
		t.Run(name, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "clone")
			args := []string{"clone", "-q", "--depth", "1"}
			if ref != "" && ref != mainSHA {
				args = append(args, "--branch", ref)
			}
			gitCmd(t, root, append(args, url, want)...)
			for _, src := range []string{"git::" + url, "git::file://" + filepath.Join(root, "repo.git")} {
				if ref != "" {
					src += "?ref=" + ref
				}
				dest := filepath.Join(t.TempDir(), "dest")
				run(t, nil, src, dest).MustExit(t, 0, "msg=fetched")
				if got, exp := gitTree(t, dest), gitTree(t, want); got != exp {
					t.Fatalf("%s: fetch git:: and git clone differ:\nfetch:\n%s\ngit:\n%s", src, got, exp)
				}
				if _, err := os.Lstat(filepath.Join(dest, ".git")); err == nil {
					t.Fatal("a .git in DEST without --git-dir")
				}
				noTemp(t, filepath.Dir(dest))
			}
		})
	}
	// //subdir checks out one directory of the tree.
	dest := filepath.Join(t.TempDir(), "sub")
	run(t, nil, "git::"+url+"//a/b", dest).MustExit(t, 0)
	if got := gitTree(t, dest); !strings.HasPrefix(got, "c d\nc/deep.txt f false") {
		t.Fatalf("//a/b:\n%s", got)
	}
	run(t, nil, "git::"+url+"//link-to-dir", filepath.Join(t.TempDir(), "x")).MustExit(t, 1, "link-to-dir is not a directory in the commit")
}

// A re-run asks the remote once (one ref listing, no pack) and writes
// nothing; a moved branch is swapped in whole; a full SHA already there
// needs no network; --expect-commit guards the ref.
func TestGitIdempotentAndVerified(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	work := makeRepo(t, root, "repo", false)
	srv := serveGit(t, root, "", "")
	src := "git::" + srv.URL + "/repo.git?ref=main"
	dest := filepath.Join(t.TempDir(), "dest")
	run(t, nil, src, dest).MustExit(t, 0, "msg=fetched")
	// A checkout is one ref listing and one pack request.
	lists, packs := srv.lists.Load(), srv.packs.Load()
	if lists != 1 || packs != 1 {
		t.Fatalf("the checkout made %d listings and %d pack requests, want 1 and 1", lists, packs)
	}
	fi1, _ := os.Stat(filepath.Join(dest, "README.md"))
	run(t, nil, src, dest).MustExit(t, 0, `msg="up to date"`)
	if srv.lists.Load() != lists+1 || srv.packs.Load() != packs {
		t.Fatalf("the re-run made %d listings and %d pack requests, want 1 and 0", srv.lists.Load()-lists, srv.packs.Load()-packs)
	}
	if fi2, _ := os.Stat(filepath.Join(dest, "README.md")); !fi2.ModTime().Equal(fi1.ModTime()) {
		t.Fatal("the re-run rewrote the checkout")
	}
	// The branch moves: the new tree replaces the old one whole.
	os.WriteFile(filepath.Join(work, "new.txt"), []byte("new\n"), 0o644)
	os.Remove(filepath.Join(work, "README.md"))
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "move")
	gitCmd(t, work, "push", "-q", filepath.Join(root, "repo.git"), "main")
	run(t, nil, src, dest).MustExit(t, 0, "msg=fetched")
	if _, err := os.Stat(filepath.Join(dest, "README.md")); err == nil {
		t.Fatal("a file deleted upstream is still there")
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "new.txt")); string(b) != "new\n" {
		t.Fatal("the new commit's file is missing")
	}
	// A full SHA already checked out: no network at all.
	sha := gitCmd(t, work, "rev-parse", "main")
	shaSrc := "git::" + srv.URL + "/repo.git?ref=" + sha
	shaDest := filepath.Join(t.TempDir(), "sha")
	run(t, nil, shaSrc, shaDest).MustExit(t, 0, "msg=fetched")
	lists = srv.lists.Load()
	run(t, nil, shaSrc, shaDest).MustExit(t, 0, `msg="up to date"`)
	if srv.lists.Load() != lists {
		t.Fatal("a SHA already checked out asked the remote")
	}
	// --expect-commit: a ref that resolves elsewhere fails, DEST untouched.
	before := gitTree(t, dest)
	run(t, nil, src, dest, "--expect-commit", strings.Repeat("ab", 20)).MustExit(t, 1, "not the expected abab")
	if gitTree(t, dest) != before {
		t.Fatal("DEST changed on a failed --expect-commit")
	}
	run(t, nil, src, dest, "--expect-commit", sha).MustExit(t, 0)
	// Failures that retrying cannot fix are exit 1 at once.
	r := run(t, nil, "git::"+srv.URL+"/repo.git?ref=nosuch", filepath.Join(t.TempDir(), "n"), "--timeout", "60s")
	r.MustExit(t, 1, `the remote has no branch or tag "nosuch"`)
	if r.Elapsed.Seconds() > 10 {
		t.Fatalf("a missing ref took %s", r.Elapsed)
	}
	run(t, nil, "git::"+srv.URL+"/nope.git", filepath.Join(t.TempDir(), "n"), "--timeout", "60s").MustExit(t, 1, "repository not found")
	// --max-size holds for the pack, --max-files for the tree.
	run(t, nil, src, filepath.Join(t.TempDir(), "n"), "--max-size", "100", "--timeout", "60s").MustExit(t, 1, "larger than --max-size")
	run(t, nil, src, filepath.Join(t.TempDir(), "n"), "--max-files", "3", "--timeout", "60s").MustExit(t, 1, "more than 3 entries")
	noTemp(t, filepath.Dir(dest))
}

// Basic auth over smart HTTP: a token file (user:password) works; without
// it, exit 1 at once naming the refusal; the password is never printed.
func TestGitHTTPAuth(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	makeRepo(t, root, "private", false)
	srv := serveGit(t, root, "deploy", "s3cr3t-g1t-pw")
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("deploy:s3cr3t-g1t-pw\n"), 0o600)
	src := "git::" + srv.URL + "/private.git"
	r := run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--git-token-file", tok, "-v")
	r.MustExit(t, 0, "msg=fetched")
	if strings.Contains(r.Stderr, "s3cr3t") {
		t.Fatal("the password was printed")
	}
	r = run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--timeout", "60s")
	r.MustExit(t, 1, "authentication required")
	if r.Elapsed.Seconds() > 10 {
		t.Fatalf("a refused login took %s", r.Elapsed)
	}
	os.WriteFile(tok, []byte("deploy:wrong\n"), 0o600)
	run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--git-token-file", tok, "--timeout", "60s").MustExit(t, 1, "authentication required")
}

// Hostile trees, made with git mktree as an attacker would: each refused
// naming the entry, DEST untouched, nothing left behind.
func TestGitHostileTrees(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	bare := filepath.Join(root, "evil.git")
	gitCmd(t, root, "init", "-q", "--bare", bare)
	blob := func(body string) string {
		cmd := exec.Command("git", "hash-object", "-w", "--stdin")
		cmd.Dir = bare
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	mktree := func(entries ...string) string {
		cmd := exec.Command("git", "mktree", "--missing")
		cmd.Dir = bare
		cmd.Stdin = strings.NewReader(strings.Join(entries, "\n") + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mktree: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	commit := func(branch, tree string) {
		c := gitCmd(t, bare, "commit-tree", tree, "-m", branch)
		gitCmd(t, bare, "update-ref", "refs/heads/"+branch, c)
	}
	x := blob("x\n")
	hooks := mktree("100755 blob " + blob("#!/bin/sh\nevil\n") + "\tpost-checkout")
	commit("dotdot", mktree("100644 blob "+x+"\t.."))
	commit("dotgit", mktree("040000 tree "+hooks+"\t.GIT"))
	commit("dotgit-dot", mktree("040000 tree "+hooks+"\t.git."))
	inner := mktree("100644 blob " + x + "\tpasswd")
	commit("link-then-dir", mktree("120000 blob "+blob("/etc")+"\tetc", "040000 tree "+inner+"\tetc"))
	srv := serveGit(t, root, "", "")
	for branch, want := range map[string]string{
		"dotdot":        `tree entry "..": a path component that is empty, . or ..`,
		"dotgit":        `tree entry ".GIT": a .git entry`,
		"dotgit-dot":    `tree entry ".git.": a .git entry`,
		"link-then-dir": `tree entry "etc": a second entry of the same name`,
	} {
		t.Run(branch, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "dest")
			os.MkdirAll(dest, 0o755)
			os.WriteFile(filepath.Join(dest, "keep"), []byte("old"), 0o644)
			run(t, nil, "git::"+srv.URL+"/evil.git?ref="+branch, dest, "--timeout", "60s").MustExit(t, 1, want)
			if got := listTree(t, dest); got != "keep=old" {
				t.Fatalf("DEST changed: %s", got)
			}
			noTemp(t, dir)
		})
	}
}

func TestGitBadUsage(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "d")
	for args, want := range map[string]string{
		"git::ftp://h/r.git":                                                `git over "ftp" is not supported`,
		"git::https://h/r.git?depth=x":                                      `invalid ?depth="x"`,
		"git::https://h/r.git?ref=a..b":                                     `invalid ?ref="a..b"`,
		"git::https://h/r.git?ref=v1.2//dist":                               `a //subdir goes before the query`,
		"git::https://h/r.git?submodules=2":                                 "invalid ?submodules=\"2\"",
		"git::ssh://git@h/r.git":                                            "git over ssh needs --ssh-key-file",
		"git::https://h/r.git --checksum sha256:" + strings.Repeat("0", 64): "a git checkout is verified by its commit",
		"git::https://h/r.git --expect-commit abc":                          "want a full 40-digit commit SHA",
		"https://h/f.tgz --expect-commit " + strings.Repeat("0", 40):        "--expect-commit applies to git sources",
	} {
		f := strings.Fields(args)
		run(t, nil, append([]string{f[0], dest}, f[1:]...)...).MustExit(t, 2, want)
	}
}

// Git over SSH against a real sshd (Debian's openssh-server) on a free
// loopback port with a throwaway host key: a known host key and a key the
// server accepts check out the tree; an unknown host key is refused at
// once; a key the server does not know is refused at once.
func TestGitSSH(t *testing.T) {
	needGit(t)
	if os.Geteuid() != 0 {
		testenv.Skip(t, "sshd needs root to run")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testenv.Skip(t, "Debian's openssh-server is not installed")
	}
	root := t.TempDir()
	os.Chmod(root, 0o755)
	makeRepo(t, root, "repo", false)
	dir := t.TempDir()
	keygen := func(name string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return p
	}
	hostKey, client, stranger := keygen("host"), keygen("client"), keygen("stranger")
	pub, _ := os.ReadFile(client + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	port := strings.Split(testenv.ClosedAddr(t), ":")[1]
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`, port, hostKey, filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "pid"))), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	var log strings.Builder
	sshd.Stderr = &log
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })
	// known_hosts as ssh-keyscan would write it.
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	f := strings.Fields(string(hostPub))
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte("[127.0.0.1]:"+port+" "+f[0]+" "+f[1]+"\n"), 0o644)
	other := filepath.Join(dir, "other_known_hosts")
	strangerPub, _ := os.ReadFile(stranger + ".pub")
	g := strings.Fields(string(strangerPub))
	os.WriteFile(other, []byte("[127.0.0.1]:"+port+" "+g[0]+" "+g[1]+"\n"), 0o644)
	src := "git::ssh://root@127.0.0.1:" + port + filepath.Join(root, "repo.git") + "?ref=v1"
	dest := filepath.Join(t.TempDir(), "dest")
	var r testenv.Result
	for i := 0; i < 50; i++ { // sshd takes a moment to listen
		if r = run(t, nil, src, dest, "--ssh-key-file", client, "--known-hosts-file", known, "--timeout", "20s"); r.Code == 0 {
			break
		}
	}
	r.MustExit(t, 0, "msg=fetched")
	want := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, root, "clone", "-q", "--depth", "1", "--branch", "v1", "file://"+filepath.Join(root, "repo.git"), want)
	if got, exp := gitTree(t, dest), gitTree(t, want); got != exp {
		t.Fatalf("over ssh:\n%s\ngit:\n%s", got, exp)
	}
	run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--ssh-key-file", client, "--known-hosts-file", other, "--timeout", "60s").
		MustExit(t, 1, "the SSH server's key is not in --known-hosts-file")
	run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--ssh-key-file", stranger, "--known-hosts-file", known, "--timeout", "60s").
		MustExit(t, 1, "ssh: the server refused the key")
	run(t, nil, src, filepath.Join(t.TempDir(), "d"), "--ssh-key-file", client).MustExit(t, 2, "needs --known-hosts-file")
	if t.Failed() {
		t.Log(log.String())
	}
}

// git:// against Debian's git daemon: the same tree as git clone.
func TestGitDaemon(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	makeRepo(t, root, "repo", false)
	port := strings.Split(testenv.ClosedAddr(t), ":")[1]
	d := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root, "--listen=127.0.0.1", "--port="+port, root)
	testenv.StartGroup(t, d) // git daemon forks git-daemon: the group goes
	src := "git::git://127.0.0.1:" + port + "/repo.git?ref=feature"
	dest := filepath.Join(t.TempDir(), "dest")
	var r testenv.Result
	for i := 0; i < 50; i++ { // the daemon takes a moment to listen
		if r = run(t, nil, src, dest, "--timeout", "10s"); r.Code == 0 {
			break
		}
	}
	r.MustExit(t, 0, "msg=fetched")
	want := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, root, "clone", "-q", "--depth", "1", "--branch", "feature", "git://127.0.0.1:"+port+"/repo.git", want)
	if got, exp := gitTree(t, dest), gitTree(t, want); got != exp {
		t.Fatalf("over git://:\n%s\ngit:\n%s", got, exp)
	}
}

// --git-dir keeps a real repository: git status finds it clean, HEAD is
// the commit fetched, and a re-run is still one listing.
func TestGitDir(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	work := makeRepo(t, root, "repo", false)
	srv := serveGit(t, root, "", "")
	// Over HTTP the fetched store becomes .git; from file:// (read in
	// place) .git gets a copy of what it needs. Either way git fsck finds
	// every object, and the history is as deep as asked.
	for _, base := range []string{srv.URL + "/repo.git", "file://" + filepath.Join(root, "repo.git")} {
		for _, q := range []string{"ref=main", "ref=v1", "ref=main&depth=0"} {
			dest := filepath.Join(t.TempDir(), "dest")
			src := "git::" + base + "?" + q
			ref, _, _ := strings.Cut(strings.TrimPrefix(q, "ref="), "&")
			run(t, nil, src, dest, "--git-dir").MustExit(t, 0, "msg=fetched")
			if st := gitCmd(t, dest, "status", "--porcelain"); st != "" {
				t.Fatalf("%s: git status is not clean:\n%s", src, st)
			}
			if got, want := gitCmd(t, dest, "rev-parse", "HEAD"), gitCmd(t, work, "rev-parse", ref+"^{commit}"); got != want {
				t.Fatalf("%s: HEAD %s, want %s", src, got, want)
			}
			gitCmd(t, dest, "fsck", "--full", "--strict")
			got, want := gitCmd(t, dest, "rev-list", "--count", "HEAD"), "1"
			if strings.HasSuffix(q, "depth=0") {
				want = gitCmd(t, work, "rev-list", "--count", ref)
			}
			if got != want {
				t.Fatalf("%s: %s commits of history, want %s", src, got, want)
			}
			run(t, nil, src, dest, "--git-dir").MustExit(t, 0, `msg="up to date"`)
			if fi, err := os.Stat(filepath.Join(root, "repo.git", "objects")); err != nil || !fi.IsDir() {
				t.Fatal("the file:// source lost its objects")
			}
		}
	}
	run(t, nil, "git::"+srv.URL+"/repo.git//a", filepath.Join(t.TempDir(), "d"), "--git-dir").MustExit(t, 2, "--git-dir keeps the whole repository")
}

// addGitlink records in work's index a submodule at path, at commit, from
// url, as git submodule add would, without git fetching anything.
func addGitlink(t *testing.T, work, path, commit, url string) {
	t.Helper()
	// An empty directory is how git leaves a submodule not checked out;
	// without it, add -A would take the gitlink for deleted.
	os.MkdirAll(filepath.Join(work, path), 0o755)
	gitCmd(t, work, "update-index", "--add", "--cacheinfo", "160000,"+commit+","+path)
	gitCmd(t, work, "config", "-f", ".gitmodules", "submodule."+path+".path", path)
	gitCmd(t, work, "config", "-f", ".gitmodules", "submodule."+path+".url", url)
	gitCmd(t, work, "add", ".gitmodules")
}

// ?submodules=1 against git clone --recurse-submodules: a submodule by a
// relative URL whose own submodule nests one more level, one pinned to a
// commit no ref points at, one by an absolute URL; over smart HTTP and from
// file://. Then what git refuses from a repository it does not control.
func TestGitSubmodules(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	srv := serveGit(t, root, "", "")
	newRepo := func(name string, files map[string]string) string {
		work := filepath.Join(t.TempDir(), name)
		os.MkdirAll(work, 0o755)
		gitCmd(t, work, "init", "-q", "-b", "main")
		for p, body := range files {
			os.MkdirAll(filepath.Join(work, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(work, p), []byte(body), 0o644)
		}
		return work
	}
	commit := func(work, msg string) string {
		gitCmd(t, work, "add", "-A")
		gitCmd(t, work, "commit", "-q", "-m", msg)
		return gitCmd(t, work, "rev-parse", "HEAD")
	}
	bare := func(work, name string) {
		os.RemoveAll(filepath.Join(root, name+".git"))
		gitCmd(t, root, "clone", "-q", "--bare", work, name+".git")
	}
	inner := newRepo("inner", map[string]string{"inner.txt": "innermost\n"})
	innerSHA := commit(inner, "inner")
	bare(inner, "inner")
	lib := newRepo("lib", map[string]string{"lib.go": "package lib\n", "old.txt": "only in the old commit\n"})
	oldLib := commit(lib, "old")
	os.Remove(filepath.Join(lib, "old.txt"))
	os.MkdirAll(filepath.Join(lib, "bin"), 0o755)
	os.WriteFile(filepath.Join(lib, "bin/tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("lib.go", filepath.Join(lib, "link"))
	addGitlink(t, lib, "vendor/inner", innerSHA, "../inner.git")
	libSHA := commit(lib, "new")
	bare(lib, "lib")
	super := newRepo("super", map[string]string{"app.txt": "app\n"})
	addGitlink(t, super, "libs/lib", libSHA, "../lib.git")
	addGitlink(t, super, "pinned", oldLib, "./../lib.git")
	addGitlink(t, super, "abs", innerSHA, srv.URL+"/inner.git")
	commit(super, "super")
	bare(super, "super")

	want := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, root, "clone", "-q", "--recurse-submodules", srv.URL+"/super.git", want)
	exp := gitTree(t, want)
	for _, must := range []string{"libs/lib/vendor/inner/inner.txt f", "pinned/old.txt f", "abs/inner.txt f", "libs/lib/bin/tool f true", "libs/lib/link l lib.go"} {
		if !strings.Contains(exp, must) {
			t.Fatalf("the test's repositories are not what it means: git's clone lacks %q:\n%s", must, exp)
		}
	}
	for _, src := range []string{"git::" + srv.URL + "/super.git?submodules=1", "git::file://" + filepath.Join(root, "super.git") + "?submodules=1"} {
		dest := filepath.Join(t.TempDir(), "dest")
		r := run(t, nil, src, dest, "-v")
		r.MustExit(t, 0, "msg=fetched", "msg=submodule path=libs/lib", "path=vendor/inner")
		if got := gitTree(t, dest); got != exp {
			t.Fatalf("%s: fetch git:: and git clone --recurse-submodules differ:\nfetch:\n%s\ngit:\n%s", src, got, exp)
		}
		noTemp(t, filepath.Dir(dest))
		// The submodules' commits follow from the superproject's: a
		// re-run asks the superproject only.
		lists := srv.lists.Load()
		run(t, nil, src, dest).MustExit(t, 0, `msg="up to date"`)
		if n := srv.lists.Load() - lists; strings.Contains(src, "http") && n != 1 {
			t.Fatalf("the re-run made %d listings, want 1 (the superproject's)", n)
		}
	}
	// Without ?submodules=1, as git clone without --recurse-submodules:
	// an empty directory for each, said in the log; with --git-dir the
	// gitlinks are in the index, and git status finds the checkout clean.
	plain := filepath.Join(t.TempDir(), "plain")
	gitCmd(t, root, "clone", "-q", srv.URL+"/super.git", plain)
	for _, gitDir := range []bool{false, true} {
		d := filepath.Join(t.TempDir(), "d")
		args := []string{"git::" + srv.URL + "/super.git", d}
		if gitDir {
			args = append(args, "--git-dir")
		}
		run(t, nil, args...).MustExit(t, 0, `msg="submodule left empty (give ?submodules=1 to check it out)" path=libs/lib`)
		if got, want := gitTree(t, d), gitTree(t, plain); got != want {
			t.Fatalf("without ?submodules=1, fetch git:: and git clone differ:\nfetch:\n%s\ngit:\n%s", got, want)
		}
		if gitDir {
			if st := gitCmd(t, d, "status", "--porcelain"); st != "" {
				t.Fatalf("git status in a --git-dir checkout with submodules left empty:\n%s", st)
			}
		}
	}
	// The limits hold for the whole, submodules included.
	run(t, nil, "git::"+srv.URL+"/super.git?submodules=1", filepath.Join(t.TempDir(), "d"), "--max-files", "12").MustExit(t, 1, "more than 12 entries")
	run(t, nil, "git::"+srv.URL+"/super.git?submodules=1", filepath.Join(t.TempDir(), "d"), "--git-dir").MustExit(t, 2, "--git-dir and ?submodules=1")

	// What a hostile superproject may not make a fetch follow.
	for name, c := range map[string]struct{ url, why string }{
		"local":     {"file://" + filepath.Join(root, "inner.git"), "is a path on this machine, and the superproject is not"},
		"localpath": {filepath.Join(root, "inner.git"), "is a path on this machine, and the superproject is not"},
		"ext":       {"ext::sh -c touch% /tmp/pwned", `git over "ext" is not supported`},
		"climb":     {"../../../../x.git", "climbs above the superproject's host"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newRepo("h"+name, map[string]string{"a": "a\n"})
			addGitlink(t, h, "sub", innerSHA, c.url)
			commit(h, "hostile")
			bare(h, "h"+name)
			dest := filepath.Join(t.TempDir(), "d")
			run(t, nil, "git::"+srv.URL+"/h"+name+".git?submodules=1", dest, "--timeout", "30s").MustExit(t, 1, c.why)
			if _, err := os.Lstat(dest); err == nil {
				t.Fatal("DEST made by a refused checkout")
			}
			noTemp(t, filepath.Dir(dest))
		})
	}
	// A gitlink .gitmodules does not name; a submodule path with "..".
	h := newRepo("unnamed", map[string]string{"a": "a\n"})
	os.MkdirAll(filepath.Join(h, "sub"), 0o755)
	gitCmd(t, h, "update-index", "--add", "--cacheinfo", "160000,"+innerSHA+",sub")
	commit(h, "no .gitmodules")
	bare(h, "unnamed")
	run(t, nil, "git::"+srv.URL+"/unnamed.git?submodules=1", filepath.Join(t.TempDir(), "d")).MustExit(t, 1, "no .gitmodules file")
	addGitlink(t, h, "other", innerSHA, "../inner.git")
	commit(h, "one named")
	bare(h, "unnamed")
	run(t, nil, "git::"+srv.URL+"/unnamed.git?submodules=1", filepath.Join(t.TempDir(), "d")).MustExit(t, 1, `submodule "sub" is not in .gitmodules`)
	h = newRepo("dotdot", map[string]string{"a": "a\n"})
	addGitlink(t, h, "sub", innerSHA, "../inner.git")
	gitCmd(t, h, "config", "-f", ".gitmodules", "submodule.sub.path", "../sub")
	commit(h, "dotdot")
	bare(h, "dotdot")
	run(t, nil, "git::"+srv.URL+"/dotdot.git?submodules=1", filepath.Join(t.TempDir(), "d")).MustExit(t, 1, `submodule "sub" is not in .gitmodules (or its entry is one git ignores`)
}

// throttled slows a response after its first 64 KiB: a pack that takes a
// while to arrive.
type throttled struct {
	http.ResponseWriter
	n int
}

func (w *throttled) Write(p []byte) (int, error) {
	if w.n += len(p); w.n > 64<<10 {
		time.Sleep(20 * time.Millisecond)
	}
	return w.ResponseWriter.Write(p)
}

func (w *throttled) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// SIGTERM while a moved branch's pack is arriving: exit 143, the old
// checkout in DEST as it was, nothing staged left beside it.
func TestGitSIGTERMMidCheckout(t *testing.T) {
	needGit(t)
	bin := testenv.Binary(t)
	root := t.TempDir()
	work := makeRepo(t, root, "repo", false)
	h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	var slow atomic.Bool
	packing := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			select {
			case packing <- struct{}{}:
			default:
			}
			h.ServeHTTP(&throttled{ResponseWriter: w}, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	src := "git::" + srv.URL + "/repo.git?ref=main"
	dest := filepath.Join(t.TempDir(), "dest")
	run(t, nil, src, dest).MustExit(t, 0, "msg=fetched")
	before := gitTree(t, dest)
	// The branch moves to a commit with 8 MB of random bytes in it.
	f, _ := os.Create(filepath.Join(work, "blob.bin"))
	io.CopyN(f, rand.Reader, 8<<20)
	f.Close()
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "big")
	gitCmd(t, work, "push", "-q", filepath.Join(root, "repo.git"), "main")
	slow.Store(true)
	// midPack starts a fetch and returns once its pack is arriving.
	midPack := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "fetch", src, dest, "--termination-log", "")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-packing:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("the pack was never asked for\n%s", stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
		return cmd, &stderr
	}
	cmd, stderr := midPack()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143\n%s", err, stderr.String())
	}
	if got := gitTree(t, dest); got != before {
		t.Fatalf("DEST changed:\n%s\nwas:\n%s", got, before)
	}
	noTemp(t, filepath.Dir(dest))

	// SIGKILL (the kubelet's, after the grace period) leaves the staging
	// behind. A run beside the killed one's (two copies at once) leaves
	// what a live run staged alone; the next run after the kill removes it.
	cmd, _ = midPack()
	staged := func() []string {
		var out []string
		ents, _ := os.ReadDir(filepath.Dir(dest))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".initbox-tmp-") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	live := staged()
	if len(live) == 0 {
		t.Fatal("a run receiving its pack staged nothing")
	}
	slow.Store(false)
	run(t, nil, src, dest).MustExit(t, 0, "msg=fetched")
	for _, name := range live {
		if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), name)); err != nil {
			t.Fatalf("a run beside a live one removed its staging %s: %v", name, err)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(staged()) == 0 {
		t.Fatal("SIGKILL left nothing staged: this part tests nothing")
	}
	run(t, nil, src, dest).MustExit(t, 0, `msg="up to date"`)
	noTemp(t, filepath.Dir(dest))
}

// .gitattributes as git checkout applies it, judged against git clone over
// a generated matrix: every attribute form below on every kind of content
// (LF, CRLF, mixed, a lone CR, binary, no newline, $Id$, empty), plus
// files deeper down that override the top, ** and anchored patterns, and
// a macro. The blobs are committed before the attributes, so CRLF is
// stored as well as LF. The checkout is made with --git-dir, as a real
// repository's would be.
func TestGitAttributesMatchGitClone(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "attrs")
	os.MkdirAll(work, 0o755)
	gitCmd(t, work, "init", "-q", "-b", "main")
	variants := []string{"text", "text eol=crlf", "eol=crlf", "text=auto eol=crlf", "-text eol=crlf", "binary eol=crlf",
		"crlf", "-crlf eol=crlf", "crlf=input eol=crlf", "text eol=lf", "eol=lf", "text=auto", "ident", "ident eol=crlf",
		"filter=lfs diff=lfs merge=lfs -text", "filter=lfs eol=crlf", "!text eol=crlf", "mymacro", "text eol=crlf -text",
		"eol=crlf !eol", "text eol=crlf ident"}
	contents := []string{"a\nb\n", "a\r\nb\r\n", "mixed\r\nline\n", "lone\rcr\n", "bin\x00ary\nx\n", "no newline",
		"$Id$\nid\n", "", "\n", "ctl\x01\x02\x03\x04\x05\x06\x07\n"}
	var attrs strings.Builder
	attrs.WriteString("# generated\n[attr]mymacro text eol=crlf\n")
	write := func(p, body string) {
		os.MkdirAll(filepath.Join(work, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(work, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range variants {
		fmt.Fprintf(&attrs, "*.t%d %s\n", i, v)
		for j, c := range contents {
			write(fmt.Sprintf("c%d.t%d", j, i), c)
		}
	}
	// Deeper files, later lines and other pattern forms.
	for j, c := range contents {
		write(fmt.Sprintf("sub/c%d.cmd", j), c)
		write(fmt.Sprintf("sub/deep/c%d.cmd", j), c)
		write(fmt.Sprintf("docs/a/b/c%d.txt", j), c)
		write(fmt.Sprintf("rooted%d.bat", j), c)
		write(fmt.Sprintf("sub/rooted%d.bat", j), c)
	}
	attrs.WriteString("*.cmd text eol=crlf\ndocs/**/*.txt eol=crlf\n/rooted*.bat eol=crlf\n\"sub/deep/c1.cmd\" -text\n")
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "contents, stored as they are")
	write(".gitattributes", attrs.String())
	write("sub/.gitattributes", "*.cmd -text\ndeep/*.cmd eol=crlf\nmymac*.x text\n")
	gitCmd(t, work, "add", "-A")
	gitCmd(t, work, "commit", "-q", "-m", "attributes")
	gitCmd(t, root, "clone", "-q", "--bare", work, "attrs.git")
	srv := serveGit(t, root, "", "")
	want := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, root, "clone", "-q", srv.URL+"/attrs.git", want)
	exp := gitTree(t, want)
	crlf, _ := os.ReadFile(filepath.Join(want, "c0.t1"))
	if string(crlf) != "a\r\nb\r\n" {
		t.Fatalf("the test's attributes are not what it means: git wrote %q", crlf)
	}
	dest := filepath.Join(t.TempDir(), "d")
	run(t, nil, "git::"+srv.URL+"/attrs.git", dest, "--git-dir").MustExit(t, 0, "msg=fetched")
	if got := gitTree(t, dest); got != exp {
		var diff []string
		g, e := strings.Split(got, "\n"), strings.Split(exp, "\n")
		for i := range e {
			if i < len(g) && g[i] != e[i] {
				diff = append(diff, "fetch: "+g[i]+"\ngit:   "+e[i])
			}
		}
		t.Fatalf("fetch git:: and git clone differ on .gitattributes (%d lines):\n%s", len(diff), strings.Join(diff, "\n"))
	}
	// (git status is not compared: files stored with CRLF under a text
	// attribute show as modified in git's own clone too once their stat
	// data is racy, as git would normalize them on the next add.)
	// A subdirectory checkout still follows the attributes above it.
	sub := filepath.Join(t.TempDir(), "s")
	run(t, nil, "git::"+srv.URL+"/attrs.git//docs", sub).MustExit(t, 0, "msg=fetched")
	for j := range contents {
		a, _ := os.ReadFile(filepath.Join(sub, fmt.Sprintf("a/b/c%d.txt", j)))
		b, _ := os.ReadFile(filepath.Join(want, fmt.Sprintf("docs/a/b/c%d.txt", j)))
		if !bytes.Equal(a, b) {
			t.Fatalf("//docs: c%d.txt is %q, git wrote %q", j, a, b)
		}
	}
}
