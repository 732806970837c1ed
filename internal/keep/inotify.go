package keep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirWatcher reports changes in a set of directories through inotify: no
// polling, no wake-up while nothing changes. It watches directories, never
// the files or links in them: the kubelet updates a ConfigMap, Secret or
// downward-API volume by writing a new ..YYYY_MM_DD… directory and renaming
// a ..data link over the old one, and a watch on the links would go on
// watching the old files. Every event in a watched directory counts; the
// caller's pass decides whether anything it reads changed.
type dirWatcher struct {
	f       *os.File
	mu      sync.Mutex
	watched map[string]int // directory → watch descriptor
	events  chan struct{}
	errs    chan error
}

const dirEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func newDirWatcher() (*dirWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking and through os.File: reads park in the runtime's poller,
	// and Close wakes them.
	w := &dirWatcher{f: os.NewFile(uintptr(fd), "inotify"), watched: map[string]int{}, events: make(chan struct{}, 1), errs: make(chan error, 1)}
	go w.read()
	return w, nil
}

// watch adds dir, and with tree every directory below it (the kubelet's
// hidden ..-named ones excepted: ..data's target is reached through its
// own events), to the set. A directory already watched is skipped.
func (w *dirWatcher) watch(dir string, tree bool) error {
	if err := w.add(dir); err != nil {
		return err
	}
	if !tree {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), "..") {
			return filepath.SkipDir
		}
		return w.add(p)
	})
}

func (w *dirWatcher) add(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watched[dir]; ok {
		return nil
	}
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), dir, dirEvents|unix.IN_ONLYDIR)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	w.watched[dir] = wd
	return nil
}

// read turns the kernel's event records into one pending signal on
// events: what changed is not needed, only that something did. A watch
// whose directory went away (IN_IGNORED) is forgotten, so the next pass
// can add it again.
func (w *dirWatcher) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.errs <- fmt.Errorf("inotify: %w", err)
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_IGNORED != 0 {
				w.forget(int(ev.Wd))
			}
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 || ev.Mask&dirEvents != 0 {
				select {
				case w.events <- struct{}{}:
				default:
				}
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// poke signals a change that came from elsewhere (a Source).
func (w *dirWatcher) poke() {
	select {
	case w.events <- struct{}{}:
	default:
	}
}

func (w *dirWatcher) forget(wd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, x := range w.watched {
		if x == wd {
			delete(w.watched, d)
		}
	}
}

func (w *dirWatcher) close() error { return w.f.Close() }
