package render

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// BenchmarkEnvsubst expands the bench's 10k-line input (make bench reports
// the whole command against GNU envsubst).
func BenchmarkEnvsubst(b *testing.B) {
	env := map[string]string{"A": "alpha", "B": "bravo-bravo", "C": "charlie", "D": "1234567890", "E": "echo.example.svc.cluster.local"}
	var sb strings.Builder
	for i := 0; i < 10_000; i++ {
		fmt.Fprintf(&sb, "line %d: $A ${B} x=$C ${D} host=$E\n", i)
	}
	src := []byte(sb.String())
	e := &envsubst{lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := e.expand("in", src, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
