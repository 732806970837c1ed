package prepare

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Every path prepare changes is walked one component at a time from a
// directory descriptor, with O_NOFOLLOW: a symlink anywhere in it is refused
// with its name, and an entry is changed through the descriptor it was
// inspected by, so a link swapped in between is never followed (no Lstat
// then chmod-by-path race).

const pathFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC

// linkError is a symlink where prepare follows none.
type linkError struct{ path string }

func (e *linkError) Error() string {
	return e.path + " is a symlink: prepare follows none (give the real path)"
}

// parentOf opens the directory that holds p's last component, following
// no symlink on the way; with mkdir, missing directories are made (0755).
// The caller closes fd. name is "." when p is "/" or ".".
func parentOf(p string, mkdir bool) (fd int, name string, err error) {
	clean := filepath.Clean(p)
	start := "."
	if filepath.IsAbs(clean) {
		start = "/"
	}
	if fd, err = unix.Open(start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return -1, "", fmt.Errorf("%s: %w", start, err)
	}
	dir, name := filepath.Split(clean)
	if name == "" {
		name = "."
	}
	sofar := strings.TrimSuffix(start, ".")
	for _, c := range strings.Split(dir, "/") {
		if c == "" || c == "." {
			continue
		}
		sofar = filepath.Join(sofar, c)
		next, err := unix.Openat(fd, c, pathFlags|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, c, pathFlags|unix.O_DIRECTORY, 0)
			}
		}
		if err != nil {
			err = componentError(fd, c, sofar, err)
			unix.Close(fd)
			return -1, "", err
		}
		unix.Close(fd)
		fd = next
	}
	return fd, name, nil
}

// componentError says why the directory c (shown as shown) could not be
// entered: a link, a file, or the system's reason.
func componentError(dirfd int, c, shown string, err error) error {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return &linkError{shown}
		case unix.S_IFDIR:
		default:
			return fmt.Errorf("%s is not a directory", shown)
		}
	}
	return fmt.Errorf("%s: %w", shown, err)
}

// entry is one opened path: an O_PATH descriptor and what it is.
type entry struct {
	fd   int
	st   unix.Stat_t
	path string // for messages
}

func (e *entry) close()       { unix.Close(e.fd) }
func (e *entry) isLink() bool { return e.st.Mode&unix.S_IFMT == unix.S_IFLNK }
func (e *entry) isDir() bool  { return e.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (e *entry) mode() uint32 { return e.st.Mode & 0o7777 }

// openAt opens name in dirfd without following it: a symlink is opened as
// itself, and fstat says what the descriptor really is.
func openAt(dirfd int, name, shown string) (*entry, error) {
	fd, err := unix.Openat(dirfd, name, pathFlags, 0)
	if err != nil {
		return nil, err
	}
	e := &entry{fd: fd, path: shown}
	if err := unix.Fstat(fd, &e.st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return e, nil
}

// chmod sets the mode bits exactly (setuid, setgid and sticky included)
// through the descriptor: fchmodat2 with AT_EMPTY_PATH (Linux 6.6+), else
// the descriptor's /proc/self/fd link, which names the inode itself.
func (e *entry) chmod(mode uint32) error {
	err := unix.Fchmodat(e.fd, "", mode, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(e.fd), mode)
	}
	return err
}

func (e *entry) chown(uid, gid int) error {
	return unix.Fchownat(e.fd, "", uid, gid, unix.AT_EMPTY_PATH)
}

// visit calls f on the entry name of dirfd and, when recursive and it is a
// directory, on everything below it, in name order. Every directory is
// entered through the descriptor f was given: a link is never followed,
// even one swapped in while the walk runs.
func visit(dirfd int, name, shown string, recursive bool, f func(*entry) error) error {
	e, err := openAt(dirfd, name, shown)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	defer e.close()
	if err := f(e); err != nil {
		return err
	}
	if !recursive || !e.isDir() {
		return nil
	}
	dfd, err := unix.Openat(e.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	d := os.NewFile(uintptr(dfd), shown)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := visit(dfd, n, filepath.Join(shown, n), true, f); err != nil {
			return err
		}
	}
	return nil
}
