package atomicfile

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/initbox/initbox/internal/oserr"
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

// Finish gives a file just written its mode (the umask may have narrowed
// the one it was created with) and owner (-1: unchanged), syncs and closes
// it. The first error wins; the file is closed whatever happens.
func Finish(f *os.File, mode os.FileMode, uid, gid int) error {
	err := f.Chmod(mode)
	if err == nil && (uid >= 0 || gid >= 0) {
		if err = f.Chown(uid, gid); err != nil {
			err = fmt.Errorf("setting the owner to %d:%d: %w", uid, gid, oserr.Reason(err))
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
