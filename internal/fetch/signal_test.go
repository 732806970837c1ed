package fetch

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// SIGTERM in the middle of a download: exit 143 promptly, nothing at DEST,
// no temporary file left.
func TestSIGTERMMidDownload(t *testing.T) {
	bin := testenv.Binary(t)
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000000")
		w.WriteHeader(200)
		started <- struct{}{}
		for i := 0; i < 1000; i++ {
			if _, err := w.Write(make([]byte, 1000)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	tl := filepath.Join(dir, "tl")
	cmd := exec.Command(bin, "fetch", srv.URL+"/big.bin", filepath.Join(dir, "big.bin"), "--termination-log", tl)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the download never started")
	}
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143\n%s", err, stderr.String())
	}
	if took := time.Since(sent); took > time.Second {
		t.Errorf("exited %s after SIGTERM", took)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "tl" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	b, _ := os.ReadFile(tl)
	if !bytes.HasPrefix(b, []byte("fetch: terminated by SIGTERM")) {
		t.Errorf("termination message %q", b)
	}
}

// A DEST that is a mount point (an emptyDir's root) cannot be renamed: the
// archive is staged inside it and moved in after verification, replacing
// what was there.
func TestMountPointDest(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a tmpfs needs root")
	}
	dest := filepath.Join(t.TempDir(), "emptydir")
	os.Mkdir(dest, 0o777)
	if err := syscall.Mount("tmpfs", dest, "tmpfs", 0, "size=16m"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
	}
	defer syscall.Unmount(dest, syscall.MNT_DETACH)
	os.WriteFile(filepath.Join(dest, "stale.html"), []byte("old"), 0o644)
	site := tgz(t, tarEntry{name: "index.html", typ: '0', body: "new"})
	s := newServer(t, map[string][]byte{"/site.tgz": site})
	run(t, nil, s.URL+"/site.tgz", dest, "--checksum", sha(site)).MustExit(t, 0)
	if got := listTree(t, dest); got != ".initbox-fetch index.html=new" {
		t.Fatal(got)
	}
	run(t, nil, s.URL+"/site.tgz", dest, "--checksum", sha(site)).MustExit(t, 0, "up to date")
	// A hostile archive changes nothing there either.
	bad := tgz(t, tarEntry{name: "../x", typ: '0', body: "x"})
	s2 := newServer(t, map[string][]byte{"/bad.tgz": bad})
	run(t, nil, s2.URL+"/bad.tgz", dest).MustExit(t, 1, "lands outside")
	if got := listTree(t, dest); got != ".initbox-fetch index.html=new" {
		t.Fatal("DEST changed:", got)
	}
}
