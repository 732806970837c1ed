package waitfor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("file", func(s silent) string { return s.dir + "/never" })

// A file another container writes: empty at first, then filled.
func TestFileAppearsWhileWaiting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "registered")
	run(t, nil, "file", p, "--timeout", "500ms").MustExit(t, 1, "timed out after 500ms: file "+p+": no such file")
	after(300*time.Millisecond, func() { os.WriteFile(p, nil, 0o644) })
	after(900*time.Millisecond, func() { os.WriteFile(p, []byte("ok\n"), 0o644) })
	r := run(t, nil, "file:"+p, "--timeout", "10s")
	r.MustExit(t, 0, "msg=ready")
	if r.Elapsed < 900*time.Millisecond {
		t.Fatalf("ready after %s, while the file was still empty", r.Elapsed)
	}
	run(t, nil, "file", "relative/path").MustExit(t, 2, `invalid file "relative/path": want an absolute path`)
}
