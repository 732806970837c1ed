package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// gitBench: a shallow checkout of a repository of 5,000 files and 100 MB
// over loopback smart HTTP (Debian's git http-backend), initbox's fetch
// git:: against git clone --depth 1, interleaved.
func gitBench(c config, w io.Writer) error {
	const files, size = 5000, 20 << 10 // 5,000 × 20 KiB = 100 MiB, incompressible
	dir := filepath.Join(c.work, "git")
	work, root := filepath.Join(dir, "work"), filepath.Join(dir, "srv")
	os.MkdirAll(work, 0o755)
	os.MkdirAll(root, 0o755)
	gitRun := func(in string, args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = in
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := gitRun(work, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(5000, 100))
	buf := make([]byte, size)
	for i := 0; i < files; i++ {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		p := filepath.Join(work, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%04d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return err
		}
	}
	if err := gitRun(work, "add", "-A"); err != nil {
		return err
	}
	if err := gitRun(work, "commit", "-q", "-m", "bench"); err != nil {
		return err
	}
	if err := gitRun(root, "clone", "-q", "--bare", work, "repo.git"); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/repo.git"
	tools := []struct {
		name string
		argv func(dest string) []string
	}{
		{"git clone --depth 1", func(dest string) []string { return []string{"git", "clone", "-q", "--depth", "1", url, dest} }},
		{"initbox fetch git::", func(dest string) []string {
			return []string{c.initbox, "fetch", "git::" + url, dest, "--termination-log", "", "--max-unpacked", "1GiB"}
		}},
	}
	const runs = 5
	walls := make([][]time.Duration, len(tools))
	rss := make([][]time.Duration, len(tools)) // KiB, kept as durations for quantile
	for i := 0; i < runs; i++ {
		for j, tool := range tools {
			dest := filepath.Join(dir, fmt.Sprintf("out-%d-%d", i, j))
			start := time.Now()
			u, err := timeRun(tool.argv(dest), nil)
			if err != nil {
				return fmt.Errorf("%s: %w", tool.name, err)
			}
			walls[j] = append(walls[j], time.Since(start))
			rss[j] = append(rss[j], time.Duration(u.kib))
			if n := countFiles(dest); n != files {
				return fmt.Errorf("%s checked out %d files, want %d", tool.name, n, files)
			}
			os.RemoveAll(dest)
		}
	}
	fmt.Fprintf(w, "## git: a shallow checkout of %d files, %d MiB, over loopback smart HTTP (%d runs each, interleaved)\n\n", files, files*size>>20, runs)
	fmt.Fprintf(w, "| tool | wall median | wall max | peak RSS median | vs git clone (median wall) |\n|---|---|---|---|---|\n")
	base := quantile(walls[0], 0.5)
	for j, tool := range tools {
		med := quantile(walls[j], 0.5)
		fmt.Fprintf(w, "| %s | %s | %s | %.1f MB | %.2f× |\n", tool.name, ms(med), ms(quantile(walls[j], 1)),
			float64(quantile(rss[j], 0.5))/1024, float64(med)/float64(base))
	}
	fmt.Fprintln(w)
	return nil
}

// countFiles counts the regular files below dir, .git excluded.
func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && fi.Name() == ".git" {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() && fi.Name() != ".initbox-fetch" {
			n++
		}
		return nil
	})
	return n
}
