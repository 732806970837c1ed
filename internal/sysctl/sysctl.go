// Package sysctl is the sysctl applet: kernel parameters for the charts
// that add a privileged init container for `sysctl -w vm.max_map_count=…`.
package sysctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/initbox/initbox/internal/cli"
)

// Applet is sysctl's entry in the applet table.
var Applet = cli.Applet{
	Name:     "sysctl",
	Summary:  "set kernel parameters (/proc/sys), verified, skipping those already set",
	Synopsis: "[flags] KEY=VALUE...",
	Help: `Writes each VALUE to /proc/sys/KEY (dots become slashes), reads it back and
checks the kernel kept it. A key already at its value is left alone; with --min,
a numeric key already at or above VALUE too (vm.max_map_count for search
engines). Idempotent: a second run changes nothing and says so.

Namespaced keys (net.*, kernel.shm*, …) can be set by an unprivileged container
when the pod allows them (securityContext.sysctls) or, for the network
namespace's own keys, as root in the pod; others (vm.*) need a privileged
container, and the error says so.

EXAMPLES
  sysctl vm.max_map_count=262144 --min
  sysctl net.ipv4.ip_unprivileged_port_start=0 net.core.somaxconn=1024`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	min     bool
	procSys string
	sets    []setting
}

type setting struct{ key, value string }

func (c *command) Flags(fs *cli.FlagSet) {
	fs.Bool(&c.min, "min", "only raise numeric values: keep a current value at or above VALUE")
	fs.String(&c.procSys, "proc-sys", "/proc/sys", "where the kernel's parameters are (`DIR`)")
}

// validKey: letters, digits, '_' first; then also '.', '-', '/'; no "..".
func validKey(k string) bool {
	if k == "" || strings.Contains(k, "..") {
		return false
	}
	for i, r := range k {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '.' || r == '-' || r == '/'
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *command) Prepare(_ *cli.Env, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("want KEY=VALUE arguments")
	}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("invalid argument %q: want KEY=VALUE", a)
		}
		if !validKey(k) {
			return nil, fmt.Errorf("invalid key %q", k)
		}
		if c.min {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("--min compares numbers, and %s=%q is not one", k, v)
			}
		}
		c.sets = append(c.sets, setting{k, v})
	}
	return nil, nil
}

// normalize folds the whitespace the kernel puts between fields.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

func (c *command) path(key string) string {
	return filepath.Join(c.procSys, strings.ReplaceAll(key, ".", "/"))
}

func (c *command) Run(_ context.Context, env *cli.Env) (string, error) {
	var changed, kept []string
	for _, s := range c.sets {
		p := c.path(s.key)
		cur, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%s: no such kernel parameter (%s)", s.key, p)
			}
			return "", fmt.Errorf("reading %s: %w", s.key, err)
		}
		now := normalize(string(cur))
		if now == normalize(s.value) || (c.min && atLeast(now, s.value)) {
			env.Log.Info("already set", "key", s.key, "value", now)
			kept = append(kept, s.key+"="+now)
			continue
		}
		if err := os.WriteFile(p, []byte(s.value+"\n"), 0); err != nil {
			return "", writeError(s.key, err)
		}
		back, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("reading back %s: %w", s.key, err)
		}
		if got := normalize(string(back)); got != normalize(s.value) {
			return "", fmt.Errorf("%s: wrote %q, the kernel kept %q", s.key, s.value, got)
		}
		env.Log.Info("set", "key", s.key, "from", now, "to", s.value)
		changed = append(changed, s.key+"="+s.value)
	}
	if len(changed) == 0 {
		return "already set: " + strings.Join(kept, ", "), nil
	}
	return "set " + strings.Join(changed, ", "), nil
}

func atLeast(cur, want string) bool {
	a, err1 := strconv.ParseInt(cur, 10, 64)
	b, err2 := strconv.ParseInt(want, 10, 64)
	return err1 == nil && err2 == nil && a >= b
}

func writeError(key string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			return fmt.Errorf("cannot set %s (%v): a key the container's namespaces do not own needs a privileged container (securityContext.privileged: true); a namespaced one, root in the pod or the pod's securityContext.sysctls", key, errno)
		case syscall.EINVAL:
			return fmt.Errorf("cannot set %s: the kernel refused the value (invalid argument)", key)
		}
	}
	return fmt.Errorf("setting %s: %w", key, err)
}
