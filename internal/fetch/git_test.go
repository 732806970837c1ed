package fetch

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// gitRepo makes a real repository with Debian's git: v1 (an annotated tag)
// then a second commit on main with a lightweight tag v2.
func gitRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Skip(t, "git is not installed (apt-get install git): it makes and serves the test repository")
	}
	dir := filepath.Join(t.TempDir(), "site.git")
	work := filepath.Join(t.TempDir(), "work")
	sh := func(d string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.MkdirAll(filepath.Join(work, "public"), 0o755)
	sh(work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "public", "index.html"), []byte("v1"), 0o644)
	os.WriteFile(filepath.Join(work, "README"), []byte("readme"), 0o644)
	sh(work, "add", ".")
	sh(work, "commit", "-q", "-m", "one")
	sh(work, "tag", "-a", "v1", "-m", "release 1")
	os.WriteFile(filepath.Join(work, "public", "index.html"), []byte("v2"), 0o644)
	sh(work, "commit", "-q", "-am", "two")
	sh(work, "tag", "v2")
	sh(filepath.Dir(dir), "clone", "-q", "--bare", work, dir)
	return dir
}

// serveGit serves the bare repository over smart HTTP with git
// http-backend, counting the fetches of packs (clones).
func serveGit(t *testing.T, repo string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	gitPath, _ := exec.LookPath("git")
	var packs atomic.Int32
	h := &cgi.Handler{
		Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repo), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			packs.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &packs
}

func TestGitSources(t *testing.T) {
	repo := gitRepo(t)
	srv, packs := serveGit(t, repo)
	url := srv.URL + "/" + filepath.Base(repo)
	dir := t.TempDir()
	dest := filepath.Join(dir, "site")

	run(t, nil, "git::"+url+"?ref=v1", dest).MustExit(t, 0, "msg=fetched", "commit=")
	if got := listTree(t, dest); got != ".initbox-fetch README=readme public public/index.html=v1" {
		t.Fatal(got)
	}
	// Up to date: the remote is asked which commit v1 is, nothing cloned.
	before := packs.Load()
	run(t, nil, "git::"+url+"?ref=v1", dest).MustExit(t, 0, `msg="up to date"`)
	if packs.Load() != before {
		t.Fatal("cloned again")
	}
	// A branch, a lightweight tag and the default HEAD give the newer tree,
	// swapped in whole; //subdir publishes one directory.
	for _, ref := range []string{"?ref=main", "?ref=v2", ""} {
		run(t, nil, "git::"+url+ref, dest).MustExit(t, 0)
		if got := listTree(t, dest); got != ".initbox-fetch README=readme public public/index.html=v2" {
			t.Fatalf("%s: %s", ref, got)
		}
	}
	run(t, nil, "git::"+url+"//public?ref=v1", filepath.Join(dir, "public")).MustExit(t, 0)
	if got := listTree(t, filepath.Join(dir, "public")); got != ".initbox-fetch index.html=v1" {
		t.Fatal(got)
	}
	// A commit by its hash (a full clone, then a checkout).
	out, err := exec.Command("git", "--git-dir", repo, "rev-parse", "v1^{commit}").Output()
	if err != nil {
		t.Fatal(err)
	}
	run(t, nil, "git::"+url+"?ref="+strings.TrimSpace(string(out)), filepath.Join(dir, "bycommit")).MustExit(t, 0)
	if got := listTree(t, filepath.Join(dir, "bycommit")); !strings.Contains(got, "public/index.html=v1") {
		t.Fatal(got)
	}
	// What cannot be fixed by retrying fails at once.
	run(t, nil, "git::"+url+"?ref=v9", filepath.Join(dir, "v9"), "--timeout", "30s").MustExit(t, 1, `no tag or branch "v9"`)
	run(t, nil, "git::"+url+"//nope?ref=v1", filepath.Join(dir, "nope"), "--timeout", "30s").MustExit(t, 1, "no directory nope")
	run(t, nil, "git::"+url, filepath.Join(dir, "x"), "--checksum", "sha256:"+strings.Repeat("0", 64)).MustExit(t, 2, "checked out by its ref")
	run(t, nil, "git::ssh://git@example.com/r.git", filepath.Join(dir, "x")).MustExit(t, 2, "git over ssh is not supported")
	noTemp(t, dir)
}
