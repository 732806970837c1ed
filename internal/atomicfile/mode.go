package atomicfile

import (
	"context"
	"io"
	"os"
)

// Mode is an octal mode as chmod(2) takes it (0 to 7777) as an
// os.FileMode, whose setuid, setgid and sticky flags are not the octal bits:
// os.FileMode(0o4755) would lose the setuid bit.
func Mode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// ContextReader is r that fails with ctx's error once ctx ends, so a copy
// stops between two reads.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }
