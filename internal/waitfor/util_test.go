package waitfor

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "initbox-kube-") }

func osWriteFile(p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		panic(err)
	}
}

func ownerOf(fi os.FileInfo) (int, int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
