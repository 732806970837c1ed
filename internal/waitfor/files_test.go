package waitfor

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"syscall"
	"testing"
)

// Reading and writing the files waitfor's tests use.

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

func pemEncode(w io.Writer, der []byte) error {
	return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
