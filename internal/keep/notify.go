package keep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/transport"
)

// A notifier tells the app that the output changed: a signal, or an HTTP
// request (--on-change).
type notifier interface {
	String() string // for logs and metrics: secrets masked
	notify(ctx context.Context) error
}

// parseNotifier reads one --on-change: signal:SIG:NAME, signal:SIG:@PIDFILE,
// or an http(s) URL.
func parseNotifier(v, method string, secrets *redact.Set) (notifier, error) {
	if rest, ok := strings.CutPrefix(v, "signal:"); ok {
		sig, target, ok := strings.Cut(rest, ":")
		if !ok || target == "" {
			return nil, fmt.Errorf("invalid --on-change %q: want signal:SIG:NAME or signal:SIG:@PIDFILE", v)
		}
		s, err := parseSignal(sig)
		if err != nil {
			return nil, fmt.Errorf("invalid --on-change %q: %v", v, err)
		}
		n := &signalNotifier{sig: s, sigName: strings.ToUpper(strings.TrimPrefix(strings.ToUpper(sig), "SIG"))}
		if f, ok := strings.CutPrefix(target, "@"); ok {
			if f == "" {
				return nil, fmt.Errorf("invalid --on-change %q: an empty pid file", v)
			}
			n.pidFile = f
		} else {
			n.name = filepath.Base(target) // a path names the program: its base is the name
		}
		return n, nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid --on-change %q: want signal:SIG:NAME, signal:SIG:@PIDFILE or an http(s) URL", redact.URL(v))
	}
	secrets.AddUserinfo(u.User)
	return &httpNotifier{url: u, method: method}, nil
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH, "KILL": syscall.SIGKILL,
}

func parseSignal(s string) (syscall.Signal, error) {
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q (HUP, USR1, USR2, TERM, INT, QUIT, WINCH or a number)", s)
}

// signalNotifier sends a signal to every process of the pod's PID
// namespace named name (shareProcessNamespace: true), or to the pid a file
// on a shared volume holds.
type signalNotifier struct {
	sig     syscall.Signal
	sigName string
	name    string
	pidFile string
}

func (n *signalNotifier) String() string {
	if n.pidFile != "" {
		return "signal:" + n.sigName + ":@" + n.pidFile
	}
	return "signal:" + n.sigName + ":" + n.name
}

func (n *signalNotifier) notify(context.Context) error {
	var pids []int
	if n.pidFile != "" {
		b, err := os.ReadFile(n.pidFile)
		if err != nil {
			return fmt.Errorf("the pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return fmt.Errorf("the pid file %s holds no pid: %q", n.pidFile, strings.TrimSpace(string(b)))
		}
		pids = []int{pid}
	} else {
		pids = processesNamed(n.name)
		if len(pids) == 0 {
			return fmt.Errorf("no process named %s in this PID namespace (is shareProcessNamespace: true set?)", n.name)
		}
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, n.sig); err != nil {
			errs = append(errs, killError(pid, err))
		}
	}
	return errors.Join(errs...)
}

// killError says why a signal could not be sent, with both sides' uids
// when it was refused.
func killError(pid int, err error) error {
	name := commOf(pid)
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%s (pid %d) runs as uid %s, this container as %d: run as the same uid or add CAP_KILL", name, pid, uidOf(pid), os.Geteuid())
	}
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s (pid %d) is gone", name, pid)
	}
	return fmt.Errorf("signalling %s (pid %d): %w", name, pid, err)
}

// processesNamed lists the pids whose comm (or, for names the kernel
// truncates at 15 bytes, argv[0]'s base) is name, this process excepted.
func processesNamed(name string) []int {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		comm := commOf(pid)
		if comm == name || len(name) > 15 && strings.HasPrefix(name, comm) && argv0(pid) == name {
			out = append(out, pid)
		}
	}
	return out
}

func commOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func argv0(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	a, _, _ := bytes.Cut(b, []byte{0})
	return filepath.Base(string(a))
}

// uidOf is the real uid of pid, from /proc (readable across users).
func uidOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}

// httpNotifier sends a request (POST by default, as Prometheus' /-/reload
// wants) and retries with backoff until a 2xx, for at most notifyFor.
type httpNotifier struct {
	url    *url.URL
	method string
	client *http.Client
}

// notifyFor bounds one HTTP notification's retries: the app may be
// starting; past that, the change is reported failed and the loop goes on.
const notifyFor = 30 * time.Second

func (n *httpNotifier) String() string { return n.method + " " + redact.URL(n.url.String()) }

func (n *httpNotifier) notify(ctx context.Context) error {
	if n.client == nil {
		n.client = &http.Client{Transport: transport.New(transport.Options{Timeout: 10 * time.Second}), Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, notifyFor)
	defer cancel()
	_, err := retry.Until(ctx, retry.Probe.BackOff(backoff.SystemClock), func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, n.method, n.url.String(), nil)
		if err != nil {
			return retry.Permanent(err)
		}
		req.Header.Set("User-Agent", "initbox/"+cli.Version())
		resp, err := n.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s answered %d %s", redact.URL(n.url.String()), resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return nil
	}, nil)
	var se *retry.StoppedError
	if errors.As(err, &se) && se.Last != nil {
		return se.Last
	}
	return err
}
